//! The EMF documents the handler writes (SPEC §12): every one fits CloudWatch's
//! `_aws.CloudWatchMetrics` schema, the values match a scripted run, and no dimension
//! holds an account, principal or correlation id.

use std::collections::{BTreeMap, HashMap};

use assignment_worker::adapters::memory::MemoryServiceCatalog;
use assignment_worker::adapters::memory::{MemoryLedger, RecordingQueues, ScriptedIdentityCenter};
use assignment_worker::config::Config;
use assignment_worker::handler::{Invocation, Worker};
use assignment_worker::identity_center::{
    CallError, CallResult, ErrorKind, OperationStatus, StatusReport,
};
use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::{Value, json};

const INSTANCE: &str = "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40";
const PERMISSION_SET: &str =
    "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b";
const PRINCIPAL: &str = "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10";

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
        ("METRICS_NAMESPACE", "Test/Worker"),
        // One record at a time: the script answers calls in the order records arrive.
        ("MAX_CONCURRENCY", "1"),
    ]);
    Config::from_lookup(|name| env.get(name).map(|v| (*v).to_owned())).expect("valid")
}

fn body(action: &str, account: &str, correlation_id: &str) -> String {
    json!({
        "action": action,
        "instanceArn": INSTANCE,
        "permissionSetArn": PERMISSION_SET,
        "targetId": account,
        "principalType": "USER",
        "principalId": PRINCIPAL,
        "correlationId": correlation_id,
    })
    .to_string()
}

