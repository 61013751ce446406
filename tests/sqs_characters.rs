//! SQS refuses characters outside #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
//! #x10000-#x10FFFF in bodies and attribute values (SPEC §7). Text decoded from a request
//! (an unknown field's name, a correlation id) is replaced or escaped before sending, or
//! the dead letter or outcome could never be stored. moto's server (5.2.5) does not
//! enforce the rule, so these tests read what the worker hands its queue port.

use std::collections::HashMap;

use assignment_worker::adapters::memory::MemoryServiceCatalog;
use assignment_worker::adapters::memory::{MemoryLedger, RecordingQueues, ScriptedIdentityCenter};
use assignment_worker::config::Config;
use assignment_worker::handler::{Worker, function_handler};
use assignment_worker::messages::sqs_accepts;
use assignment_worker::queue::OutgoingMessage;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

const WORK: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/assignment-work";
const DLQ: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/assignment-dlq";
const OUTCOMES: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/assignment-outcomes";

fn config() -> Config {
    let env: HashMap<&str, &str> = HashMap::from([
        ("WORK_QUEUE_URL", WORK),
        ("DEAD_LETTER_QUEUE_URL", DLQ),
        ("OUTCOME_QUEUE_URL", OUTCOMES),
        ("LEDGER_TABLE", "assignment-ledger"),
        ("PROTECTED_ACCOUNT_IDS", "111122223333"),
    ]);
    Config::from_lookup(|name| env.get(name).map(|v| (*v).to_owned())).expect("valid")
}

fn worker() -> Worker<ScriptedIdentityCenter, RecordingQueues, MemoryLedger, MemoryServiceCatalog> {
    Worker {
        service_catalog: MemoryServiceCatalog::default(),
        ledger: MemoryLedger::default(),
        identity_center: ScriptedIdentityCenter::default(),
        queues: RecordingQueues::default(),
        config: config(),
    }
}

fn event(bodies: &[String]) -> SqsEvent {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            json!({"messageId": format!("m-{i}"), "receiptHandle": format!("rh-{i}"), "body": body,
                   "attributes": {"SentTimestamp": "1763785200000"}, "messageAttributes": {},
                   "eventSource": "aws:sqs"})
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("an SQS event")
}

fn request(account: &str) -> serde_json::Map<String, Value> {
    json!({
        "action": "create",
        "instanceArn": "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40",
        "permissionSetArn": "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b",
        "targetId": account, "principalType": "USER",
        "principalId": "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10",
    })
    .as_object()
    .expect("an object")
    .clone()
}

/// Bodies SQS accepted (every JSON escape below is plain ASCII) whose decoded text
/// holds characters SQS refuses.
fn hostile_bodies() -> Vec<String> {
    // An unknown field named "act\u0001ion": its name is echoed into ErrorMessage.
    let mut unknown = request("222233334444");
    unknown.insert("act\u{1}ion".to_owned(), json!("create"));
    // A correlation id holding U+FFFE and U+FFFF: refused, as no attribute could echo
    // it; on a request the guardrails would refuse too, and on one that would succeed.
    let mut forbidden = request("111122223333");
    forbidden.insert("correlationId".to_owned(), json!("CHG-\u{fffe}-\u{ffff}"));
    let mut granted = request("333344445555");
    granted.insert("correlationId".to_owned(), json!("CHG-\u{fffe}-2"));
    // An invalid body with such an id: nothing to salvage.
    let invalid = json!({"correlationId": "CHG-\u{fffe}-3", "action": "grant"});
    // A printable id with the characters JSON escapes, on a request that succeeds.
    let mut quoted = request("333344445555");
    quoted.insert("correlationId".to_owned(), json!("CHG-\"4\"-\\-\u{fffd}"));
    [
        Value::Object(unknown),
        Value::Object(forbidden),
        Value::Object(granted),
        invalid,
        Value::Object(quoted),
    ]
    .iter()
    // serde_json escapes control characters but writes U+FFFE raw; SQS would refuse
    // that body itself, so the sender escapes it.
    .map(|v| {
        v.to_string()
            .replace('\u{fffe}', "\\ufffe")
            .replace('\u{ffff}', "\\uffff")
    })
    .collect()
}

fn sendable(message: &OutgoingMessage) -> bool {
    message.body.chars().all(sqs_accepts)
        && message
            .attributes
            .iter()
            .all(|(_, value)| value.chars().all(sqs_accepts))
}

#[tokio::test]
async fn every_message_about_a_hostile_request_is_stored() {
    let worker = worker();
    let bodies = hostile_bodies();
    assert!(
        bodies.iter().all(|b| b.chars().all(sqs_accepts)),
        "SQS took them"
    );
    let response = function_handler(
        &worker,
        LambdaEvent::new(event(&bodies), Context::default()),
    )
    .await
    .expect("a batch response");
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );
    let sent = worker.queues.sent();
    assert!(sent.iter().all(|s| sendable(&s.message)));
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 4);
    let unknown = dead
        .iter()
        .find(|m| m.attribute("ErrorCode") == Some("UnknownField"))
        .expect("the unknown field's dead letter");
    assert_eq!(
        unknown.attribute("ErrorMessage"),
        Some("unknown field `act\u{fffd}ion`")
    );
    // No create was made for the id SQS cannot carry, and no dead letter names an id.
    assert_eq!(
        worker.identity_center.calls().len(),
        1,
        "only the quoted id's"
    );
    let refused: Vec<_> = dead
        .iter()
        .filter(|m| m.attribute("ErrorCode") == Some("NotPrintable"))
        .collect();
    assert_eq!(refused.len(), 2, "{dead:?}");
    assert!(dead.iter().all(|m| m.attribute("CorrelationId").is_none()));
    // Outcome bodies keep a printable id exactly.
    let outcomes: Vec<Value> = worker
        .queues
        .sent_to(worker.config.outcome_queue.as_ref().expect("configured"))
        .iter()
        .map(|m| serde_json::from_str(&m.body).expect("JSON"))
        .collect();
    let ids: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| o["correlationId"].as_str())
        .collect();
    assert_eq!(ids, ["CHG-\"4\"-\\-\u{fffd}"]);
}
