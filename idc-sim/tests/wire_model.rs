//! The simulator's wire shapes judged by the AWS API models botocore ships (the
//! `service-2.json` in the test venv's botocore, from scripts/bootstrap), not by memory.
//!
//! For every operation the simulator serves, one valid request that uses every input
//! member must answer 200 with a body that fits the model's output shape (member names,
//! JSON types, enums, lengths, patterns, numeric ranges, timestamps as epoch seconds),
//! and each single violation of an input constraint (a required member left out, a value
//! outside an enum, too short, too long, off the pattern, out of range) must answer a
//! 400 with the service's validation error (ValidationException, InvalidParametersException),
//! which the model lists for that operation.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use common::api;
use fancy_regex::Regex;
use idc_sim::{Knobs, PortfolioPrincipal, PortfolioPrincipalType, PortfolioSeed, Simulator, start};
use serde_json::{Value, json};

/// Reads a service's model from the venv's botocore (plain or gzipped, the newest API
/// version); fails, never skips, when the venv is missing.
fn botocore_model(service: &str) -> (String, Value) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf();
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} not found: run scripts/bootstrap to create the test venv (its botocore holds the API models this test checks against)",
        python.display()
    );
    let script = r#"
import gzip, os, sys
import botocore
base = os.path.join(os.path.dirname(botocore.__file__), "data", sys.argv[1])
path = os.path.join(base, sorted(os.listdir(base))[-1], "service-2.json")
if os.path.exists(path + ".gz"):
    path += ".gz"
    data = gzip.open(path).read()
else:
    data = open(path, "rb").read()
sys.stderr.write(path)
sys.stdout.write(data.decode("utf-8"))
"#;
    let output = Command::new(&python)
        .args(["-c", script, service])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/bootstrap)", python.display()));
    assert!(
        output.status.success(),
        "reading botocore's {service} model failed (run scripts/bootstrap): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let path = String::from_utf8_lossy(&output.stderr).into_owned();
    let model = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{path} is not JSON: {e}"));
    (path, model)
}

/// The model's pattern as AWS applies it: to the whole value.
fn full_match(pattern: &str) -> Result<Regex, String> {
    // Java's \uXXXX escapes in the regex crates' spelling.
    let mut translated = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some('u') => {
                    chars.next();
                    let hex: String = chars.by_ref().take(4).collect();
                    translated.push_str(&format!("\\x{{{hex}}}"));
                }
                Some(_) => {
                    translated.push(c);
                    translated.extend(chars.next());
                }
                None => translated.push(c),
            }
        } else {
            translated.push(c);
        }
    }
    Regex::new(&format!("^(?:{translated})$")).map_err(|e| format!("pattern {pattern}: {e}"))
}

fn matches(pattern: &str, value: &str) -> Result<bool, String> {
    full_match(pattern)?
        .is_match(value)
        .map_err(|e| format!("pattern {pattern} on {value:?}: {e}"))
}

/// The error code of an awsJson error answer, as the SDKs read it.
fn error_code(answer: &common::Answer) -> Option<String> {
    let raw = answer
        .header("x-amzn-errortype")
        .map(str::to_owned)
        .or_else(|| {
            serde_json::from_str::<Value>(&answer.body)
                .ok()?
                .get("__type")?
                .as_str()
                .map(str::to_owned)
        })?;
    let code = raw.split(':').next().unwrap_or(&raw);
    Some(code.rsplit('#').next().unwrap_or(code).to_owned())
}

/// A body as failure messages quote it: its start.
fn excerpt(body: &str) -> String {
    const LIMIT: usize = 300;
    match body.char_indices().nth(LIMIT) {
        Some((at, _)) => format!("{}...", &body[..at]),
        None => body.to_owned(),
    }
}

/// One service's model and the checks made against it.
struct Walker {
    service: &'static str,
    path: String,
    model: Value,
    target_prefix: String,
    address: SocketAddr,
    checks: usize,
    failures: Vec<String>,
    served: BTreeSet<String>,
    /// Per operation, the input members its samples set and those they left out.
    coverage: BTreeMap<String, Coverage>,
    validation_error: &'static str,
}

