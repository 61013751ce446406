//! The worker's metrics as CloudWatch would read them: the Embedded Metric Format
//! documents in the worker processes' logs, summed up. The benchmark compares them with
//! its own counts, so every run proves the metrics right.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// What the EMF documents of a run add up to.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EmfSummary {
    pub documents: usize,
    /// Requests per outcome (from the documents' `Outcome` dimension).
    pub requests: BTreeMap<String, u64>,
    /// Every TimeToOutcome value, in milliseconds, sorted.
    pub time_to_outcome_ms: Vec<f64>,
    /// Per API, each call metric (Calls, Succeeded, Throttled, ...).
    pub calls: BTreeMap<String, BTreeMap<String, u64>>,
    /// The worker document's counts (Retries, Superseded, ExpiryRevokes, Undos,
    /// ResidualAccessReports).
    pub worker: BTreeMap<String, u64>,
}

impl EmfSummary {
    /// Reads every EMF line (a JSON object with `_aws`) in the files of `dir` whose
    /// names start with `worker-`.
    pub fn from_logs(dir: &Path) -> std::io::Result<EmfSummary> {
        let mut summary = EmfSummary::default();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let is_worker_log = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("worker-"));
            if !is_worker_log {
                continue;
            }
            for line in std::fs::read_to_string(&path)?.lines() {
                if !line.contains("\"_aws\"") {
                    continue;
                }
                if let Ok(document) = serde_json::from_str::<Value>(line) {
                    summary.add(&document);
                }
            }
        }
        summary.time_to_outcome_ms.sort_by(|a, b| a.total_cmp(b));
        Ok(summary)
    }

    fn add(&mut self, document: &Value) {
        let Some(metrics) = document["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array() else {
            return;
        };
        self.documents += 1;
        let count = |name: &str| document[name].as_u64().unwrap_or(0);
        if let Some(outcome) = document["Outcome"].as_str() {
            *self.requests.entry(outcome.to_owned()).or_default() += count("Requests");
            if let Some(times) = document["TimeToOutcome"].as_array() {
                self.time_to_outcome_ms
                    .extend(times.iter().filter_map(Value::as_f64));
            }
        } else if let Some(api) = document["Api"].as_str() {
            let calls = self.calls.entry(api.to_owned()).or_default();
            for metric in metrics {
                if let Some(name) = metric["Name"].as_str() {
                    *calls.entry(name.to_owned()).or_default() += count(name);
                }
            }
        } else {
            for metric in metrics {
                if let Some(name) = metric["Name"].as_str() {
                    *self.worker.entry(name.to_owned()).or_default() += count(name);
                }
            }
        }
    }

    /// The `q` quantile (0..1) of the time to outcome, nearest rank.
    pub fn time_to_outcome_quantile(&self, q: f64) -> Option<f64> {
        let values = &self.time_to_outcome_ms;
        if values.is_empty() {
            return None;
        }
        let rank = (q * values.len() as f64).ceil().max(1.0) as usize;
        values.get(rank.min(values.len()) - 1).copied()
    }

    /// One metric of one API (0 when never counted).
    pub fn call_metric(&self, api: &str, metric: &str) -> u64 {
        self.calls
            .get(api)
            .and_then(|metrics| metrics.get(metric))
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sums_documents_by_kind_and_takes_quantiles() {
        let mut summary = EmfSummary::default();
        let directive = |names: &[&str]| {
            json!({"CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [[]],
                "Metrics": names.iter().map(|n| json!({"Name": n, "Unit": "Count"})).collect::<Vec<_>>()}]})
        };
        summary.add(&json!({"_aws": directive(&["Requests", "TimeToOutcome"]),
            "Action": "create", "Outcome": "succeeded", "Requests": 3, "TimeToOutcome": [30.0, 10.0, 20.0]}));
        summary.add(&json!({"_aws": directive(&["Requests", "TimeToOutcome"]),
            "Action": "delete", "Outcome": "succeeded", "Requests": 1, "TimeToOutcome": [40.0]}));
        summary.add(&json!({"_aws": directive(&["Calls", "Throttled"]),
            "Api": "CreateAccountAssignment", "Calls": 5, "Throttled": 2}));
        summary.add(&json!({"_aws": directive(&["Retries"]), "Retries": 2}));
        summary.time_to_outcome_ms.sort_by(|a, b| a.total_cmp(b));
        assert_eq!(summary.documents, 4);
        assert_eq!(summary.requests["succeeded"], 4);
        assert_eq!(
            summary.call_metric("CreateAccountAssignment", "Throttled"),
            2
        );
        assert_eq!(summary.worker["Retries"], 2);
        assert_eq!(summary.time_to_outcome_quantile(0.5), Some(20.0));
        assert_eq!(summary.time_to_outcome_quantile(0.99), Some(40.0));
    }
}
