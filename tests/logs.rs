//! Every log line about a record carries the Lambda request id and the X-Ray trace id
//! (SPEC §12), besides its message id, in the worker's own log format.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use assignment_worker::adapters::memory::MemoryServiceCatalog;
use assignment_worker::adapters::memory::{MemoryLedger, RecordingQueues, ScriptedIdentityCenter};
use assignment_worker::config::Config;
use assignment_worker::handler::{Invocation, Worker};
use assignment_worker::identity_center::{
    CallError, ErrorKind, OperationStatus, OperationSubject, StatusReport,
};
use assignment_worker::portfolio_access::{ListedPrincipal, PortfolioPrincipalType};
use assignment_worker::telemetry::json_subscriber;
use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::{Value, json};
use tracing_subscriber::EnvFilter;

const REQUEST_ID: &str = "8f5e2d1c-0b9a-4876-a543-210fedcba987";
const TRACE_ID: &str = "Root=1-6749a0b0-1a2b3c4d5e6f7a8b9c0d1e2f;Parent=53995c3f42cd8ad8;Sampled=1";

/// Log output kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Captured {
    type Writer = Captured;

    fn make_writer(&'w self) -> Self::Writer {
        self.clone()
    }
}

fn body(action: &str, account: &str) -> String {
    json!({
        "action": action,
        "instanceArn": "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40",
        "permissionSetArn": "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b",
        "targetId": account,
        "principalType": "USER",
        "principalId": "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10",
        "correlationId": format!("CHG-{account}"),
    })
    .to_string()
}

fn config() -> Config {
    let env: HashMap<&str, &str> = HashMap::from([
        (
            "WORK_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/work",
        ),
        (
            "DEAD_LETTER_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
        ),
        (
            "OUTCOME_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/outcomes",
        ),
        ("LEDGER_TABLE", "ledger"),
    ]);
    Config::from_lookup(|name| env.get(name).map(|v| (*v).to_owned())).expect("valid")
}

/// A batch of three records, one whose outcome the queue refuses, logged at `filter`.
fn logged_batch(filter: &str) -> String {
    let config = config();
    let worker = Worker {
        service_catalog: MemoryServiceCatalog::default(),
        identity_center: ScriptedIdentityCenter::new([Err(CallError {
            kind: ErrorKind::RateLimited,
            code: "ThrottlingException".to_owned(),
            message: "Rate exceeded".to_owned(),
        })]),
        // The outcome of the second record is refused: its "send failed" line too.
        queues: RecordingQueues::refusing(["CHG-222233334444"]),
        ledger: MemoryLedger::default(),
        config,
    };
    let bodies = [
        body("create", "111122223333"),
        body("delete", "222233334444"),
        // Invalid, with a correlation id the dead letter salvages.
        json!({"correlationId": "CHG-invalid"}).to_string(),
    ];
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| json!({"messageId": format!("m-{i}"), "body": body}))
        .collect();
    let event: SqsEvent = serde_json::from_value(json!({ "Records": records })).expect("event");

    let captured = Captured::default();
    let subscriber = json_subscriber(EnvFilter::new(filter), captured.clone());
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(worker.handle(
            event,
            &Invocation {
                request_id: REQUEST_ID.to_owned(),
                xray_trace_id: Some(TRACE_ID.to_owned()),
                ..Invocation::default()
            },
        ));
    });
    String::from_utf8(captured.0.lock().expect("log").clone()).expect("UTF-8")
}

#[test]
fn every_line_about_a_record_names_the_invocation_and_its_trace() {
    let output = logged_batch("info");
    let mut about_records = 0;
    let mut send_failed = 0;
    for line in output.lines() {
        let line: Value = serde_json::from_str(line).expect("one JSON object per line");
        // Every line carries the invocation and its trace, the invocation's own lines too.
        let invocation = if line["span"]["request_id"].is_string() {
            &line["span"]
        } else {
            &line["fields"]
        };
        assert_eq!(invocation["request_id"], REQUEST_ID, "{line}");
        assert_eq!(invocation["xray_trace_id"], TRACE_ID, "{line}");
        let about_a_record =
            line["span"]["message_id"].is_string() || line["fields"]["message_id"].is_string();
        about_records += usize::from(about_a_record);
        // SPEC §12: a line about a record carries its correlation id, an invalid body's
        // too when it has a valid one.
        if about_a_record {
            let correlation_id = line["span"]["correlation_id"]
                .as_str()
                .or(line["fields"]["correlation_id"].as_str());
            assert!(
                correlation_id.is_some_and(|id| id.starts_with("CHG-")),
                "no correlation id: {line}"
            );
        }
        if line["fields"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("send failed"))
        {
            send_failed += 1;
            assert!(about_a_record, "the refused send names no record: {line}");
        }
    }
    // Each record's lines (re-enqueue, finish, dead-letter, invalid) and the refused send.
    assert!(about_records >= 5, "{output}");
    assert_eq!(send_failed, 1, "{output}");
}

