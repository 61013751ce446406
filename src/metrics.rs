//! Metrics in CloudWatch's Embedded Metric Format (SPEC §12): counted per invocation,
//! then written to stdout as JSON documents that CloudWatch Logs turns into metrics (no
//! API call, no extra permission). Dimensions are bounded: `Action`, `Outcome`,
//! `ErrorClass`, `Api`; never an account, principal or correlation id.
//!
//! The counts live in the invocation, not in a process-wide recorder: each batch's
//! figures are its own, and tests of concurrent batches cannot see each other's.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Mutex, PoisonError};

use serde_json::{Map, Value, json};

use crate::aws_call::{CallError, ErrorKind};
use crate::lifecycle::ErrorClass;

pub const DEFAULT_NAMESPACE: &str = "AssignmentWorker";
/// EMF takes at most 100 values of one metric in one document.
const MAX_VALUES: usize = 100;

/// The AWS APIs the worker calls: the values of the `Api` dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Api {
    CreateAccountAssignment,
    DeleteAccountAssignment,
    DescribeAccountAssignmentCreationStatus,
    DescribeAccountAssignmentDeletionStatus,
    AssociatePrincipalWithPortfolio,
    DisassociatePrincipalFromPortfolio,
    ListPrincipalsForPortfolio,
    /// The ledger's claims and state records.
    UpdateItem,
    /// The ledger's strongly consistent reads.
    GetItem,
    SendMessageBatch,
}

impl Api {
    pub fn as_str(self) -> &'static str {
        match self {
            Api::CreateAccountAssignment => "CreateAccountAssignment",
            Api::DeleteAccountAssignment => "DeleteAccountAssignment",
            Api::DescribeAccountAssignmentCreationStatus => {
                "DescribeAccountAssignmentCreationStatus"
            }
            Api::DescribeAccountAssignmentDeletionStatus => {
                "DescribeAccountAssignmentDeletionStatus"
            }
            Api::AssociatePrincipalWithPortfolio => "AssociatePrincipalWithPortfolio",
            Api::DisassociatePrincipalFromPortfolio => "DisassociatePrincipalFromPortfolio",
            Api::ListPrincipalsForPortfolio => "ListPrincipalsForPortfolio",
            Api::UpdateItem => "UpdateItem",
            Api::GetItem => "GetItem",
            Api::SendMessageBatch => "SendMessageBatch",
        }
    }
}

/// How an AWS call was answered; each is a metric of the `Api` document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Answer {
    Success,
    /// "Rate exceeded" and DynamoDB's throughput refusals.
    ThrottledRate,
    /// "Too many requests processing": the 15 outstanding creates are taken.
    ThrottledBusy,
    Conflict,
    ServerError,
    Timeout,
    ConnectionError,
    /// Any other error AWS answered (validation, access denied, not found, ...).
    OtherError,
}

impl Answer {
    pub fn of_error(error: &CallError) -> Self {
        Self::of_kind(error.kind)
    }

    pub fn of_kind(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::RateLimited => Answer::ThrottledRate,
            ErrorKind::Busy => Answer::ThrottledBusy,
            ErrorKind::Conflict => Answer::Conflict,
            ErrorKind::ServerError => Answer::ServerError,
            ErrorKind::Timeout => Answer::Timeout,
            ErrorKind::Connection => Answer::ConnectionError,
            ErrorKind::Validation
            | ErrorKind::AccessDenied
            | ErrorKind::ResourceNotFound
            | ErrorKind::ServiceQuotaExceeded
            | ErrorKind::Rejected => Answer::OtherError,
        }
    }

    pub fn of<T>(result: &Result<T, CallError>) -> Self {
        result
            .as_ref()
            .map_or_else(Answer::of_error, |_| Answer::Success)
    }

    fn metric(self) -> &'static str {
        match self {
            Answer::Success => "Succeeded",
            Answer::ThrottledRate => "ThrottledRate",
            Answer::ThrottledBusy => "ThrottledBusy",
            Answer::Conflict => "Conflicts",
            Answer::ServerError => "ServerErrors",
            Answer::Timeout => "Timeouts",
            Answer::ConnectionError => "ConnectionErrors",
            Answer::OtherError => "OtherErrors",
        }
    }

    const ALL: [Answer; 8] = [
        Answer::Success,
        Answer::ThrottledRate,
        Answer::ThrottledBusy,
        Answer::Conflict,
        Answer::ServerError,
        Answer::Timeout,
        Answer::ConnectionError,
        Answer::OtherError,
    ];
}

