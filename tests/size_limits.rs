//! Size edges: the largest request the worker accepts goes all the way through (submit,
//! polls through its progress envelope, terminal outcome; and a grant's expiry step),
//! and the smallest one it refuses is dead-lettered before any AWS call. A request
//! whose envelope would not be accepted back must be refused at its first receipt, not
//! after its write was submitted.

use std::collections::HashMap;

use assignment_worker::adapters::memory::MemoryServiceCatalog;
use assignment_worker::adapters::memory::{
    Call, MemoryLedger, RecordingQueues, ScriptedIdentityCenter,
};
use assignment_worker::config::Config;
use assignment_worker::handler::{Worker, function_handler};
use assignment_worker::identity_center::{CallResult, OperationStatus, StatusReport};
use assignment_worker::request::{MAX_BODY_BYTES, MAX_REQUEST_BYTES, parse_body};
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

const WORK: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/assignment-work";
const DLQ: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/assignment-dlq";
const OUTCOMES: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/assignment-outcomes";
/// A request id of the longest length a poll envelope carries.
const LONGEST_REQUEST_ID: usize = 256;

fn worker(
    script: Vec<CallResult>,
) -> Worker<ScriptedIdentityCenter, RecordingQueues, MemoryLedger, MemoryServiceCatalog> {
    let env: HashMap<&str, &str> = HashMap::from([
        ("WORK_QUEUE_URL", WORK),
        ("DEAD_LETTER_QUEUE_URL", DLQ),
        ("OUTCOME_QUEUE_URL", OUTCOMES),
        ("LEDGER_TABLE", "assignment-ledger"),
    ]);
    Worker {
        service_catalog: MemoryServiceCatalog::default(),
        ledger: MemoryLedger::default(),
        identity_center: ScriptedIdentityCenter::new(script),
        queues: RecordingQueues::default(),
        config: Config::from_lookup(|name| env.get(name).map(|v| (*v).to_owned())).expect("valid"),
    }
}

fn in_progress() -> CallResult {
    Ok(StatusReport {
        created_at: None,
        status: OperationStatus::InProgress,
        request_id: Some("r".repeat(LONGEST_REQUEST_ID)),
        failure_reason: None,
        subject: Default::default(),
    })
}

/// A grant with every field at its longest, padded with whitespace (which JSON allows
/// and the worker keeps byte for byte) to exactly `bytes`.
fn request_of(bytes: usize) -> String {
    let far = "2999-12-31T23:59:59.999999999+23:59";
    let compact = json!({
        "action": "create",
        "instanceArn": "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40",
        "permissionSetArn": "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b",
        "targetId": "111122223333", "principalType": "USER",
        "principalId": "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10",
        "correlationId": "\u{fffd}".repeat(256),
        "requestedAt": "2026-11-22T04:00:00.123456789+00:00",
        "notAfter": far,
    })
    .to_string();
    assert!(
        compact.len() < bytes,
        "{} bytes do not hold a request",
        bytes
    );
    let body = format!(
        "{}{}}}",
        &compact[..compact.len() - 1],
        " ".repeat(bytes - compact.len())
    );
    assert_eq!(body.len(), bytes);
    body
}

fn event(body: &str, message_id: &str) -> SqsEvent {
    serde_json::from_value(json!({"Records": [{
        "messageId": message_id, "receiptHandle": "rh", "body": body,
        "attributes": {"SentTimestamp": "1763785200000"}, "messageAttributes": {},
        "eventSource": "aws:sqs",
    }]}))
    .expect("an SQS event")
}

/// The largest request size `parse_body` accepts, found by bisection.
fn largest_accepted() -> usize {
    let (mut accepted, mut refused) = (4096, MAX_BODY_BYTES + 1);
    assert!(parse_body(&request_of(accepted)).is_ok());
    assert!(parse_body(&request_of(refused)).is_err());
    while refused - accepted > 1 {
        let middle = (accepted + refused) / 2;
        if parse_body(&request_of(middle)).is_ok() {
            accepted = middle;
        } else {
            refused = middle;
        }
    }
    accepted
}

/// Runs `body` through a fresh batch; returns the messages stored per queue.
async fn step(
    worker: &Worker<ScriptedIdentityCenter, RecordingQueues, MemoryLedger, MemoryServiceCatalog>,
    body: &str,
    message_id: &str,
) -> usize {
    let before = worker.queues.sent().len();
    let response = function_handler(
        worker,
        LambdaEvent::new(event(body, message_id), Context::default()),
    )
    .await
    .expect("a batch response");
    assert!(response.batch_item_failures.is_empty());
    worker.queues.sent().len() - before
}

