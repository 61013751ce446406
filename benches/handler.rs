//! CPU cost of the handler: one batch of 10 records through the in-memory ports
//! (`cargo bench --bench handler`). The Identity Center fake answers at once, so the
//! time is the worker's own: parsing, the lifecycle, the ledger's rules, the pacer, the
//! envelopes and the batched sends. Not run by CI (`cargo test` does not build benches).
//!
//! Read it per record: divan's time is for the whole batch of 10.

use std::collections::HashMap;
use std::time::Duration;

use assignment_worker::adapters::memory::{
    MemoryLedger, MemoryServiceCatalog, RecordingQueues, ScriptedIdentityCenter,
};
use assignment_worker::adapters::paced::PacedIdentityCenter;
use assignment_worker::config::Config;
use assignment_worker::handler::{Invocation, Worker};
use assignment_worker::identity_center::{
    CallResult, IdentityCenter, OperationStatus, OperationSubject, StatusReport,
};
use assignment_worker::pacer::PacerSettings;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use divan::counter::ItemsCount;
use serde_json::{Value, json};

fn main() {
    divan::main();
}

const INSTANCE: &str = "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40";
const PERMISSION_SET: &str =
    "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b";
const PRINCIPAL: &str = "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10";
const OPERATION: &str = "7c1e3f0a-9b2d-4e5f-8a6b-0c1d2e3f4a5b";

fn config() -> Config {
    let env: HashMap<&str, &str> = HashMap::from([
        (
            "WORK_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/assignment-work",
        ),
        (
            "DEAD_LETTER_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/assignment-dlq",
        ),
        (
            "OUTCOME_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/assignment-outcomes",
        ),
        ("LEDGER_TABLE", "assignment-ledger"),
    ]);
    Config::from_lookup(|name| env.get(name).map(|v| (*v).to_owned())).expect("valid")
}

fn request(action: &str, account: usize) -> Value {
    json!({"action": action, "instanceArn": INSTANCE, "permissionSetArn": PERMISSION_SET,
           "targetId": format!("{:012}", 111_122_220_000usize + account),
           "principalType": "USER", "principalId": PRINCIPAL,
           "correlationId": format!("CHG-{account}"), "notAfter": "2099-01-01T00:00:00Z"})
}

/// A batch as the work queue delivers one mid-run: 4 new grants (answered IN_PROGRESS:
/// a poll is stored), 3 new revokes (answered SUCCEEDED: an outcome is stored) and 3
/// polls of earlier grants (SUCCEEDED: the ledger records it, the outcome and the
/// expiry step are stored).
fn batch() -> (SqsEvent, Vec<CallResult>) {
    let mut bodies = Vec::new();
    let mut answers = Vec::new();
    let answer = |status| {
        Ok(StatusReport {
            created_at: None,
            status,
            request_id: Some(OPERATION.to_owned()),
            failure_reason: None,
            subject: OperationSubject::default(),
        })
    };
    for account in 0..4 {
        bodies.push(request("create", account));
        answers.push(answer(OperationStatus::InProgress));
    }
    for account in 4..7 {
        bodies.push(request("delete", account));
        answers.push(answer(OperationStatus::Succeeded));
    }
    for account in 7..10 {
        bodies.push(json!({"request": request("create", account),
            "progress": {"step": "poll", "operation": "create", "operationRequestId": OPERATION,
                         "attempt": 1, "polls": 0, "firstReceivedAt": "2026-11-22T04:00:00Z",
                         "submittedAt": "2026-11-22T04:00:01Z"}}));
        answers.push(answer(OperationStatus::Succeeded));
    }
    let event = {
        let mut event = SqsEvent::default();
        event.records = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let mut message = SqsMessage::default();
                message.message_id = Some(format!("00000000-0000-4000-8000-{i:012}"));
                message.body = Some(body.to_string());
                message.attributes =
                    HashMap::from([("SentTimestamp".to_owned(), "1763785200000".to_owned())]);
                message
            })
            .collect();
        event
    };
    (event, answers)
}

fn worker<I>(identity_center: I) -> Worker<I, RecordingQueues, MemoryLedger, MemoryServiceCatalog> {
    Worker {
        identity_center,
        queues: RecordingQueues::default(),
        ledger: MemoryLedger::default(),
        service_catalog: MemoryServiceCatalog::default(),
        config: config(),
    }
}

fn run<I: IdentityCenter>(
    bencher: divan::Bencher,
    make: impl Fn(ScriptedIdentityCenter) -> I + Sync,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    bencher
        .counter(ItemsCount::new(10usize))
        .with_inputs(|| {
            let (event, answers) = batch();
            (worker(make(ScriptedIdentityCenter::new(answers))), event)
        })
        .bench_local_values(|(worker, event)| {
            let invocation = Invocation::default();
            let response = runtime.block_on(worker.handle(event, &invocation));
            assert!(response.batch_item_failures.is_empty());
            (worker, invocation)
        });
}

/// The batch through the handler, Identity Center unpaced.
#[divan::bench]
fn batch_of_10(bencher: divan::Bencher) {
    run(bencher, |fake| fake);
}

/// The same with the pacer in front, at limits the batch never reaches (its
/// bookkeeping, not its waits).
#[divan::bench]
fn batch_of_10_paced(bencher: divan::Bencher) {
    let settings = PacerSettings {
        rate_per_second: 1.0e6,
        max_outstanding_creates: 1.0e6,
        provisioning: Duration::from_millis(1),
        processes: 1,
        max_wait: Duration::from_secs(2),
        call_burst: 1.0,
        create_burst: 1.0,
    };
    run(bencher, move |fake| {
        PacedIdentityCenter::new(fake, &settings, 0.0)
    });
}