/// One terminal outcome, as the `Action`/`Outcome`/`ErrorClass` dimensions name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct OutcomeKey {
    action: &'static str,
    outcome: &'static str,
    error_class: Option<&'static str>,
}

#[derive(Debug, Default)]
struct Counts {
    /// Time from first receipt to outcome, in milliseconds, per outcome.
    outcomes: BTreeMap<OutcomeKey, Vec<f64>>,
    /// Outcomes whose time is not known, per outcome.
    untimed_outcomes: BTreeMap<OutcomeKey, u64>,
    calls: BTreeMap<Api, BTreeMap<Answer, u64>>,
    /// Steps the pacer deferred before their call (no call made).
    deferrals: BTreeMap<Api, u64>,
    retries: u64,
    superseded: u64,
    expiry_revokes: u64,
    undos: u64,
    residual_access_reports: u64,
}

/// The metrics of one invocation.
#[derive(Debug, Default)]
pub struct InvocationMetrics(Mutex<Counts>);

impl InvocationMetrics {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn call(&self, api: Api, answer: Answer) {
        *self
            .counts()
            .calls
            .entry(api)
            .or_default()
            .entry(answer)
            .or_default() += 1;
    }

    /// The pacer deferred a step before its `api` call: no call was made.
    pub fn deferred(&self, api: Api) {
        *self.counts().deferrals.entry(api).or_default() += 1;
    }

    /// A request reached a terminal outcome (durably stored): `action` and `outcome`
    /// as the outcome event names them.
    pub fn outcome(
        &self,
        action: &'static str,
        outcome: &'static str,
        error_class: Option<ErrorClass>,
        elapsed_ms: Option<f64>,
    ) {
        let key = OutcomeKey {
            action,
            outcome,
            error_class: error_class.map(ErrorClass::as_str),
        };
        let mut counts = self.counts();
        match elapsed_ms {
            Some(elapsed_ms) => counts
                .outcomes
                .entry(key)
                .or_default()
                .push(elapsed_ms.max(0.0)),
            None => *counts.untimed_outcomes.entry(key).or_default() += 1,
        }
        if outcome == "superseded" {
            counts.superseded += 1;
        }
    }

    /// A step repeated after a transient error.
    pub fn retry(&self) {
        self.counts().retries += 1;
    }

    /// An expiry or restored-expiry step removed the access (or found it gone).
    pub fn expiry_revoke(&self) {
        self.counts().expiry_revokes += 1;
    }

    /// A change that was made, or may have been, is being undone for a later decision.
    pub fn undo(&self) {
        self.counts().undos += 1;
    }

    /// A portfolio principal's removal left access through other principals (SPEC §9).
    pub fn residual_access_report(&self) {
        self.counts().residual_access_reports += 1;
    }