#[tokio::test]
async fn the_largest_accepted_request_goes_all_the_way_through() {
    let largest = largest_accepted();
    assert_eq!(largest, MAX_REQUEST_BYTES);
    // submit: IN_PROGRESS; poll: IN_PROGRESS; poll: SUCCEEDED; then the expiry step.
    let worker = worker(vec![in_progress(), in_progress()]);
    let request = request_of(largest);

    assert_eq!(step(&worker, &request, "m-1").await, 1);
    for round in 2..=3 {
        let work = worker.queues.sent_to(&worker.config.work_queue);
        let envelope = work.last().expect("re-enqueued").body.clone();
        assert!(
            envelope.len() <= MAX_BODY_BYTES,
            "round {round}: {} bytes",
            envelope.len()
        );
        assert!(
            parse_body(&envelope).is_ok(),
            "round {round}: the envelope is accepted back"
        );
        step(&worker, &envelope, &format!("m-{round}")).await;
    }
    let outcomes = worker
        .queues
        .sent_to(worker.config.outcome_queue.as_ref().expect("configured"));
    let outcome: Value =
        serde_json::from_str(&outcomes.last().expect("an outcome").body).expect("JSON");
    assert_eq!(
        outcome["outcome"], "succeeded",
        "{}",
        outcome["errorMessage"]
    );
    assert!(
        worker
            .queues
            .sent_to(&worker.config.dead_letter_queue)
            .is_empty()
    );
    // The expiry step, stored with the outcome, is accepted back too.
    let expiry = worker.queues.sent_to(&worker.config.work_queue);
    let expiry = &expiry.last().expect("the expiry step").body;
    assert!(expiry.contains("expire-wait"));
    assert!(expiry.len() <= MAX_BODY_BYTES && parse_body(expiry).is_ok());
    assert_eq!(worker.identity_center.calls().len(), 3);
}

#[tokio::test]
async fn the_smallest_refused_request_is_dead_lettered_before_any_call() {
    let refused = largest_accepted() + 1;
    let worker = worker(vec![]);
    let request = request_of(refused);
    step(&worker, &request, "m-1").await;
    assert_eq!(worker.identity_center.calls(), Vec::<Call>::new());
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attribute("ErrorClass"), Some("invalid-request"));
    assert_eq!(dead[0].attribute("ErrorCode"), Some("RequestTooLarge"));
    assert_eq!(dead[0].body, request, "the body as received");
}

/// An SNS notification carries its request as a JSON string, so the request unwrapped
/// from it holds U+FFFE raw where the body had `\ufffe`; the worker's envelope, which SQS
/// must accept, escapes it again, six bytes where it counted three. Such a correlation id
/// cannot be echoed in a dead letter's attribute either: the request is refused at once.
#[tokio::test]
async fn a_request_whose_envelope_would_grow_is_refused_before_any_call() {
    let compact = request_of(4096);
    let mut request: Value = serde_json::from_str(&compact).expect("JSON");
    request["correlationId"] = json!("\u{fffe}".repeat(256));
    let compact = request.to_string();
    let inner = format!(
        "{}{}}}",
        &compact[..compact.len() - 1],
        " ".repeat(MAX_REQUEST_BYTES - compact.len())
    );
    assert_eq!(inner.len(), MAX_REQUEST_BYTES);
    let body = json!({
        "Type": "Notification",
        "MessageId": "5f0e6a4c-1d2b-4e3f-9a8b-7c6d5e4f3a2b",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:access-decisions",
        "Message": inner,
        "Timestamp": "2026-11-22T04:00:00.000Z",
    })
    .to_string()
    .replace('\u{fffe}', "\\ufffe");
    assert!(body.len() <= MAX_BODY_BYTES, "{} bytes", body.len());

    let worker = worker(vec![in_progress()]);
    step(&worker, &body, "m-1").await;
    // Before: the create was made and its poll envelope, 768 bytes over, was
    // dead-lettered as too large, leaving the grant with no expiry.
    assert_eq!(worker.identity_center.calls(), Vec::<Call>::new());
    assert!(worker.queues.sent_to(&worker.config.work_queue).is_empty());
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attribute("ErrorClass"), Some("invalid-request"));
    assert_eq!(dead[0].attribute("ErrorCode"), Some("NotPrintable"));
}

/// SQS takes bodies up to 256 KiB, the worker requests up to 64 KiB: a body in between
/// is refused, and its dead letter (the body and the reason's attributes) must still be
/// one message SQS stores, or the reason is lost when SQS moves the record itself.
#[tokio::test]
async fn the_dead_letter_of_a_body_at_the_queues_limit_fits_the_queue() {
    const SQS_MAX_MESSAGE_BYTES: usize = 262_144;
    let worker = worker(vec![]);
    let body = request_of(SQS_MAX_MESSAGE_BYTES);
    step(&worker, &body, "m-1").await;
    assert_eq!(worker.identity_center.calls(), Vec::<Call>::new());
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attribute("ErrorCode"), Some("BodyTooLarge"));
    assert!(
        dead[0].size() <= SQS_MAX_MESSAGE_BYTES,
        "{} bytes",
        dead[0].size()
    );
    assert!(body.starts_with(&dead[0].body), "the body's first bytes");
    let message = dead[0].attribute("ErrorMessage").unwrap_or_default();
    assert!(
        message.contains(&format!("{} bytes", dead[0].body.len())),
        "{message}"
    );
}
