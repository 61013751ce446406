//! The real adapters against moto's server on loopback: the real aws-sdk-sqs client
//! re-enqueues, dead-letters and sends outcome events; moto's sso-admin carries the
//! SUCCEEDED path of create and delete.

mod support;

use std::collections::HashMap;

use assignment_worker::adapters::aws_worker;
use assignment_worker::adapters::memory::MemoryServiceCatalog;
use assignment_worker::adapters::memory::{MemoryLedger, ScriptedIdentityCenter};
use assignment_worker::adapters::sqs::SqsQueues;
use assignment_worker::config::Config;
use assignment_worker::handler::{Worker, function_handler};
use assignment_worker::identity_center::{OperationStatus, StatusReport};
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::QueueAttributeName;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use support::{Moto, attribute, create_ledger_table, create_queue, drain, queue_count};

struct Queues {
    work: String,
    dlq: String,
    outcomes: String,
    ledger: String,
}

/// The three queues and the ledger table on `shared`'s moto.
async fn queues(shared: &aws_config::SdkConfig) -> Queues {
    let sqs = aws_sdk_sqs::Client::new(shared);
    let dynamodb = aws_sdk_dynamodb::Client::new(shared);
    Queues {
        work: create_queue(&sqs, "assignment-work").await,
        dlq: create_queue(&sqs, "assignment-dlq").await,
        outcomes: create_queue(&sqs, "assignment-outcomes").await,
        ledger: create_ledger_table(&dynamodb, "assignment-ledger").await,
    }
}

fn config(queues: &Queues, extra: &[(&str, &str)]) -> Config {
    let mut env: HashMap<&str, &str> = HashMap::from([
        ("WORK_QUEUE_URL", queues.work.as_str()),
        ("DEAD_LETTER_QUEUE_URL", queues.dlq.as_str()),
        ("OUTCOME_QUEUE_URL", queues.outcomes.as_str()),
        ("LEDGER_TABLE", queues.ledger.as_str()),
    ]);
    env.extend(extra.iter().copied());
    Config::from_lookup(|name| env.get(name).map(|v| (*v).to_owned()))
        .expect("valid test configuration")
}

fn fixture(name: &str) -> SqsEvent {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture"))
        .expect("fixture is an SQS event")
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).expect("JSON body")
}

#[tokio::test]
async fn create_then_delete_succeed_against_moto_and_a_second_delete_is_already_satisfied() {
    let moto = Moto::start();
    let shared = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&shared);
    let queues = queues(&shared).await;
    let worker = aws_worker(&shared, config(&queues, &[]));

    for (file, expected) in [
        ("create.json", "succeeded"),
        ("delete.json", "succeeded"),
        ("delete.json", "already-satisfied"),
    ] {
        let response =
            function_handler(&worker, LambdaEvent::new(fixture(file), Context::default()))
                .await
                .expect("batch response");
        assert!(response.batch_item_failures.is_empty(), "{file}");
        let outcomes = drain(&sqs, &queues.outcomes).await;
        assert_eq!(outcomes.len(), 1, "{file}");
        let event = json(&outcomes[0].body);
        assert_eq!(event["outcome"], expected, "{file}: {event}");
        assert_eq!(event["request"]["targetId"], "111122223333");
        if expected == "succeeded" {
            assert!(
                event["operationRequestId"]
                    .as_str()
                    .is_some_and(|id| !id.is_empty())
            );
        }
    }
    assert!(drain(&sqs, &queues.dlq).await.is_empty());
}