    /// The EMF documents for what was counted (none when nothing was).
    pub fn documents(&self, namespace: &str, timestamp_ms: i64) -> Vec<Value> {
        let counts = self.counts();
        let mut documents = Vec::new();
        let keys: std::collections::BTreeSet<&OutcomeKey> = counts
            .outcomes
            .keys()
            .chain(counts.untimed_outcomes.keys())
            .collect();
        for key in keys {
            let mut dimensions = vec![("Action", key.action), ("Outcome", key.outcome)];
            // Also without Action, and with none at all: alarms and dashboards read one
            // dimension set, so "dead letters of class X" and "p99 over everything"
            // each need their own.
            let mut sets = vec![vec!["Action", "Outcome"], vec!["Outcome"], vec![]];
            if let Some(class) = key.error_class {
                dimensions.push(("ErrorClass", class));
                sets[0].push("ErrorClass");
                sets[1].push("ErrorClass");
            }
            let times = counts.outcomes.get(key).map_or(&[][..], Vec::as_slice);
            for chunk in times.chunks(MAX_VALUES) {
                documents.push(document(
                    namespace,
                    timestamp_ms,
                    &dimensions,
                    &sets,
                    &[
                        ("Requests", "Count", json!(chunk.len())),
                        ("TimeToOutcome", "Milliseconds", json!(chunk)),
                    ],
                ));
            }
            if let Some(untimed) = counts.untimed_outcomes.get(key) {
                documents.push(document(
                    namespace,
                    timestamp_ms,
                    &dimensions,
                    &sets,
                    &[("Requests", "Count", json!(untimed))],
                ));
            }
        }
        let no_answers = BTreeMap::new();
        let apis: std::collections::BTreeSet<&Api> =
            counts.calls.keys().chain(counts.deferrals.keys()).collect();
        for api in apis {
            let answers = counts.calls.get(api).unwrap_or(&no_answers);
            let total: u64 = answers.values().sum();
            let throttled = answers.get(&Answer::ThrottledRate).unwrap_or(&0)
                + answers.get(&Answer::ThrottledBusy).unwrap_or(&0);
            let mut metrics = vec![
                ("Calls", "Count", json!(total)),
                ("Throttled", "Count", json!(throttled)),
                // Not calls: steps stored again before their call (SPEC §10).
                (
                    "Deferred",
                    "Count",
                    json!(counts.deferrals.get(api).unwrap_or(&0)),
                ),
            ];
            metrics.extend(Answer::ALL.iter().map(|answer| {
                (
                    answer.metric(),
                    "Count",
                    json!(answers.get(answer).unwrap_or(&0)),
                )
            }));
            documents.push(document(
                namespace,
                timestamp_ms,
                &[("Api", api.as_str())],
                &[vec!["Api"]],
                &metrics,
            ));
        }
        let worker = [
            ("Retries", counts.retries),
            ("Superseded", counts.superseded),
            ("ExpiryRevokes", counts.expiry_revokes),
            ("Undos", counts.undos),
            ("ResidualAccessReports", counts.residual_access_reports),
        ];
        if worker.iter().any(|(_, value)| *value > 0) {
            let metrics: Vec<_> = worker
                .iter()
                .map(|(name, value)| (*name, "Count", json!(value)))
                .collect();
            documents.push(document(namespace, timestamp_ms, &[], &[vec![]], &metrics));
        }
        documents
    }

    /// Writes the documents as JSON lines (Lambda sends stdout to CloudWatch Logs).
    pub fn write(
        &self,
        namespace: &str,
        timestamp_ms: i64,
        out: &mut impl Write,
    ) -> std::io::Result<()> {
        for document in self.documents(namespace, timestamp_ms) {
            writeln!(out, "{document}")?;
        }
        out.flush()
    }
}

/// One EMF document: `dimensions` (name, value), the dimension sets the metrics are
/// published under, and `metrics` (name, unit, value).
fn document(
    namespace: &str,
    timestamp_ms: i64,
    dimensions: &[(&str, &str)],
    sets: &[Vec<&str>],
    metrics: &[(&str, &str, Value)],
) -> Value {
    let mut root = Map::new();
    root.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": sets,
                "Metrics": metrics
                    .iter()
                    .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
                    .collect::<Vec<_>>(),
            }],
        }),
    );
    for (name, value) in dimensions {
        root.insert((*name).to_owned(), json!(value));
    }
    for (name, _, value) in metrics {
        root.insert((*name).to_owned(), value.clone());
    }
    Value::Object(root)
}
