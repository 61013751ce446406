//! Times at the ends of what RFC 3339 can write (year 0000 and 9999, offsets of almost a
//! day) in every time field a request or an envelope carries: the worker ends each record
//! without a panic. A panic is caught per record, but the record then comes back until
//! SQS moves it to the native dead-letter queue, with no reason and no outcome.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use assignment_worker::adapters::dynamodb::DynamoDbLedger;
use assignment_worker::adapters::memory::{
    MemoryLedger, MemoryServiceCatalog, RecordingQueues, ScriptedIdentityCenter,
};
use assignment_worker::config::Config;
use assignment_worker::handler::{Worker, function_handler};
use assignment_worker::ledger::{Ledger, LedgerKey};
use assignment_worker::request::parse_request;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use support::{Moto, create_ledger_table};

const EXTREMES: [&str; 4] = [
    "0000-01-01T00:00:00+23:59",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "9999-12-31T23:59:59.999999999-23:59",
];

fn config() -> Config {
    let env: HashMap<&str, &str> = HashMap::from([
        (
            "WORK_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/1/work",
        ),
        (
            "DEAD_LETTER_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/1/dlq",
        ),
        (
            "OUTCOME_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/1/outcomes",
        ),
        ("LEDGER_TABLE", "assignment-ledger"),
    ]);
    Config::from_lookup(|name| env.get(name).map(|v| (*v).to_owned())).expect("valid")
}

/// The end of the principal id of [`request`]: each case puts its own number there, so
/// that every case has its own ledger item.
const PRINCIPAL_END: &str = "1b6c5a3e7f10";

fn request(action: &str, extra: &[(&str, &str)]) -> Value {
    let mut body = json!({
        "action": action,
        "instanceArn": "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40",
        "permissionSetArn": "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b",
        "targetId": "111122223333",
        "principalType": "USER",
        "principalId": "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10",
        "correlationId": "EXTREME-1",
    });
    for (key, value) in extra {
        body[*key] = Value::from(*value);
    }
    body
}

/// Every body to try with the time `at`: requests, and envelopes of each step kind; with
/// whether it is a grant request with that `notAfter` (which claims in every case:
/// pending, or absent when expired).
fn bodies(at: &str) -> Vec<(String, bool)> {
    let now = "2026-11-30T10:00:00Z";
    let mut bodies = Vec::new();
    for action in ["create", "delete"] {
        bodies.push((request(action, &[("requestedAt", at)]).to_string(), false));
        bodies.push((
            request(action, &[("notAfter", at)]).to_string(),
            action == "create",
        ));
        let operation = action;
        for (submitted, received, requested) in [(at, now, now), (now, at, now), (now, now, at)] {
            bodies.push((
                json!({
                    "request": request(action, &[("notAfter", at)]),
                    "progress": {"step": "poll", "operation": operation,
                                 "operationRequestId": "7c1e3f0a-9b2d-4e5f-8a6b-0c1d2e3f4a5b",
                                 "attempt": 1, "polls": 1, "firstReceivedAt": received,
                                 "submittedAt": submitted, "requestedAt": requested,
                                 "firstMessageId": "m-first"},
                })
                .to_string(),
                false,
            ));
        }
    }
    for purpose in ["expiry", "restored-expiry"] {
        let mut progress = json!({"step": "expire-wait", "operation": "delete",
                                  "purpose": purpose, "attempt": 1,
                                  "firstReceivedAt": at, "requestedAt": at,
                                  "firstMessageId": "m-first"});
        if purpose == "restored-expiry" {
            progress["supersededBy"] = json!({"requestedAt": at});
        }
        bodies.push((
            json!({"request": request("create", &[("notAfter", at), ("requestedAt", at)]),
                   "progress": progress})
            .to_string(),
            false,
        ));
    }
    bodies
}

fn event(body: &str, receive_count: u32) -> SqsEvent {
    serde_json::from_value(json!({"Records": [{
        "messageId": "m-extreme", "receiptHandle": "rh", "body": body,
        "attributes": {"SentTimestamp": "1764496800000",
                       "ApproximateReceiveCount": receive_count.to_string()},
        "messageAttributes": {}, "eventSource": "aws:sqs",
    }]}))
    .expect("an SQS event")
}

/// Runs every body with every extreme time through a worker on `ledger()`, and each
/// step it stores once (not an expiry's wait), checking that nothing panicked and that
/// the ledger's item reads back (and is there, for a grant request); returns how many
/// cases ran. Each case has its own principal, so its own ledger item.
async fn run_all<L: Ledger>(ledger: impl Fn() -> L, panics: &AtomicUsize) -> usize {
    let mut tried = 0;
    for at in EXTREMES {
        for (body, claims) in bodies(at) {
            for receive_count in [1, 2] {
                let principal_end = format!("{tried:012x}");
                let body = body.replace(PRINCIPAL_END, &principal_end);
                let own = request("create", &[])
                    .to_string()
                    .replace(PRINCIPAL_END, &principal_end);
                let parsed = parse_request(&own).expect("a valid request");
                let key = LedgerKey::assignment(parsed.assignment().expect("an assignment").1);
                let worker = Worker {
                    service_catalog: MemoryServiceCatalog::default(),
                    ledger: ledger(),
                    identity_center: ScriptedIdentityCenter::new(vec![]),
                    queues: RecordingQueues::default(),
                    config: config(),
                };
                let before = panics.load(Ordering::SeqCst);
                function_handler(
                    &worker,
                    LambdaEvent::new(event(&body, receive_count), Context::default()),
                )
                .await
                .expect("a batch response");
                for step in worker.queues.sent_to(&worker.config.work_queue) {
                    if !step.body.contains("expire-wait") {
                        function_handler(
                            &worker,
                            LambdaEvent::new(event(&step.body, 1), Context::default()),
                        )
                        .await
                        .expect("a batch response");
                    }
                }
                assert_eq!(
                    panics.load(Ordering::SeqCst),
                    before,
                    "a panic on {body} (receive count {receive_count})"
                );
                // What the ledger stored reads back: an item its reads refuse would
                // stop every later step on the assignment.
                let read = worker.ledger.latest_with_state(&key).await;
                match read {
                    Ok(Some(_)) => {}
                    Ok(None) if !claims => {}
                    other => panic!("{other:?} after {body}"),
                }
                tried += 1;
            }
        }
    }
    tried
}

/// With the memory ledger and with the DynamoDB ledger on moto (its keys and conditions
/// write times as text).
#[tokio::test]
async fn extreme_times_end_every_record_without_a_panic() {
    let panics = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&panics);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        seen.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    let cases = EXTREMES.len() * 12 * 2;
    assert_eq!(run_all(MemoryLedger::default, &panics).await, cases);

    let moto = Moto::start();
    let shared = moto.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&shared);
    create_ledger_table(&dynamodb, "assignment-ledger").await;
    let ledger = || DynamoDbLedger::new(dynamodb.clone(), "assignment-ledger");
    assert_eq!(run_all(ledger, &panics).await, cases);
}