fn event(bodies: &[String]) -> SqsEvent {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            json!({
                "messageId": format!("00000000-0000-4000-8000-{i:012}"),
                "body": body,
                "attributes": {"SentTimestamp": "1764000000000"},
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("an SQS event")
}

fn throttled(message: &str) -> CallResult {
    Err(CallError {
        kind: if message.contains("processing") {
            ErrorKind::Busy
        } else {
            ErrorKind::RateLimited
        },
        code: "ThrottlingException".to_owned(),
        message: message.to_owned(),
    })
}

fn succeeded() -> CallResult {
    Ok(StatusReport {
        created_at: None,
        status: OperationStatus::Succeeded,
        request_id: Some("11111111-2222-4333-8444-555555555555".to_owned()),
        failure_reason: None,
        subject: Default::default(),
    })
}

type TestWorker =
    Worker<ScriptedIdentityCenter, RecordingQueues, MemoryLedger, MemoryServiceCatalog>;

fn worker(script: Vec<CallResult>) -> TestWorker {
    Worker {
        service_catalog: MemoryServiceCatalog::default(),
        identity_center: ScriptedIdentityCenter::new(script),
        queues: RecordingQueues::default(),
        ledger: MemoryLedger::default(),
        config: config(),
    }
}

/// Runs one batch and returns the EMF documents written, parsed line by line.
async fn documents(script: Vec<CallResult>, bodies: &[String]) -> Vec<Value> {
    documents_of(&worker(script), bodies).await
}

/// The EMF documents of one invocation of `worker` over `bodies`.
async fn documents_of(worker: &TestWorker, bodies: &[String]) -> Vec<Value> {
    let invocation = Invocation::default();
    worker.handle(event(bodies), &invocation).await;
    let mut out = Vec::new();
    invocation
        .metrics
        .write("Test/Worker", 1_764_000_000_000, &mut out)
        .expect("written");
    String::from_utf8(out)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON document"))
        .collect()
}

/// Checks a document against the EMF specification; returns its metric values.
fn check_schema(document: &Value) -> BTreeMap<String, Value> {
    let root = document.as_object().expect("a JSON object");
    let aws = root["_aws"].as_object().expect("_aws");
    assert!(aws["Timestamp"].is_i64(), "{document}");
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics");
    assert_eq!(directives.len(), 1);
    let directive = &directives[0];
    assert_eq!(directive["Namespace"], "Test/Worker");
    let mut values = BTreeMap::new();
    for set in directive["Dimensions"].as_array().expect("Dimensions") {
        let set = set.as_array().expect("a dimension set");
        assert!(set.len() <= 30);
        for name in set {
            let name = name.as_str().expect("a dimension name");
            assert!(
                root[name].is_string(),
                "dimension {name} has a string value: {document}"
            );
        }
    }
    for metric in directive["Metrics"].as_array().expect("Metrics") {
        let name = metric["Name"].as_str().expect("Name");
        let unit = metric["Unit"].as_str().expect("Unit");
        assert!(["Count", "Milliseconds"].contains(&unit), "{unit}");
        let value = &root[name];
        match value {
            Value::Number(_) => {}
            Value::Array(items) => {
                assert!(!items.is_empty() && items.len() <= 100, "{name}");
                assert!(items.iter().all(Value::is_number), "{name}");
            }
            other => panic!("metric {name} has no numeric value: {other}"),
        }
        values.insert(name.to_owned(), value.clone());
    }
    values
}

fn dimensions(document: &Value) -> BTreeMap<String, String> {
    document["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
        .as_array()
        .expect("a dimension set")
        .iter()
        .filter_map(Value::as_str)
        .map(|name| {
            (
                name.to_owned(),
                document[name].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn find<'a>(documents: &'a [Value], dims: &[(&str, &str)]) -> &'a Value {
    documents
        .iter()
        .find(|d| {
            let have = dimensions(d);
            have.len() == dims.len()
                && dims
                    .iter()
                    .all(|(k, v)| have.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no document with {dims:?} in {documents:#?}"))
}

#[tokio::test]
async fn three_throttles_give_throttled_three_and_every_document_fits_the_schema() {
    let bodies = [
        body("create", "111122223333", "CHG-1"),
        body("create", "222233334444", "CHG-2"),
        body("create", "333344445555", "CHG-3"),
        body("delete", "444455556666", "CHG-4"),
        "{\"action\": \"create\"}".to_owned(),
    ];
    let script = vec![
        throttled("Rate exceeded"),
        throttled("Rate exceeded"),
        throttled("There are too many requests processing. Please try again later."),
        succeeded(),
    ];
    let documents = documents(script, &bodies).await;
    assert!(!documents.is_empty());
    for document in &documents {
        check_schema(document);
    }

    let create = check_schema(find(&documents, &[("Api", "CreateAccountAssignment")]));
    assert_eq!(create["Calls"], 3);
    assert_eq!(create["Throttled"], 3);
    assert_eq!(create["ThrottledRate"], 2);
    assert_eq!(create["ThrottledBusy"], 1);
    assert_eq!(create["Succeeded"], 0);
    let delete = check_schema(find(&documents, &[("Api", "DeleteAccountAssignment")]));
    assert_eq!(delete["Calls"], 1);
    assert_eq!(delete["Succeeded"], 1);
    // Four claims and the delete's record: the ledger's calls are counted too.
    let ledger = check_schema(find(&documents, &[("Api", "UpdateItem")]));
    assert_eq!(ledger["Calls"], 5);

    let done = check_schema(find(
        &documents,
        &[("Action", "delete"), ("Outcome", "succeeded")],
    ));
    assert_eq!(done["Requests"], 1);
    assert_eq!(done["TimeToOutcome"].as_array().map(Vec::len), Some(1));
    let invalid = check_schema(find(
        &documents,
        &[
            ("Action", "unknown"),
            ("Outcome", "dead-lettered"),
            ("ErrorClass", "invalid-request"),
        ],
    ));
    assert_eq!(invalid["Requests"], 1);
    let worker = check_schema(find(&documents, &[]));
    assert_eq!(worker["Retries"], 3);
    assert_eq!(worker["Superseded"], 0);
}

#[tokio::test]
async fn no_dimension_names_an_account_a_principal_or_a_correlation_id() {
    let bodies: Vec<String> = (0..10)
        .map(|i| {
            body(
                if i % 2 == 0 { "create" } else { "delete" },
                &format!("{:012}", 100_000_000_000u64 + i),
                &format!("CHG-{i}"),
            )
        })
        .collect();
    let documents = documents(vec![], &bodies).await;
    let allowed_names = ["Action", "Outcome", "ErrorClass", "Api"];
    for document in &documents {
        check_schema(document);
        for (name, value) in dimensions(document) {
            assert!(allowed_names.contains(&name.as_str()), "{name}");
            assert!(!value.chars().any(|c| c.is_ascii_digit()), "{name}={value}");
            assert!(
                !value.contains("CHG") && !value.contains(PRINCIPAL),
                "{name}={value}"
            );
        }
    }
    let creates = check_schema(find(
        &documents,
        &[("Action", "create"), ("Outcome", "succeeded")],
    ));
    assert_eq!(creates["Requests"], 5);
}

#[tokio::test]
async fn more_than_100_outcomes_are_split_across_documents() {
    let bodies: Vec<String> = (0..10)
        .map(|i| {
            body(
                "delete",
                &format!("{:012}", 200_000_000_000u64 + i),
                &format!("D-{i}"),
            )
        })
        .collect();
    let worker = Worker {
        service_catalog: MemoryServiceCatalog::default(),
        identity_center: ScriptedIdentityCenter::new(vec![]),
        queues: RecordingQueues::default(),
        ledger: MemoryLedger::default(),
        config: config(),
    };
    let invocation = Invocation::default();
    for _ in 0..11 {
        worker.handle(event(&bodies), &invocation).await;
    }
    let documents = invocation.metrics.documents("Test/Worker", 0);
    let deletes: Vec<&Value> = documents
        .iter()
        .filter(|d| d["Action"] == "delete" && d["Outcome"].is_string())
        .collect();
    let total: u64 = deletes
        .iter()
        .map(|d| d["Requests"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, 110);
    assert_eq!(deletes.len(), 2);
    for document in deletes {
        check_schema(document);
    }
}

/// A grant that arrives years after its notAfter is refused as `expired`, and its expiry
/// runs at once: that expiry is not years late. Its time to outcome counts from the
/// grant's arrival, or the time-to-outcome alarm would fire for the sender's delay.
#[tokio::test]
async fn the_expiry_of_a_grant_that_arrived_after_its_not_after_counts_from_its_arrival() {
    let worker = worker(vec![succeeded()]);
    let mut grant: Value =
        serde_json::from_str(&body("create", "111122223333", "CHG-LATE")).expect("JSON");
    grant["notAfter"] = json!("2020-01-01T00:00:00Z");
    documents_of(&worker, &[grant.to_string()]).await;
    let expiry = worker
        .queues
        .sent_to(&worker.config.work_queue)
        .last()
        .expect("the expiry step")
        .body
        .clone();

    let documents = documents_of(&worker, &[expiry]).await;
    let done = check_schema(find(
        &documents,
        &[("Action", "delete"), ("Outcome", "succeeded")],
    ));
    let lateness_ms = done["TimeToOutcome"][0].as_f64().expect("a time");
    // From notAfter it would be years; from the arrival, the two invocations above.
    assert!(lateness_ms < 3_600_000.0, "{lateness_ms} ms");
}

/// A restored-expiry step that is dead-lettered counts as a dead letter of its class
/// (the class alarms read it), but with no time to outcome: the undone request's first
/// receipt was days before, and the later grant's end the revoke came due at is not in
/// the step. Nor does it send an outcome event: the undone request sent its one
/// outcome when the undo ended, and the dead letter is the operator's.
#[tokio::test]
async fn a_dead_lettered_restored_expiry_counts_untimed_and_sends_no_second_outcome() {
    use assignment_worker::ledger::{
        AccessDecision, DecisionOrder, Intent, Ledger, LedgerKey, RecordedState,
    };
    let worker = worker(vec![Err(CallError {
        kind: ErrorKind::AccessDenied,
        code: "AccessDeniedException".to_owned(),
        message: "not allowed".to_owned(),
    })]);
    let mut revoke: Value =
        serde_json::from_str(&body("delete", "111122223333", "REVOKE-EARLIER")).expect("JSON");
    revoke["requestedAt"] = json!("2026-11-29T10:00:01Z");
    let parsed = assignment_worker::request::parse_request(&revoke.to_string()).expect("valid");
    let (_, assignment) = parsed.assignment().expect("an assignment");
    // The later grant the undo restored the access for; its notAfter has passed.
    let later_grant = AccessDecision {
        order: DecisionOrder {
            requested_at: time::macros::datetime!(2026-11-29 10:00:02 UTC),
            intent: Intent::Grant,
            correlation_id: Some("GRANT-LATER".to_owned()),
            first_message_id: "m-grant".to_owned(),
        },
        not_after: Some(time::macros::datetime!(2026-11-29 11:00:00 UTC)),
    };
    worker
        .ledger
        .claim(
            &LedgerKey::assignment(assignment),
            &later_grant,
            RecordedState::Pending,
            time::OffsetDateTime::now_utc(),
        )
        .await
        .expect("claimed");
    let step = json!({
        "request": revoke,
        "progress": {
            "step": "expire-wait", "operation": "delete", "purpose": "restored-expiry",
            "attempt": 1, "firstReceivedAt": "2026-11-29T10:00:01Z",
            "requestedAt": "2026-11-29T10:00:01Z", "firstMessageId": "m-revoke",
            "supersededBy": {"correlationId": "GRANT-LATER", "requestedAt": "2026-11-29T10:00:02Z"}
        }
    });

    let documents = documents_of(&worker, &[step.to_string()]).await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1, "the restored-expiry's revoke was refused");
    let dead_lettered = check_schema(find(
        &documents,
        &[
            ("Action", "delete"),
            ("Outcome", "dead-lettered"),
            ("ErrorClass", "permanent"),
        ],
    ));
    assert_eq!(dead_lettered["Requests"], json!(1));
    assert!(
        documents.iter().all(|d| d.get("TimeToOutcome").is_none()),
        "{documents:#?}"
    );
    let outcomes = worker
        .queues
        .sent_to(worker.config.outcome_queue.as_ref().expect("configured"));
    assert!(outcomes.is_empty(), "{outcomes:?}");
}

/// SPEC §12 counts residual-access reports: a removal whose principal a pattern of the
/// portfolio still admits counts one, and the warning log alone would not alarm anyone.
/// Like every outcome count, it counts once the outcome is stored: a refused send leaves
/// the record to run again, and counts nothing.
#[tokio::test]
async fn a_removal_that_leaves_residual_access_counts_one_report_once_stored() {
    assert_eq!(residual_access_reports(RecordingQueues::default()).await, 1);
    let refusing_the_outcome = RecordingQueues::refusing(["residualAccess"]);
    assert_eq!(residual_access_reports(refusing_the_outcome).await, 0);
}

/// Removes a role that a pattern of the portfolio still admits, through `queues`: the
/// removal, then each step it stores, one invocation each, until none is left. The
/// ResidualAccessReports counted.
async fn residual_access_reports(queues: RecordingQueues) -> u64 {
    use assignment_worker::portfolio_access::{ListedPrincipal, PortfolioPrincipalType};
    const ROLE: &str = "arn:aws:iam::111122223333:role/TeamA-dev";
    let listed = |principal_type, arn: &str| ListedPrincipal {
        principal_type,
        principal_arn: arn.to_owned(),
    };
    let worker = Worker {
        service_catalog: MemoryServiceCatalog::default().with_portfolio(
            "port-abcdefghijklm",
            vec![
                listed(PortfolioPrincipalType::Iam, ROLE),
                listed(
                    PortfolioPrincipalType::IamPattern,
                    "arn:aws:iam:::role/Team*",
                ),
            ],
        ),
        queues,
        ..worker(vec![])
    };
    let removal = json!({
        "action": "disassociate-portfolio-principal",
        "portfolioId": "port-abcdefghijklm",
        "principalType": "IAM",
        "principalArn": ROLE,
        "correlationId": "CHG-REMOVE",
    });
    let mut reports = 0;
    let mut next = vec![removal.to_string()];
    let mut stored = 0;
    for _ in 0..10 {
        let Some(body) = next.pop() else { break };
        let documents = documents_of(&worker, &[body]).await;
        reports += documents
            .iter()
            .filter_map(|d| d.get("ResidualAccessReports"))
            .map(|n| n.as_u64().expect("a count"))
            .sum::<u64>();
        let work = worker.queues.sent_to(&worker.config.work_queue);
        next.extend(work[stored..].iter().map(|m| m.body.clone()));
        stored = work.len();
    }
    assert!(next.is_empty(), "the removal ended");
    reports
}
