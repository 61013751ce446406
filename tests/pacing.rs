//! The handler with a paced Identity Center port (adapters::paced over the scripted
//! fake): a step the pacer holds back is stored again with its delay, makes no call,
//! spends no attempt and is counted as deferred, not as a call.

use std::collections::HashMap;
use std::time::Duration;

use assignment_worker::adapters::memory::{
    Call, MemoryLedger, MemoryServiceCatalog, RecordingQueues, ScriptedIdentityCenter,
};
use assignment_worker::adapters::paced::PacedIdentityCenter;
use assignment_worker::config::Config;
use assignment_worker::handler::{Invocation, Worker};
use assignment_worker::ledger::{AccessDecision, Ledger, LedgerKey, RecordedState};
use assignment_worker::pacer::PacerSettings;
use assignment_worker::progress::DecisionStamp;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use serde_json::{Value, json};

const WORK: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/assignment-work";
const DLQ: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/assignment-dlq";
const INSTANCE: &str = "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40";
const PERMISSION_SET: &str =
    "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b";
const PRINCIPAL: &str = "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10";

type PacedWorker = Worker<
    PacedIdentityCenter<ScriptedIdentityCenter>,
    RecordingQueues,
    MemoryLedger,
    MemoryServiceCatalog,
>;

/// A worker whose pacer lets one call go (a create, or anything else) and nothing after
/// it for minutes: the test's timing cannot matter. Records run one at
/// a time, in order.
fn worker() -> PacedWorker {
    let env: HashMap<&str, &str> = HashMap::from([
        ("WORK_QUEUE_URL", WORK),
        ("DEAD_LETTER_QUEUE_URL", DLQ),
        ("LEDGER_TABLE", "assignment-ledger"),
        ("MAX_CONCURRENCY", "1"),
    ]);
    let config = Config::from_lookup(|name| env.get(name).map(|v| (*v).to_owned()))
        .expect("test configuration is valid");
    let settings = PacerSettings {
        rate_per_second: 1.0,
        max_outstanding_creates: 15.0,
        provisioning: Duration::from_secs(3600),
        processes: 100,
        max_wait: Duration::ZERO,
        call_burst: 1.0,
        create_burst: 1.0,
    };
    Worker {
        identity_center: PacedIdentityCenter::new(
            ScriptedIdentityCenter::default(),
            &settings,
            0.0,
        ),
        queues: RecordingQueues::default(),
        ledger: MemoryLedger::default(),
        service_catalog: MemoryServiceCatalog::default(),
        config,
    }
}

fn request(action: &str, account: &str, id: &str) -> Value {
    json!({"action": action, "instanceArn": INSTANCE, "permissionSetArn": PERMISSION_SET,
           "targetId": account, "principalType": "USER", "principalId": PRINCIPAL,
           "correlationId": id})
}

fn event(bodies: &[Value]) -> SqsEvent {
    {
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
    }
}

fn work_by_correlation_id(worker: &PacedWorker) -> HashMap<String, (Value, Option<u32>)> {
    worker
        .queues
        .sent_to(&worker.config.work_queue)
        .iter()
        .map(|message| {
            let body: Value = serde_json::from_str(&message.body).expect("JSON");
            let id = body["request"]["correlationId"]
                .as_str()
                .expect("correlation id")
                .to_owned();
            (id, (body, Some(message.delay_seconds)))
        })
        .collect()
}

fn api_document<'a>(documents: &'a [Value], api: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["Api"] == api)
        .unwrap_or_else(|| panic!("no {api} document in {documents:?}"))
}