/// `LogLevel` WARN or ERROR keeps only the warnings and errors: each still names its
/// record, its correlation id and the invocation (the refused send, the dead letter, the
/// invalid body).
#[test]
fn at_warn_every_line_still_names_its_record() {
    let output = logged_batch("warn");
    let lines: Vec<Value> = output
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert!(lines.len() >= 3, "{output}");
    for line in &lines {
        let span = &line["span"];
        assert_eq!(span["request_id"], REQUEST_ID, "{line}");
        assert!(span["message_id"].is_string(), "{line}");
        assert!(
            span["correlation_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("CHG-")),
            "{line}"
        );
    }
    assert!(output.contains("send failed"), "{output}");
}

/// SPEC §12: no principal ids at `info`. A deployment logs at INFO, so no line it prints
/// (its warnings and errors too) names a principal; the dead letter's `ErrorMessage` and
/// the outcome event carry the details, and DEBUG logs them.
#[test]
fn no_line_printed_at_info_names_a_principal() {
    const PRINCIPAL: &str = "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10";
    const OTHER: &str = "9067a1b2c3-00000000-1111-4222-8333-444444444444";
    const PORTFOLIO: &str = "port-abcdefghijklm";
    const ROLE: &str = "arn:aws:iam::111122223333:role/TeamA-dev";
    const PATTERN: &str = "arn:aws:iam:::role/TeamA-*";
    const NEW_PATTERN: &str = "arn:aws:iam:::role/TeamB-*";
    let config = config();
    let operation = "0f8c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
    let answer = |subject_principal: &str| {
        let mut subject = OperationSubject::of(
            &assignment_worker::request::parse_request(&body("create", "111122223333"))
                .expect("a request")
                .assignment()
                .expect("an assignment")
                .1
                .clone(),
        );
        subject.principal_id = Some(subject_principal.to_owned());
        Ok(StatusReport {
            created_at: None,
            status: OperationStatus::InProgress,
            request_id: Some(operation.to_owned()),
            failure_reason: None,
            subject,
        })
    };
    let listed = |principal_type, arn: &str| ListedPrincipal {
        principal_type,
        principal_arn: arn.to_owned(),
    };
    let worker = Worker {
        service_catalog: MemoryServiceCatalog::default().with_portfolio(
            PORTFOLIO,
            vec![
                listed(PortfolioPrincipalType::Iam, ROLE),
                listed(PortfolioPrincipalType::IamPattern, PATTERN),
            ],
        ),
        // The submit's answer, then a poll answered about another principal.
        identity_center: ScriptedIdentityCenter::new([answer(PRINCIPAL), answer(OTHER)]),
        queues: RecordingQueues::default(),
        ledger: MemoryLedger::default(),
        config,
    };
    let portfolio = |action: &str, principal_type: &str, arn: &str| {
        json!({"action": action, "portfolioId": PORTFOLIO, "principalType": principal_type,
               "principalArn": arn, "correlationId": format!("CHG-{action}")})
        .to_string()
    };
    let mut bodies = vec![
        // Dead-lettered OperationMismatch, naming both principals.
        body("create", "111122223333"),
        // Leaves access through PATTERN: a residual-access warning.
        portfolio("disassociate-portfolio-principal", "IAM", ROLE),
        // Forbidden: a pattern may not be associated.
        portfolio("associate-portfolio-principal", "IAM_PATTERN", NEW_PATTERN),
    ];

    let captured = Captured::default();
    let subscriber = json_subscriber(EnvFilter::new("info"), captured.clone());
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let mut delivered = 0;
        for round in 0..20 {
            if bodies.is_empty() {
                break;
            }
            let records: Vec<Value> = bodies
                .drain(..)
                .enumerate()
                .map(|(i, body)| json!({"messageId": format!("m-{round}-{i}"), "body": body}))
                .collect();
            let event: SqsEvent =
                serde_json::from_value(json!({ "Records": records })).expect("event");
            runtime.block_on(worker.handle(event, &Invocation::default()));
            let work = worker.queues.sent_to(&worker.config.work_queue);
            bodies.extend(work[delivered..].iter().map(|m| m.body.clone()));
            delivered = work.len();
        }
    });

    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    let mut codes: Vec<_> = dead
        .iter()
        .filter_map(|m| m.attribute("ErrorCode"))
        .collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        ["IamPatternNotAllowed", "OperationMismatch"],
        "{dead:?}"
    );
    let outcomes = worker
        .queues
        .sent_to(worker.config.outcome_queue.as_ref().expect("configured"));
    assert!(
        outcomes.iter().any(|m| m.body.contains("residualAccess")),
        "{outcomes:?}"
    );
    let output = String::from_utf8(captured.0.lock().expect("log").clone()).expect("UTF-8");
    assert!(output.contains("dead-lettering"), "{output}");
    for principal in [PRINCIPAL, OTHER, ROLE, PATTERN, NEW_PATTERN] {
        let named = output.lines().find(|line| line.contains(principal));
        assert!(named.is_none(), "{principal} at info: {named:?}");
    }
}