#[derive(Default)]
struct Coverage {
    present: BTreeSet<String>,
    absent: BTreeSet<String>,
}

/// A request that breaks one input constraint, and which.
struct Violation {
    what: String,
    input: Value,
}

impl Walker {
    /// `validation_error`: the error of the service's model that answers a request
    /// breaking an input constraint (it must be listed for every walked operation).
    fn new(service: &'static str, validation_error: &'static str, address: SocketAddr) -> Self {
        let (path, model) = botocore_model(service);
        let target_prefix = model["metadata"]["targetPrefix"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: no targetPrefix"))
            .to_owned();
        Self {
            service,
            path,
            model,
            target_prefix,
            address,
            checks: 0,
            failures: Vec::new(),
            served: BTreeSet::new(),
            coverage: BTreeMap::new(),
            validation_error,
        }
    }

    fn shape(&self, name: &str) -> Value {
        self.model["shapes"][name].clone()
    }

    fn check(&mut self, ok: bool, failure: impl FnOnce() -> String) {
        self.checks += 1;
        if !ok {
            self.failures.push(failure());
        }
    }

    /// Sends `sample` (valid, every input member set), checks the answer against the
    /// output shape, then sends each single violation of an input constraint.
    async fn operation(&mut self, operation: &str, sample: Value) -> Value {
        self.served.insert(operation.to_owned());
        let definition = self.model["operations"][operation].clone();
        self.check(definition.is_object(), || {
            format!("{operation}: not an operation of the model")
        });
        let Some(input_shape) = definition["input"]["shape"].as_str().map(str::to_owned) else {
            return Value::Null;
        };
        let output_shape = definition["output"]["shape"].as_str().map(str::to_owned);
        let errors: BTreeSet<String> = definition["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["shape"].as_str().map(str::to_owned))
            .collect();
        let target = format!("{}.{operation}", self.target_prefix);
        let validation_error = self.validation_error;
        self.check(errors.contains(validation_error), || {
            format!("{operation}: the model does not list {validation_error} among {errors:?}")
        });

        let answer = api(self.address, &target, &sample.to_string()).await;
        self.check(answer.status == 200, || {
            format!(
                "{operation}: the valid request {sample} answered {} {}",
                answer.status, answer.body
            )
        });
        let body: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        if answer.status == 200 {
            match &output_shape {
                Some(shape) => self.output(operation, shape, &body, "output"),
                None => self.check(body == json!({}), || {
                    format!("{operation}: no output shape, answered {body}")
                }),
            }
        }

        let mut coverage = self.coverage.remove(operation).unwrap_or_default();
        let violations = self.violations(&input_shape, &sample, "", &mut coverage);
        self.coverage.insert(operation.to_owned(), coverage);
        for Violation { what, input } in violations {
            let answer = api(self.address, &target, &input.to_string()).await;
            let code = error_code(&answer);
            self.check(
                answer.status == 400 && code.as_deref() == Some(validation_error),
                || {
                    format!(
                        "{operation}: {what}: answered {} {} (want 400 {validation_error})",
                        answer.status,
                        excerpt(&answer.body)
                    )
                },
            );
        }
        body
    }

    /// Checks `value` against output shape `shape`.
    fn output(&mut self, operation: &str, shape_name: &str, value: &Value, at: &str) {
        let shape = self.shape(shape_name);
        let kind = shape["type"].as_str().unwrap_or("");
        match kind {
            "structure" => {
                let Some(object) = value.as_object() else {
                    return self.check(false, || {
                        format!("{operation}: {at} is not an object: {value}")
                    });
                };
                let members = shape["members"].as_object().cloned().unwrap_or_default();
                for key in object.keys() {
                    let member_shape = members.get(key).and_then(|m| m["shape"].as_str());
                    self.check(member_shape.is_some(), || {
                        format!("{operation}: {at}.{key} is not a member of {shape_name}")
                    });
                    if let Some(member_shape) = member_shape {
                        self.output(
                            operation,
                            member_shape,
                            &object[key],
                            &format!("{at}.{key}"),
                        );
                    }
                }
                for required in shape["required"].as_array().into_iter().flatten() {
                    let required = required.as_str().unwrap_or("");
                    self.check(object.contains_key(required), || {
                        format!("{operation}: {at} lacks required {required}")
                    });
                }
            }
            "list" => {
                let Some(items) = value.as_array() else {
                    return self.check(false, || {
                        format!("{operation}: {at} is not an array: {value}")
                    });
                };
                self.range(operation, at, &shape, items.len() as f64, "items");
                let member = shape["member"]["shape"].as_str().unwrap_or("").to_owned();
                for (n, item) in items.iter().enumerate() {
                    self.output(operation, &member, item, &format!("{at}[{n}]"));
                }
            }
            "map" => self.check(value.is_object(), || {
                format!("{operation}: {at} is not a map: {value}")
            }),
            "string" => {
                let Some(text) = value.as_str() else {
                    return self.check(false, || {
                        format!("{operation}: {at} is not a string: {value}")
                    });
                };
                if let Some(values) = shape["enum"].as_array() {
                    self.check(values.iter().any(|v| v == text), || {
                        format!("{operation}: {at} {text:?} is not one of {values:?}")
                    });
                }
                self.range(
                    operation,
                    at,
                    &shape,
                    text.chars().count() as f64,
                    "characters",
                );
                if let Some(pattern) = shape["pattern"].as_str() {
                    let fits = matches(pattern, text);
                    self.check(fits == Ok(true), || {
                        format!("{operation}: {at} {text:?} does not fit {shape_name}'s pattern {pattern} ({fits:?})")
                    });
                }
            }
            "integer" | "long" => {
                let Some(n) = value.as_i64() else {
                    return self.check(false, || {
                        format!("{operation}: {at} is not an integer: {value}")
                    });
                };
                self.range(operation, at, &shape, n as f64, "");
            }
            "boolean" => self.check(value.is_boolean(), || {
                format!("{operation}: {at} is not a boolean: {value}")
            }),
            "timestamp" => {
                // awsJson timestamps are epoch seconds; a date before Identity Center
                // existed or in the future is the simulator's uptime or a bad clock.
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                let seconds = value.as_f64();
                self.check(
                    seconds.is_some_and(|s| (1_500_000_000.0..=now + 86_400.0).contains(&s)),
                    || format!("{operation}: {at} {value} is not a current date in epoch seconds"),
                );
            }
            other => self.check(false, || {
                format!("{operation}: {at}: shape type {other:?} not handled by this test")
            }),
        }
    }

    fn range(&mut self, operation: &str, at: &str, shape: &Value, n: f64, unit: &str) {
        if let Some(min) = shape["min"].as_f64() {
            self.check(n >= min, || {
                format!("{operation}: {at} has {n} {unit}, below the model's min {min}")
            });
        }
        if let Some(max) = shape["max"].as_f64() {
            self.check(n <= max, || {
                format!("{operation}: {at} has {n} {unit}, above the model's max {max}")
            });
        }
    }

    /// Every single-constraint violation of `value` (of shape `shape_name`), as whole
    /// values of that shape. Members with constraints that `value` leaves out go to
    /// `uncovered`.
    fn violations(
        &mut self,
        shape_name: &str,
        value: &Value,
        at: &str,
        coverage: &mut Coverage,
    ) -> Vec<Violation> {
        let shape = self.shape(shape_name);
        let mut found = Vec::new();
        match shape["type"].as_str().unwrap_or("") {
            "structure" => {
                let Some(object) = value.as_object() else {
                    return found;
                };
                let required: BTreeSet<&str> = shape["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let members = shape["members"].as_object().cloned().unwrap_or_default();
                for (name, member) in &members {
                    let member_shape = member["shape"].as_str().unwrap_or("");
                    let here = format!("{at}{name}");
                    let Some(present) = object.get(name) else {
                        if required.contains(name.as_str()) || self.constrained(member_shape, 0) {
                            coverage.absent.insert(here);
                        }
                        continue;
                    };
                    coverage.present.insert(here.clone());
                    if required.contains(name.as_str()) {
                        let mut without = object.clone();
                        without.remove(name);
                        found.push(Violation {
                            what: format!("required {here} left out"),
                            input: Value::Object(without),
                        });
                    }
                    for Violation { what, input } in
                        self.violations(member_shape, present, &format!("{here}."), coverage)
                    {
                        let mut changed = object.clone();
                        changed.insert(name.clone(), input);
                        found.push(Violation {
                            what,
                            input: Value::Object(changed),
                        });
                    }
                }
            }
            "list" => {
                let Some(items) = value.as_array() else {
                    return found;
                };
                let at = at.trim_end_matches('.');
                if let Some(min) = shape["min"].as_u64().filter(|&min| min > 0) {
                    found.push(Violation {
                        what: format!("{at} with {} items, below min {min}", min - 1),
                        input: Value::Array(items.iter().take(min as usize - 1).cloned().collect()),
                    });
                }
                let member = shape["member"]["shape"].as_str().unwrap_or("").to_owned();
                if let Some(first) = items.first() {
                    if let Some(max) = shape["max"].as_u64() {
                        found.push(Violation {
                            what: format!("{at} with {} items, above max {max}", max + 1),
                            input: Value::Array(vec![first.clone(); max as usize + 1]),
                        });
                    }
                    for Violation { what, input } in
                        self.violations(&member, first, &format!("{at}[0]."), coverage)
                    {
                        let mut changed = items.clone();
                        changed[0] = input;
                        found.push(Violation {
                            what,
                            input: Value::Array(changed),
                        });
                    }
                } else if self.constrained(&member, 0) || shape["max"].is_u64() {
                    coverage.absent.insert(format!("{at}[0]"));
                }
            }
            "string" => {
                let at = at.trim_end_matches('.');
                let text = value.as_str().unwrap_or("");
                if let Some(values) = shape["enum"].as_array() {
                    let outside = "NOT_IN_THE_ENUM";
                    if !values.iter().any(|v| v == outside) {
                        found.push(Violation {
                            what: format!("{at} {outside:?} outside the enum {values:?}"),
                            input: json!(outside),
                        });
                    }
                }
                let length = text.chars().count();
                if let Some(min) = shape["min"].as_u64().filter(|&min| min > 0) {
                    let short: String = text.chars().take(min as usize - 1).collect();
                    found.push(Violation {
                        what: format!("{at} {short:?} shorter than min {min}"),
                        input: json!(short),
                    });
                }
                if let Some(max) = shape["max"].as_u64() {
                    let last = text.chars().last().unwrap_or('a');
                    let long: String = text
                        .chars()
                        .chain(std::iter::repeat(last))
                        .take((max as usize + 1).max(length + 1))
                        .collect();
                    found.push(Violation {
                        what: format!(
                            "{at} of {} characters, longer than max {max}",
                            long.chars().count()
                        ),
                        input: json!(long),
                    });
                }
                if let Some(pattern) = shape["pattern"].as_str() {
                    match self.off_pattern(pattern, &shape, text) {
                        Ok(offs) => found.extend(offs.into_iter().map(|off| Violation {
                            what: format!("{at} {off:?} off the pattern {pattern}"),
                            input: json!(off),
                        })),
                        Err(e) => {
                            let failure = format!("{}: {at}: {e}", self.service);
                            self.check(false, || failure);
                        }
                    }
                }
            }
            "integer" | "long" => {
                let at = at.trim_end_matches('.');
                if let Some(min) = shape["min"].as_i64() {
                    found.push(Violation {
                        what: format!("{at} {} below min {min}", min - 1),
                        input: json!(min - 1),
                    });
                }
                if let Some(max) = shape["max"].as_i64() {
                    found.push(Violation {
                        what: format!("{at} {} above max {max}", max + 1),
                        input: json!(max + 1),
                    });
                }
            }
            _ => {}
        }
        found
    }

    /// Values within the shape's lengths that the pattern refuses: the valid sample
    /// in the other letter case (a case-sensitive pattern), and a run of a character
    /// the pattern does not allow. None when the pattern admits everything.
    fn off_pattern(
        &self,
        pattern: &str,
        shape: &Value,
        sample: &str,
    ) -> Result<Vec<String>, String> {
        let min = shape["min"].as_u64().unwrap_or(0).max(1) as usize;
        let max = shape["max"].as_u64().map_or(usize::MAX, |m| m as usize);
        let mut offs = Vec::new();
        if min > max {
            return Ok(offs);
        }
        for flipped in [sample.to_uppercase(), sample.to_lowercase()] {
            if flipped != sample && !offs.contains(&flipped) && !matches(pattern, &flipped)? {
                offs.push(flipped);
            }
        }
        for candidate in [
            "!", " ", "\u{1}", "#", "~", "\u{e9}", "\u{7f}", "a", "0", "A",
        ] {
            let value = candidate.repeat(min);
            if !matches(pattern, &value)? {
                offs.push(value);
                break;
            }
        }
        Ok(offs)
    }

    /// True when a shape has constraints the walker would check (depth-limited).
    fn constrained(&self, shape_name: &str, depth: usize) -> bool {
        if depth > 8 {
            return false;
        }
        let shape = self.shape(shape_name);
        let own = ["enum", "min", "max", "pattern", "required"]
            .iter()
            .any(|key| match &shape[*key] {
                Value::Null => false,
                Value::Number(n) => !(*key == "min" && n.as_u64() == Some(0)),
                _ => true,
            });
        own || shape["members"]
            .as_object()
            .into_iter()
            .flatten()
            .any(|(_, m)| self.constrained(m["shape"].as_str().unwrap_or(""), depth + 1))
            || shape["member"]["shape"]
                .as_str()
                .is_some_and(|m| self.constrained(m, depth + 1))
    }

    fn finish(mut self) {
        let coverage = std::mem::take(&mut self.coverage);
        for (operation, Coverage { present, absent }) in coverage {
            for member in absent.difference(&present) {
                self.check(false, || {
                    format!("{operation}: no sample request sets {member}, so its constraints go unchecked")
                });
            }
        }
        assert!(
            self.failures.is_empty(),
            "{} of {} checks against {} ({}) failed:\n{}",
            self.failures.len(),
            self.checks,
            self.service,
            self.path,
            self.failures.join("\n")
        );
        assert!(self.checks > 0, "no checks made against {}", self.service);
        eprintln!(
            "{}: {} checks of {} operations against {} passed",
            self.service,
            self.checks,
            self.served.len(),
            self.path
        );
    }
}

// ---------------------------------------------------------------------------------

const PORTFOLIO: &str = "port-wirewirewire1";
const WALKER_ROLE: &str = "arn:aws:iam::111122223333:role/Walker";

async fn serve(knobs: Knobs) -> (Arc<Simulator>, SocketAddr) {
    let simulator = Simulator::new(knobs, 17);
    let address = start(Arc::clone(&simulator), 0)
        .await
        .expect("bind 127.0.0.1");
    (simulator, address)
}

/// No rate limits and no list lag: every valid request succeeds.
fn calm() -> Knobs {
    Knobs {
        time_scale: 0.0,
        rate_per_second: 1e9,
        rate_burst: 1e9,
        catalog_rate_per_second: 1e9,
        catalog_rate_burst: 1e9,
        list_lag_seconds: 0.0,
        ..Knobs::default()
    }
}

#[tokio::test]
async fn service_catalog_answers_fit_botocore_and_its_constraints_are_enforced() {
    let (simulator, address) = serve(calm()).await;
    simulator.with_model(|model| {
        model.seed_portfolios(vec![PortfolioSeed {
            portfolio_id: PORTFOLIO.to_owned(),
            principals: (0..3)
                .map(|n| {
                    PortfolioPrincipal::new(
                        format!("arn:aws:iam::111122223333:role/Seeded{n}"),
                        PortfolioPrincipalType::Iam,
                    )
                })
                .chain([PortfolioPrincipal::new(
                    "arn:aws:iam:::role/Team*",
                    PortfolioPrincipalType::IamPattern,
                )])
                .collect(),
        }])
    });
    let mut walker = Walker::new("servicecatalog", "InvalidParametersException", address);

    walker
        .operation(
            "AssociatePrincipalWithPortfolio",
            json!({"AcceptLanguage": "en", "PortfolioId": PORTFOLIO,
                   "PrincipalARN": WALKER_ROLE, "PrincipalType": "IAM"}),
        )
        .await;
    // A first page, for a token to use in the sample of the next.
    let first = walker
        .operation(
            "ListPrincipalsForPortfolio",
            json!({"AcceptLanguage": "en", "PortfolioId": PORTFOLIO, "PageSize": 1}),
        )
        .await;
    let token = first["NextPageToken"].as_str().map(str::to_owned);
    walker.check(token.is_some(), || {
        format!("a first page of 1 of 5 principals has no NextPageToken: {first}")
    });
    walker
        .operation(
            "ListPrincipalsForPortfolio",
            json!({"AcceptLanguage": "en", "PortfolioId": PORTFOLIO, "PageSize": 2,
                   "PageToken": token}),
        )
        .await;
    walker
        .operation(
            "DisassociatePrincipalFromPortfolio",
            json!({"AcceptLanguage": "en", "PortfolioId": PORTFOLIO,
                   "PrincipalARN": WALKER_ROLE, "PrincipalType": "IAM"}),
        )
        .await;

    // Every operation the simulator serves for this service was walked.
    let served: BTreeSet<String> = [
        "AssociatePrincipalWithPortfolio",
        "DisassociatePrincipalFromPortfolio",
        "ListPrincipalsForPortfolio",
    ]
    .map(str::to_owned)
    .into();
    let walked = format!(
        "walked {:?}, the simulator serves {served:?}",
        walker.served
    );
    walker.check(walker.served == served, || walked);
    walker.finish();
}

const INSTANCE: &str = "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40";
const OTHER_INSTANCE: &str = "arn:aws:sso:::instance/ssoins-1111222233334444";
const PS1: &str = "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b";
const PS2: &str = "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-8b7a6f5e4d3c2b1a";
const USER: &str = "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10";
const OTHER_USER: &str = "9067a1b2c3-0a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d";

fn assignment(account: &str, permission_set: &str, principal: &str) -> idc_sim::Assignment {
    idc_sim::Assignment {
        instance_arn: INSTANCE.to_owned(),
        account_id: account.to_owned(),
        permission_set_arn: permission_set.to_owned(),
        principal_type: "USER".to_owned(),
        principal_id: principal.to_owned(),
    }
}

fn assignment_request(account: &str, permission_set: &str) -> Value {
    json!({"InstanceArn": INSTANCE, "TargetId": account, "TargetType": "AWS_ACCOUNT",
           "PermissionSetArn": permission_set, "PrincipalType": "USER", "PrincipalId": USER})
}

/// Walks two pages of a List operation: the first (MaxResults 1) gives the token the
/// second's sample uses.
async fn two_pages(walker: &mut Walker, operation: &str, request: Value) {
    let mut first = request.clone();
    first["MaxResults"] = json!(1);
    let answer = walker.operation(operation, first).await;
    let token = answer["NextToken"].as_str().map(str::to_owned);
    let missing = format!("{operation}: a first page of 1 has no NextToken: {answer}");
    walker.check(token.is_some(), || missing);
    let mut second = request;
    second["MaxResults"] = json!(100);
    second["NextToken"] = json!(token);
    walker.operation(operation, second).await;
}

#[tokio::test]
async fn sso_admin_answers_fit_botocore_and_its_constraints_are_enforced() {
    let (simulator, address) = serve(Knobs {
        not_visible_seconds: 0.0,
        ..calm()
    })
    .await;
    simulator.with_model(|model| {
        model.seed(idc_sim::Seed {
            instances: vec![INSTANCE.to_owned(), OTHER_INSTANCE.to_owned()],
            permission_sets: vec![PS1.to_owned(), PS2.to_owned()],
            principals: vec![USER.to_owned(), OTHER_USER.to_owned()],
            assignments: vec![
                assignment("444455556666", PS2, USER),
                assignment("444455556666", PS2, OTHER_USER),
                assignment("777788889999", PS2, USER),
            ],
        })
    });
    let mut walker = Walker::new("sso-admin", "ValidationException", address);

    two_pages(
        &mut walker,
        "ListInstances",
        json!({"RegionScope": "CURRENT_REGION"}),
    )
    .await;
    walker
        .operation(
            "CreatePermissionSet",
            json!({"InstanceArn": INSTANCE, "Name": "Read.Only+Ops@team", "Description": "Read-only access, for auditors",
                   "SessionDuration": "PT2H", "RelayState": "https://console.aws.amazon.com/s3/",
                   "Tags": [{"Key": "team", "Value": "ops"}]}),
        )
        .await;
    two_pages(
        &mut walker,
        "ListPermissionSets",
        json!({"InstanceArn": INSTANCE}),
    )
    .await;

    let created = walker
        .operation(
            "CreateAccountAssignment",
            assignment_request("111122223333", PS1),
        )
        .await;
    walker
        .operation(
            "CreateAccountAssignment",
            assignment_request("222233334444", PS1),
        )
        .await;
    let deleted = walker
        .operation(
            "DeleteAccountAssignment",
            assignment_request("777788889999", PS2),
        )
        .await;
    walker
        .operation(
            "DeleteAccountAssignment",
            assignment_request("888899990000", PS2),
        )
        .await;
    let creation_id = created["AccountAssignmentCreationStatus"]["RequestId"].clone();
    let deletion_id = deleted["AccountAssignmentDeletionStatus"]["RequestId"].clone();
    walker
        .operation(
            "DescribeAccountAssignmentCreationStatus",
            json!({"InstanceArn": INSTANCE, "AccountAssignmentCreationRequestId": creation_id}),
        )
        .await;
    walker
        .operation(
            "DescribeAccountAssignmentDeletionStatus",
            json!({"InstanceArn": INSTANCE, "AccountAssignmentDeletionRequestId": deletion_id}),
        )
        .await;
    two_pages(
        &mut walker,
        "ListAccountAssignmentCreationStatus",
        json!({"InstanceArn": INSTANCE, "Filter": {"Status": "IN_PROGRESS"}}),
    )
    .await;
    two_pages(
        &mut walker,
        "ListAccountAssignmentDeletionStatus",
        json!({"InstanceArn": INSTANCE, "Filter": {"Status": "IN_PROGRESS"}}),
    )
    .await;
    two_pages(
        &mut walker,
        "ListAccountAssignments",
        json!({"InstanceArn": INSTANCE, "AccountId": "444455556666", "PermissionSetArn": PS2}),
    )
    .await;

    let served: BTreeSet<String> = [
        "CreateAccountAssignment",
        "DeleteAccountAssignment",
        "DescribeAccountAssignmentCreationStatus",
        "DescribeAccountAssignmentDeletionStatus",
        "ListAccountAssignments",
        "ListAccountAssignmentCreationStatus",
        "ListAccountAssignmentDeletionStatus",
        "ListInstances",
        "CreatePermissionSet",
        "ListPermissionSets",
    ]
    .map(str::to_owned)
    .into();
    let walked = format!(
        "walked {:?}, the simulator serves {served:?}",
        walker.served
    );
    walker.check(walker.served == served, || walked);
    walker.finish();
}