#[tokio::test]
async fn creates_beyond_the_pace_are_stored_again_without_a_call() {
    let worker = worker();
    let bodies: Vec<Value> = (0..4)
        .map(|i| request("create", &format!("11112222333{i}"), &format!("GRANT-{i}")))
        .collect();
    let invocation = Invocation::default();
    let response = worker.handle(event(&bodies), &invocation).await;

    assert!(response.batch_item_failures.is_empty());
    let calls = worker.identity_center.inner().calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(matches!(&calls[0], Call::Create { account, .. } if account == "111122223330"));
    let work = work_by_correlation_id(&worker);
    for i in 1..4 {
        let (envelope, delay) = &work[&format!("GRANT-{i}")];
        let progress = &envelope["progress"];
        assert_eq!(progress["step"], "submit", "{envelope}");
        assert_eq!(progress["operation"], "create");
        // No attempt spent and nothing that may have reached AWS.
        assert_eq!(progress["attempt"], 1);
        assert!(
            progress.get("maybeSubmitted").is_none_or(|v| v == false),
            "{envelope}"
        );
        assert!(delay.is_some_and(|d| (1..=900).contains(&d)), "{delay:?}");
    }
    // The deferred creates made no ledger claim either: only the one that went did.
    assert_eq!(worker.ledger.calls(), 2, "a claim and a state record");

    let documents = invocation.metrics.documents("Test", 0);
    let create = api_document(&documents, "CreateAccountAssignment");
    assert_eq!(create["Calls"], 1);
    assert_eq!(create["Deferred"], 3);
}

#[tokio::test]
async fn a_poll_waits_for_the_rate_not_for_a_create_slot() {
    let worker = worker();
    let poll = |id: &str| {
        json!({"request": request("create", "222233334444", id),
               "progress": {"step": "poll", "operation": "create",
                            "operationRequestId": "7c1e3f0a-9b2d-4e5f-8a6b-0c1d2e3f4a5b",
                            "attempt": 2, "polls": 1,
                            "firstReceivedAt": "2026-11-22T04:00:00Z",
                            "submittedAt": "2026-11-22T04:00:01Z"}})
    };
    // The first create takes the one create slot and the rate's turn; the second
    // create waits for a create slot (an hour away: deferred by the longest delay);
    // the poll waits only for the rate's next turn (105 s away at 0.0095 calls/s).
    let bodies = [
        request("create", "111122223330", "GRANT-0"),
        request("create", "111122223331", "GRANT-1"),
        poll("POLL-0"),
    ];
    let invocation = Invocation::default();
    let response = worker.handle(event(&bodies), &invocation).await;

    assert!(response.batch_item_failures.is_empty());
    let calls = worker.identity_center.inner().calls();
    assert!(matches!(&calls[..], [Call::Create { .. }]), "{calls:?}");
    let work = work_by_correlation_id(&worker);
    let (deferred_grant, grant_delay) = &work["GRANT-1"];
    assert_eq!(deferred_grant["progress"]["step"], "submit");
    assert_eq!(*grant_delay, Some(900));
    let (deferred_poll, poll_delay) = &work["POLL-0"];
    assert_eq!(deferred_poll["progress"]["step"], "poll");
    assert_eq!(deferred_poll["progress"]["polls"], 1, "no poll was made");
    assert_eq!(
        deferred_poll["progress"]["attempt"], 2,
        "no attempt was spent"
    );
    assert!(
        poll_delay.is_some_and(|d| (105..=107).contains(&d)),
        "{poll_delay:?}"
    );
    let documents = invocation.metrics.documents("Test", 0);
    let polls = api_document(&documents, "DescribeAccountAssignmentCreationStatus");
    assert_eq!(polls["Calls"], 0);
    assert_eq!(polls["Deferred"], 1);
    // The poll is the step's second attempt, but a deferral is no retry: `Retries`
    // counts steps repeated after a transient error, and no error came.
    let retries = documents.iter().find_map(|d| d.get("Retries"));
    assert!(retries.is_none_or(|r| r == 0), "{retries:?}");
}

/// GRANT-0's create takes the pacer's one turn: every call after it is held back.
async fn take_the_only_turn(worker: &PacedWorker) {
    let first = request("create", "111122223330", "GRANT-0");
    worker.handle(event(&[first]), &Invocation::default()).await;
    assert_eq!(worker.identity_center.inner().calls().len(), 1);
}