#[tokio::test]
async fn re_enqueues_with_delay_seconds_through_real_sqs() {
    let moto = Moto::start();
    let shared = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&shared);
    let queues = queues(&shared).await;
    let worker = Worker {
        service_catalog: MemoryServiceCatalog::default(),
        ledger: MemoryLedger::default(),
        identity_center: ScriptedIdentityCenter::new([Ok(StatusReport {
            created_at: None,
            status: OperationStatus::InProgress,
            request_id: Some("0f1e2d3c-4b5a-4968-8776-655443322110".to_owned()),
            failure_reason: None,
            subject: Default::default(),
        })]),
        queues: SqsQueues::new(aws_sdk_sqs::Client::new(&shared)),
        // A long first poll delay, so the message is still delayed when counted.
        config: config(
            &queues,
            &[
                ("POLL_INITIAL_DELAY_SECONDS", "120"),
                ("POLL_MAX_DELAY_SECONDS", "120"),
            ],
        ),
    };
    let response = function_handler(
        &worker,
        LambdaEvent::new(fixture("create.json"), Context::default()),
    )
    .await
    .expect("batch response");
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        queue_count(
            &sqs,
            &queues.work,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed
        )
        .await,
        1
    );
    assert_eq!(
        queue_count(
            &sqs,
            &queues.work,
            QueueAttributeName::ApproximateNumberOfMessages
        )
        .await,
        0
    );
    assert!(
        drain(&sqs, &queues.outcomes).await.is_empty(),
        "not terminal yet"
    );
}

#[tokio::test]
async fn dead_letters_carry_the_spec_attributes_through_real_sqs() {
    let moto = Moto::start();
    let shared = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&shared);
    let queues = queues(&shared).await;
    let worker = aws_worker(
        &shared,
        config(&queues, &[("PROTECTED_ACCOUNT_IDS", "111122223333")]),
    );

    let malformed = fixture("malformed.json");
    let malformed_body = malformed.records[0].body.clone().unwrap_or_default();
    function_handler(&worker, LambdaEvent::new(malformed, Context::default()))
        .await
        .expect("batch response");
    function_handler(
        &worker,
        LambdaEvent::new(fixture("create.json"), Context::default()),
    )
    .await
    .expect("batch response");

    let mut dead = drain(&sqs, &queues.dlq).await;
    dead.sort_by_key(|m| attribute(m, "ErrorClass").unwrap_or_default().to_owned());
    assert_eq!(dead.len(), 2);
    assert_eq!(attribute(&dead[0], "ErrorClass"), Some("forbidden"));
    assert_eq!(attribute(&dead[0], "ErrorCode"), Some("ProtectedAccount"));
    assert_eq!(attribute(&dead[0], "CorrelationId"), Some("CHG-1001"));
    assert_eq!(attribute(&dead[0], "Attempts"), Some("0"));
    assert!(attribute(&dead[0], "ErrorMessage").is_some_and(|m| m.contains("111122223333")));
    assert_eq!(json(&dead[0].body)["correlationId"], "CHG-1001");
    assert_eq!(attribute(&dead[1], "ErrorClass"), Some("invalid-request"));
    assert_eq!(
        Some(dead[1].body.as_str()),
        Some(malformed_body.as_str()),
        "the body as received"
    );

    let outcomes = drain(&sqs, &queues.outcomes).await;
    let mut classes: Vec<String> = outcomes
        .iter()
        .map(|m| {
            json(&m.body)["errorClass"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    classes.sort_unstable();
    assert_eq!(classes, ["forbidden", "invalid-request"]);
}

#[tokio::test]
async fn an_entry_sqs_refuses_fails_only_its_own_record() {
    let moto = Moto::start();
    let shared = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&shared);
    let queues = queues(&shared).await;
    // A DLQ that refuses bodies over 1 KiB: SQS rejects the whole batch that holds one.
    sqs.set_queue_attributes()
        .queue_url(&queues.dlq)
        .attributes(QueueAttributeName::MaximumMessageSize, "1024")
        .send()
        .await
        .expect("set attributes");
    let worker = aws_worker(&shared, config(&queues, &[]));
    let mut event = fixture("malformed.json");
    let mut oversized = event.records[0].clone();
    oversized.message_id = Some("oversized".to_owned());
    oversized.body = Some(format!("not json {}", "x".repeat(2000)));
    event.records.push(oversized);

    let response = function_handler(&worker, LambdaEvent::new(event, Context::default()))
        .await
        .expect("response");
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["oversized"]);
    assert_eq!(
        drain(&sqs, &queues.dlq).await.len(),
        1,
        "the small dead letter still went through"
    );
}
