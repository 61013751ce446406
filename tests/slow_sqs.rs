//! A slow SQS (SPEC §5): the real adapters against moto's server behind local-stack's
//! proxy, which holds SQS's answers back after moto has stored the messages. Whatever
//! the delays, the handler returns before its invocation's deadline, and no record is
//! acknowledged unless its next step was stored.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use assignment_worker::adapters::aws_worker;
use assignment_worker::config::Config;
use assignment_worker::handler::Invocation;
use assignment_worker::record_step::call_reserve;
use aws_lambda_events::event::sqs::SqsEvent;
use local_stack::moto::Moto;
use local_stack::proxy::CountingProxy;
use serde_json::{Value, json};

/// The records of one batch: a grant moto's sso-admin carries out (an outcome event), a
/// grant on a protected account (a dead letter and an outcome event) and a body that is
/// no request (the same), each with its correlation id.
fn batch() -> (SqsEvent, Vec<(&'static str, bool)>) {
    let grant = |account: &str, id: &str| {
        json!({
            "action": "create",
            "instanceArn": "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40",
            "permissionSetArn": "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b",
            "targetId": account, "principalType": "USER",
            "principalId": "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10",
            "correlationId": id,
        })
        .to_string()
    };
    let records = [
        (grant("111122223333", "SLOW-GRANT"), ("SLOW-GRANT", false)),
        (
            grant("999999999999", "SLOW-FORBIDDEN"),
            ("SLOW-FORBIDDEN", true),
        ),
        (
            json!({"correlationId": "SLOW-INVALID", "action": "grant"}).to_string(),
            ("SLOW-INVALID", true),
        ),
    ];
    let event = json!({"Records": records.iter().enumerate().map(|(i, (body, _))| json!({
        "messageId": format!("m-{i}"), "receiptHandle": format!("rh-{i}"), "body": body,
        "attributes": {"SentTimestamp": "1763785200000"}, "messageAttributes": {},
        "eventSource": "aws:sqs",
    })).collect::<Vec<_>>()});
    (
        serde_json::from_value(event).expect("an SQS event"),
        records.iter().map(|(_, expected)| *expected).collect(),
    )
}

async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "local", "local", None, None, "test",
        ))
        .load()
        .await
}

fn correlation_ids(messages: &[local_stack::stack::DeadLetterRecord]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| {
            m.attributes.get("CorrelationId").cloned().or_else(|| {
                serde_json::from_str::<Value>(&m.body).ok()?["correlationId"]
                    .as_str()
                    .map(str::to_owned)
            })
        })
        .collect()
}

/// Runs the batch with SQS's answers held back by `first` (one each, for the first
/// calls) and `otherwise`; checks the deadline and the acknowledgement rule.
/// The SendMessageBatch answers the invocation counted (SPEC §12), by metric name.
fn send_answers(invocation: &Invocation) -> HashMap<String, u64> {
    let mut out = Vec::new();
    invocation
        .metrics
        .write("Test/Worker", 1_764_000_000_000, &mut out)
        .expect("written");
    let text = String::from_utf8(out).expect("UTF-8");
    let sends = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("JSON"))
        .find(|document| document["Api"] == "SendMessageBatch")
        .unwrap_or_else(|| panic!("no SendMessageBatch document in {text}"));
    ["Calls", "Succeeded", "Timeouts", "OtherErrors"]
        .into_iter()
        .map(|name| (name.to_owned(), sends[name].as_u64().unwrap_or(0)))
        .collect()
}

/// Runs the batch against an SQS whose answers are held back; returns the records left
/// for redelivery and the SendMessageBatch answers counted.
async fn run_with_slow_sqs(
    first: Vec<Duration>,
    otherwise: Duration,
) -> (usize, HashMap<String, u64>) {
    let moto = Moto::start().expect("moto");
    let direct = sdk_config(&moto.endpoint).await;
    let sqs = aws_sdk_sqs::Client::new(&direct);
    let dynamodb = aws_sdk_dynamodb::Client::new(&direct);
    let mut urls = Vec::new();
    for name in ["work", "dlq", "outcomes"] {
        let created = sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("queue");
        urls.push(created.queue_url().expect("url").to_owned());
    }
    local_stack::moto::create_ledger_table(&dynamodb, "ledger")
        .await
        .expect("table");
    let proxy = CountingProxy::start(&moto.endpoint).await.expect("proxy");
    let env: HashMap<&str, &str> = HashMap::from([
        ("WORK_QUEUE_URL", urls[0].as_str()),
        ("DEAD_LETTER_QUEUE_URL", urls[1].as_str()),
        ("OUTCOME_QUEUE_URL", urls[2].as_str()),
        ("LEDGER_TABLE", "ledger"),
        ("PROTECTED_ACCOUNT_IDS", "999999999999"),
        // As the local stack: moto's one Python process can take longer than a second
        // on a loaded machine, and an answer it is merely slow to give would fail an
        // attempt that the slow answers below are meant to fail.
        ("SQS_ATTEMPT_TIMEOUT_MILLISECONDS", "2000"),
    ]);
    let config = Config::from_lookup(|name| env.get(name).map(|v| (*v).to_owned())).expect("valid");
    let reserve = call_reserve(&config);
    let worker = aws_worker(&sdk_config(&proxy.endpoint).await, config);
    proxy.delay_answers("AmazonSQS.", first, otherwise);

    let (event, expected) = batch();
    // Every record may start its step: the deadline leaves the reserve and a second.
    let deadline = SystemTime::now() + reserve + Duration::from_secs(1);
    let invocation = Invocation {
        deadline: Some(deadline),
        ..Invocation::default()
    };
    let response = worker.handle(event, &invocation).await;
    let returned = SystemTime::now();
    assert!(
        returned < deadline,
        "returned {:?} after the deadline",
        returned.duration_since(deadline).unwrap_or_default()
    );

    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    let outcomes = correlation_ids(
        &local_stack::stack::drain(&sqs, &urls[2])
            .await
            .expect("drain"),
    );
    let dead = correlation_ids(
        &local_stack::stack::drain(&sqs, &urls[1])
            .await
            .expect("drain"),
    );
    for (index, (id, dead_lettered)) in expected.into_iter().enumerate() {
        if failed.contains(&format!("m-{index}").as_str()) {
            continue;
        }
        assert!(
            outcomes.iter().any(|o| o == id),
            "{id} acknowledged without its outcome"
        );
        if dead_lettered {
            assert!(
                dead.iter().any(|d| d == id),
                "{id} acknowledged without its dead letter"
            );
        }
    }
    (failed.len(), send_answers(&invocation))
}

#[tokio::test]
async fn an_sqs_that_never_answers_in_time_leaves_every_record_for_redelivery_in_time() {
    let (failed, sends) = run_with_slow_sqs(Vec::new(), Duration::from_secs(60)).await;
    assert_eq!(failed, 3, "nothing can be known stored");
    // Every call timed out (the SDK's attempt timeout or the deadline), and the metrics
    // say so: a slow SQS is not an error SQS answered.
    assert!(sends["Calls"] > 0, "{sends:?}");
    assert_eq!(sends["Timeouts"], sends["Calls"], "{sends:?}");
}

#[tokio::test]
async fn slow_first_answers_are_retried_within_the_deadline() {
    // The first answers come after every timeout; the retries and the entry-by-entry
    // sends after them are answered at once.
    let (failed, sends) = run_with_slow_sqs(vec![Duration::from_secs(60); 3], Duration::ZERO).await;
    assert_eq!(failed, 0, "the retries stored every message");
    assert_eq!(sends["OtherErrors"], 0, "{sends:?}");
}