/// Records in the ledger the claim of `body`'s decision (requested at
/// 2026-11-29T10:00:00Z) by another delivery, under a message id greater than any
/// `event` gives, in `state`.
async fn claim_of_another_delivery(worker: &PacedWorker, body: &Value, state: RecordedState) {
    let parsed = assignment_worker::request::parse_request(&body.to_string()).expect("valid");
    let stamp = DecisionStamp {
        requested_at: time::macros::datetime!(2026-11-29 10:00:00 UTC),
        first_message_id: "ffffffff-0000-4000-8000-000000000000".to_owned(),
    };
    worker
        .ledger
        .claim(
            &LedgerKey::of(parsed.target().1),
            &AccessDecision::of_request(&parsed, &stamp),
            state,
            time::OffsetDateTime::now_utc(),
        )
        .await
        .expect("claimed");
}

/// A redrive of a recorded decision arrives under a new message id (here below the
/// first delivery's): its claim finds the decision under the first id, and the step runs
/// again under that id. It was paced once, for its one call; running again must not
/// take a second turn (with this pacer: be deferred after all).
#[tokio::test]
async fn a_step_run_again_under_the_recorded_message_id_is_paced_once() {
    let worker = worker();
    let mut revoke = request("delete", "111122223333", "REVOKE-1");
    revoke["requestedAt"] = json!("2026-11-29T10:00:00Z");
    claim_of_another_delivery(&worker, &revoke, RecordedState::Pending).await;

    let invocation = Invocation::default();
    let response = worker.handle(event(&[revoke]), &invocation).await;

    assert!(response.batch_item_failures.is_empty());
    let calls = worker.identity_center.inner().calls();
    assert!(
        matches!(calls.as_slice(), [Call::Delete { .. }]),
        "{calls:?}"
    );
    let documents = invocation.metrics.documents("Test", 0);
    let delete = api_document(&documents, "DeleteAccountAssignment");
    assert_eq!(delete["Deferred"], 0, "{delete}");
}

/// A late grant (`notAfter` 2026-11-29T11:00:00Z) whose record, sent before its
/// notAfter, is delivered a second time, after GRANT-0 took the pacer's one turn; the
/// ledger holds the same decision from another delivery (an upstream's re-send under a
/// greater message id) that was refused as `expired` and recorded absent.
async fn late_grant_after_its_other_delivery_expired(worker: &PacedWorker) -> SqsEvent {
    take_the_only_turn(worker).await;

    let mut late = request("create", "111122223333", "TEMP-LATE");
    late["requestedAt"] = json!("2026-11-29T10:00:00Z");
    late["notAfter"] = json!("2026-11-29T11:00:00Z");
    claim_of_another_delivery(worker, &late, RecordedState::Absent).await;
    let mut again = event(&[late]);
    again.records[0].attributes = HashMap::from([
        // Sent at 2026-11-29T10:30:00Z, delivered twice.
        ("SentTimestamp".to_owned(), "1795948200000".to_owned()),
        ("ApproximateReceiveCount".to_owned(), "2".to_owned()),
    ]);
    again
}

/// The other delivery's claim is the same decision's, settled: not a later decision that
/// may have come after a claim of this record's own. So the record is refused as
/// `expired` too, instead of being carried on as a grant it may have submitted (deferred
/// by the pacer with `maybeSubmitted`, then created after notAfter).
#[tokio::test]
async fn a_late_grant_whose_other_delivery_expired_is_not_carried_on() {
    let worker = worker();
    let again = late_grant_after_its_other_delivery_expired(&worker).await;
    worker.handle(again, &Invocation::default()).await;

    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1, "refused as expired");
    assert_eq!(dead[0].attribute("ErrorClass"), Some("expired"));
    let work = work_by_correlation_id(&worker);
    assert!(
        work.get("TEMP-LATE")
            .is_none_or(|(envelope, _)| envelope["progress"]["maybeSubmitted"] != true),
        "{work:?}"
    );
}

/// A run that restamps before its pacer turn (the `expired` refusal's claim finds the
/// decision under the other delivery's id) has taken no turn: if the run again under
/// that id goes on to a create (here its redelivery check cannot read the ledger, so the
/// grant may have been submitted and is carried on), that create still waits for the
/// pacer, which has no turn left after GRANT-0's.
#[tokio::test]
async fn a_restamp_before_the_pacer_turn_leaves_the_turn_to_the_next_run() {
    let worker = worker();
    let again = late_grant_after_its_other_delivery_expired(&worker).await;
    // The first run's redelivery check and claim go through; the second run's check
    // fails.
    worker.ledger.set_faults([false, false, true]);
    worker.handle(again, &Invocation::default()).await;

    let calls = worker.identity_center.inner().calls();
    assert_eq!(calls.len(), 1, "no turn was left for a create: {calls:?}");
}

/// SPEC §11: an expiry revokes within a minute of `notAfter`. A pacer holding back every
/// call for minutes (another process's storm, a share set too small) must not hold the
/// revoke back with them: it waits its turn as any call, but is never deferred.
#[tokio::test]
async fn an_expiry_due_is_not_deferred_by_the_pacer() {
    let worker = worker();
    take_the_only_turn(&worker).await;

    // A grant carried out by another delivery, ended at 2026-11-29T11:00:00Z; its expiry
    // step comes due.
    let mut grant = request("create", "111122223333", "TEMP-1");
    grant["requestedAt"] = json!("2026-11-29T10:00:00Z");
    grant["notAfter"] = json!("2026-11-29T11:00:00Z");
    claim_of_another_delivery(&worker, &grant, RecordedState::Present).await;
    let expiry = json!({"request": grant, "progress": {
        "step": "expire-wait", "operation": "delete", "attempt": 1, "polls": 0,
        "firstReceivedAt": "2026-11-29T10:00:01Z", "purpose": "expiry",
        "requestedAt": "2026-11-29T10:00:00Z",
        "firstMessageId": "ffffffff-0000-4000-8000-000000000000"}});
    let invocation = Invocation::default();
    worker.handle(event(&[expiry]), &invocation).await;

    let calls = worker.identity_center.inner().calls();
    assert!(
        matches!(calls.as_slice(), [_, Call::Delete { account, .. }] if account == "111122223333"),
        "{calls:?} {:?}",
        worker.queues.sent()
    );
    let documents = invocation.metrics.documents("Test", 0);
    let delete = api_document(&documents, "DeleteAccountAssignment");
    assert_eq!(delete["Deferred"], 0, "{delete}");
}

/// A function whose whole timeout is within the call reserve leaves its records to SQS,
/// whose `MaxReceiveCount` ends them in the dead-letter queue. A poll the pacer would
/// defer must be left so too: stored again as a new message, its receive count would
/// start over each time, and it would go round with no dead letter and no call.
#[tokio::test]
async fn with_no_time_for_a_call_a_poll_is_left_to_sqs_not_deferred() {
    let worker = worker();
    take_the_only_turn(&worker).await;
    let stored = worker.queues.sent().len();

    let poll = json!({"request": request("create", "111122223333", "GRANT-1"), "progress": {
        "step": "poll", "operation": "create",
        "operationRequestId": "7c1e3f0a-9b2d-4e5f-8a6b-0c1d2e3f4a5b", "attempt": 1,
        "polls": 0, "firstReceivedAt": "2026-11-29T10:00:01Z",
        "submittedAt": "2026-11-29T10:00:02Z"}});
    let timeout = Duration::from_secs(2);
    let invocation = Invocation {
        deadline: Some(std::time::SystemTime::now() + timeout),
        timeout: Some(timeout),
        ..Invocation::default()
    };
    let response = worker.handle(event(&[poll]), &invocation).await;

    assert_eq!(response.batch_item_failures.len(), 1, "left to SQS");
    assert_eq!(worker.queues.sent().len(), stored, "nothing stored again");
    assert_eq!(worker.identity_center.inner().calls().len(), 1);
}
