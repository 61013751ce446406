//! The batch handler over the events/ fixtures with in-memory adapters: what reaches
//! Identity Center, what is stored in which queue, and which records are listed in
//! batchItemFailures.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use assignment_worker::adapters::memory::MemoryServiceCatalog;
use assignment_worker::adapters::memory::{
    Call, MemoryLedger, RecordingQueues, ScriptedIdentityCenter,
};
use assignment_worker::clock::WallClock;
use assignment_worker::config::Config;
use assignment_worker::handler::{Invocation, Worker, function_handler};
use assignment_worker::identity_center::{
    CallError, CallResult, ErrorKind, IdentityCenter, OperationStatus, StatusReport,
};
use assignment_worker::ledger::{
    AccessDecision, ClaimAnswer, DecisionOrder, Intent, Ledger, LedgerKey, LedgerResult,
    RecordAnswer, RecordedState,
};
use assignment_worker::portfolio_access::{ListedPrincipal, PortfolioPrincipalType};
use assignment_worker::queue::{OutgoingMessage, QueueSender, SendError};
use assignment_worker::record_step::call_reserve;
use assignment_worker::request::Assignment;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

const WORK: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/assignment-work";
const DLQ: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/assignment-dlq";
const OUTCOMES: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/assignment-outcomes";
const REQUEST_ID: &str = "3f0e4d2c-1b0a-4987-a654-3210fedcba98";

fn config(extra: &[(&str, &str)]) -> Config {
    let mut env: HashMap<&str, &str> = HashMap::from([
        ("WORK_QUEUE_URL", WORK),
        ("DEAD_LETTER_QUEUE_URL", DLQ),
        ("OUTCOME_QUEUE_URL", OUTCOMES),
        ("LEDGER_TABLE", "assignment-ledger"),
    ]);
    env.extend(extra.iter().copied());
    Config::from_lookup(|name| env.get(name).map(|v| (*v).to_owned()))
        .expect("test configuration is valid")
}

fn fixture(name: &str) -> SqsEvent {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn message_ids(event: &SqsEvent) -> Vec<String> {
    event
        .records
        .iter()
        .map(|r| r.message_id.clone().unwrap_or_default())
        .collect()
}

fn failures(response: &SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

fn status(status: OperationStatus, reason: Option<&str>) -> CallResult {
    Ok(StatusReport {
        created_at: None,
        status,
        request_id: Some(REQUEST_ID.to_owned()),
        failure_reason: reason.map(str::to_owned),
        subject: Default::default(),
    })
}

fn error(kind: ErrorKind, code: &str) -> CallResult {
    Err(CallError {
        kind,
        code: code.to_owned(),
        message: format!("{code} from the test"),
    })
}

async fn invoke<I: IdentityCenter, Q: QueueSender>(
    worker: &Worker<I, Q, MemoryLedger, MemoryServiceCatalog>,
    event: SqsEvent,
) -> SqsBatchResponse {
    function_handler(worker, LambdaEvent::new(event, Context::default()))
        .await
        .expect("the handler answers with a batch response")
}

/// The portfolio of the fixtures, with the fixtures' principal already on it.
fn catalog() -> MemoryServiceCatalog {
    MemoryServiceCatalog::default().with_portfolio(
        "port-abcdefghijklm",
        vec![ListedPrincipal {
            principal_type: PortfolioPrincipalType::Iam,
            principal_arn: "arn:aws:iam::111122223333:role/Auditor".to_owned(),
        }],
    )
}

type TestWorker =
    Worker<ScriptedIdentityCenter, RecordingQueues, MemoryLedger, MemoryServiceCatalog>;

fn worker(script: Vec<CallResult>, config: Config) -> TestWorker {
    Worker {
        service_catalog: catalog(),
        ledger: MemoryLedger::default(),
        identity_center: ScriptedIdentityCenter::new(script),
        queues: RecordingQueues::default(),
        config,
    }
}

/// A worker with the in-memory ports, sending through `queues`.
fn worker_sending_to<Q: QueueSender>(
    queues: Q,
    script: Vec<CallResult>,
    config: Config,
) -> Worker<ScriptedIdentityCenter, Q, MemoryLedger, MemoryServiceCatalog> {
    Worker {
        service_catalog: catalog(),
        ledger: MemoryLedger::default(),
        identity_center: ScriptedIdentityCenter::new(script),
        queues,
        config,
    }
}

fn body_json(message: &OutgoingMessage) -> Value {
    serde_json::from_str(&message.body).expect("the worker writes JSON")
}

#[tokio::test]
async fn create_in_progress_is_re_enqueued_as_a_poll() {
    let worker = worker(vec![status(OperationStatus::InProgress, None)], config(&[]));
    let event = fixture("create.json");
    let original = event.records[0].body.clone().unwrap_or_default();
    let response = invoke(&worker, event).await;

    assert!(failures(&response).is_empty());
    assert!(
        matches!(&worker.identity_center.calls()[..], [Call::Create { account, .. }] if account == "111122223333")
    );
    let work = worker.queues.sent_to(&worker.config.work_queue);
    assert_eq!(work.len(), 1);
    assert_eq!(work[0].delay_seconds, 3);
    let envelope = body_json(&work[0]);
    assert_eq!(envelope["progress"]["step"], "poll");
    assert_eq!(envelope["progress"]["operation"], "create");
    assert_eq!(envelope["progress"]["operationRequestId"], REQUEST_ID);
    assert_eq!(envelope["progress"]["attempt"], 1);
    let request: Value = serde_json::from_str(&original).unwrap();
    assert_eq!(
        envelope["request"], request,
        "the request travels unchanged"
    );
    assert!(
        worker
            .queues
            .sent_to(&worker.config.dead_letter_queue)
            .is_empty()
    );
}

/// Builds before U+FFFE and U+FFFF were refused in a correlation id wrote them into
/// envelopes, and into the summaries of later decisions: the steps still in flight at the
/// upgrade are carried out (a grant's expiry among them), not refused as invalid.
#[tokio::test]
async fn a_step_an_earlier_build_wrote_with_a_noncharacter_in_its_id_goes_on() {
    let worker = worker(vec![status(OperationStatus::Succeeded, None)], config(&[]));
    let mut event = fixture("poll.json");
    let mut envelope: Value =
        serde_json::from_str(event.records[0].body.as_deref().expect("a body")).expect("JSON");
    envelope["request"]["correlationId"] = Value::from("CHG-\u{fffe}");
    envelope["request"]["notAfter"] = Value::from("2099-01-01T00:00:00Z");
    envelope["progress"]["supersededBy"] =
        serde_json::json!({"correlationId": "CHG-\u{ffff}", "requestedAt": "2026-11-22T04:00:00Z"});
    envelope["progress"]["purpose"] = Value::from("undo");
    // As SQS carries it: the noncharacters escaped.
    event.records[0].body = Some(
        envelope
            .to_string()
            .replace('\u{fffe}', "\\ufffe")
            .replace('\u{ffff}', "\\uffff"),
    );
    invoke(&worker, event).await;
    assert!(
        worker
            .queues
            .sent_to(&worker.config.dead_letter_queue)
            .is_empty(),
        "{:?}",
        worker.queues.sent_to(&worker.config.dead_letter_queue)
    );
    assert_eq!(worker.identity_center.calls().len(), 1, "the poll was made");
    let outcome = outcome_events(&worker);
    assert_eq!(outcome.len(), 1, "{outcome:?}");
    assert_eq!(outcome[0]["outcome"], "superseded");
    assert_eq!(outcome[0]["correlationId"], "CHG-\u{fffe}");
}

#[tokio::test]
async fn a_poll_that_succeeds_sends_one_outcome_event() {
    let worker = worker(vec![status(OperationStatus::Succeeded, None)], config(&[]));
    let response = invoke(&worker, fixture("poll.json")).await;

    assert!(failures(&response).is_empty());
    assert_eq!(
        worker.identity_center.calls(),
        [Call::DescribeCreation {
            request_id: "7c1e3f0a-9b2d-4e5f-8a6b-0c1d2e3f4a5b".to_owned()
        }]
    );
    let outcomes = worker
        .queues
        .sent_to(worker.config.outcome_queue.as_ref().unwrap());
    assert_eq!(outcomes.len(), 1);
    let event = body_json(&outcomes[0]);
    assert_eq!(event["outcome"], "succeeded");
    assert_eq!(event["correlationId"], "CHG-1003");
    assert_eq!(event["action"], "create");
    assert_eq!(event["polls"], 1);
    assert_eq!(event["receivedAt"], "2026-11-22T04:00:00Z");
    assert_eq!(event["request"]["targetId"], "222233334444");
    assert!(worker.queues.sent_to(&worker.config.work_queue).is_empty());
}

#[tokio::test]
async fn delete_of_a_missing_assignment_is_already_satisfied() {
    let worker = worker(
        vec![error(
            ErrorKind::ResourceNotFound,
            "ResourceNotFoundException",
        )],
        config(&[]),
    );
    let response = invoke(&worker, fixture("delete.json")).await;
    assert!(failures(&response).is_empty());
    let outcomes = worker
        .queues
        .sent_to(worker.config.outcome_queue.as_ref().unwrap());
    assert_eq!(body_json(&outcomes[0])["outcome"], "already-satisfied");
    assert_eq!(outcomes[0].attribute("CorrelationId"), Some("CHG-1002"));
}

/// SPEC §12 times an outcome from the request's first receipt: a request delivered
/// again (after a crash, a timeout or a failed send) keeps SQS's
/// ApproximateFirstReceiveTimestamp, a request and an invalid body alike.
#[tokio::test]
async fn an_outcome_delivered_again_counts_from_the_first_receipt() {
    let first_ms =
        (time::OffsetDateTime::now_utc() - time::Duration::seconds(400)).unix_timestamp() * 1000;
    let first = assignment_worker::messages::rfc3339(
        time::OffsetDateTime::from_unix_timestamp(first_ms / 1000).expect("in range"),
    );
    let worker = worker(
        vec![error(
            ErrorKind::ResourceNotFound,
            "ResourceNotFoundException",
        )],
        config(&[]),
    );
    let delete = assignment_request("delete", "CHG-again", &[]);
    for (body, id) in [
        (delete.as_str(), "CHG-again"),
        ("{\"correlationId\": \"CHG-bad\"}", "CHG-bad"),
    ] {
        let mut event = record_event(body, &format!("m-{id}"), 1_763_785_200_000);
        let attributes = &mut event.records[0].attributes;
        attributes.insert("ApproximateReceiveCount".to_owned(), "2".to_owned());
        attributes.insert(
            "ApproximateFirstReceiveTimestamp".to_owned(),
            first_ms.to_string(),
        );
        invoke(&worker, event).await;
        let outcome = outcome_of(&worker, id);
        assert_eq!(outcome["receivedAt"], first.as_str(), "{outcome}");
        assert_ne!(outcome["finishedAt"], first.as_str(), "{outcome}");
    }
}

#[tokio::test]
async fn without_an_outcome_queue_a_success_stores_nothing_and_is_acknowledged() {
    let config = Config {
        outcome_queue: None,
        ..config(&[])
    };
    let worker = worker(vec![], config);
    let response = invoke(&worker, fixture("delete.json")).await;
    assert!(failures(&response).is_empty());
    assert!(worker.queues.sent().is_empty());
}

#[tokio::test]
async fn envelopes_reach_identity_center_unwrapped() {
    for (file, expected_account) in [
        ("sns.json", "333344445555"),
        ("eventbridge.json", "444455556666"),
    ] {
        let worker = worker(vec![], config(&[]));
        let response = invoke(&worker, fixture(file)).await;
        assert!(failures(&response).is_empty(), "{file}");
        assert!(
            matches!(&worker.identity_center.calls()[..], [Call::Create { account, .. }] if account == expected_account),
            "{file}: {:?}",
            worker.identity_center.calls()
        );
    }
}

#[tokio::test]
async fn a_malformed_body_is_dead_lettered_as_received_without_any_aws_call() {
    let worker = worker(vec![], config(&[]));
    let event = fixture("malformed.json");
    let body = event.records[0].body.clone().unwrap_or_default();
    let response = invoke(&worker, event).await;

    assert!(failures(&response).is_empty());
    assert!(worker.identity_center.calls().is_empty());
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, body, "byte for byte");
    assert_eq!(dead[0].attribute("ErrorClass"), Some("invalid-request"));
    assert_eq!(dead[0].attribute("ErrorCode"), Some("NotJson"));
    assert_eq!(dead[0].attribute("Attempts"), Some("0"));
    let outcomes = worker
        .queues
        .sent_to(worker.config.outcome_queue.as_ref().unwrap());
    assert_eq!(body_json(&outcomes[0])["errorClass"], "invalid-request");
}

/// SPEC §7: the requester can match a refused body to its ticket when the body is a
/// JSON object with a valid correlationId, whatever else is wrong with it, and so when
/// the object is wrapped in an envelope the worker unwraps.
#[tokio::test]
async fn an_invalid_body_keeps_its_correlation_id_when_it_has_a_valid_one() {
    let worker = worker(vec![], config(&[]));
    let bodies = [
        (
            r#"{"action":"create","princpalId":"x","correlationId":"CHG-9"}"#,
            Some("CHG-9"),
        ),
        (
            r#"{"CorrelationId":"CHG-10","action":"launch"}"#,
            Some("CHG-10"),
        ),
        (r#"{"action":"create","correlationId":"CHG\u0001"}"#, None),
        (r#"{"action":"create","correlationId":7}"#, None),
        (r#"["correlationId","CHG-11"]"#, None),
        // Within the envelopes the worker unwraps: SNS, EventBridge, its own.
        (
            r#"{"Type":"Notification","TopicArn":"arn:aws:sns:us-east-1:123456789012:t","Message":"{\"action\":\"grant\",\"correlationId\":\"CHG-12\"}"}"#,
            Some("CHG-12"),
        ),
        (
            r#"{"detail-type":"AccessDecision","source":"x","detail":{"action":"grant","correlationId":"CHG-13"}}"#,
            Some("CHG-13"),
        ),
        (
            r#"{"request":{"action":"grant","correlationId":"CHG-14"},"progress":{}}"#,
            Some("CHG-14"),
        ),
    ];
    for (index, (body, expected)) in bodies.iter().enumerate() {
        invoke(&worker, record_event(body, &format!("m-{index}"), 1)).await;
        let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
        let dead = dead.last().expect("a dead letter");
        assert_eq!(
            dead.attribute("ErrorClass"),
            Some("invalid-request"),
            "{body}"
        );
        assert_eq!(dead.attribute("CorrelationId"), *expected, "{body}");
        let events = outcome_events(&worker);
        let event = events.last().expect("an outcome event");
        assert_eq!(event["correlationId"].as_str(), *expected, "{body}");
    }
}

#[tokio::test]
async fn the_mixed_batch_gives_each_record_its_own_outcome() {
    let worker = worker(vec![], config(&[]));
    let event = fixture("mixed-batch.json");
    assert_eq!(event.records.len(), 10);
    let response = invoke(&worker, event).await;

    assert!(failures(&response).is_empty(), "{:?}", failures(&response));
    // Seven valid assignment requests, one of them expired: six AWS calls. The
    // associate finds its principal listed: already-satisfied, with no change made.
    assert_eq!(
        worker.identity_center.calls().len(),
        6,
        "{:?}",
        worker.identity_center.calls()
    );
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    let mut classes: Vec<(&str, &str)> = dead
        .iter()
        .map(|m| {
            (
                m.attribute("ErrorClass").unwrap_or_default(),
                m.attribute("ErrorCode").unwrap_or_default(),
            )
        })
        .collect();
    classes.sort_unstable();
    assert_eq!(
        classes,
        [
            ("expired", "NotAfterPassed"),
            ("invalid-request", "NotAnObject"),
            ("invalid-request", "NotJson"),
        ]
    );
    let outcomes = worker
        .queues
        .sent_to(worker.config.outcome_queue.as_ref().unwrap());
    assert_eq!(outcomes.len(), 10, "one outcome per request");
    assert!(worker.queues.batch_sizes().iter().all(|size| *size <= 10));
}

#[tokio::test]
async fn a_refused_send_fails_only_its_own_record() {
    let event = fixture("mixed-batch.json");
    let ids = message_ids(&event);
    let worker = worker_sending_to(RecordingQueues::refusing(["CHG-2003"]), vec![], config(&[]));
    let response = invoke(&worker, event).await;
    // Record 3 (CHG-2003): its outcome event was refused, so it is not durably done.
    assert_eq!(failures(&response), [ids[2].clone()]);
}

/// A queue that refuses every batch of more than one message, and answers nothing at
/// all for a message alone that contains `silent`: a queue port that breaks its
/// one-result-per-message contract.
struct ShortAnswers {
    queues: RecordingQueues,
    silent: &'static str,
}

impl QueueSender for ShortAnswers {
    async fn send_batch(
        &self,
        queue: &assignment_worker::config::QueueUrl,
        messages: &[OutgoingMessage],
    ) -> Vec<Result<(), SendError>> {
        if messages.len() > 1 {
            let refused = SendError {
                kind: ErrorKind::Rejected,
                code: "AWS.SimpleQueueService.BatchRequestTooLong".to_owned(),
                message: "refused by the test".to_owned(),
            };
            return vec![Err(refused); messages.len()];
        }
        if messages.iter().any(|m| m.body.contains(self.silent)) {
            return Vec::new();
        }
        self.queues.send_batch(queue, messages).await
    }
}

/// When a batch is sent again entry by entry, each entry's answer stays with its own
/// record: a missing answer fails that record, and does not shift the next entry's
/// answer onto it (which acknowledged a record whose message was not stored).
#[tokio::test]
async fn an_entry_sent_alone_without_an_answer_fails_its_own_record() {
    let event = fixture("mixed-batch.json");
    let ids = message_ids(&event);
    let queues = ShortAnswers {
        queues: RecordingQueues::default(),
        silent: "CHG-2003",
    };
    let worker = worker_sending_to(queues, vec![], config(&[]));
    let response = function_handler(&worker, LambdaEvent::new(event, Context::default()))
        .await
        .expect("a batch response");
    assert_eq!(failures(&response), [ids[2].clone()]);
}

#[tokio::test]
async fn a_refused_dead_letter_fails_its_record() {
    let event = fixture("malformed.json");
    let ids = message_ids(&event);
    let worker = worker_sending_to(
        RecordingQueues::refusing(["princpalId"]),
        vec![],
        config(&[]),
    );
    let response = invoke(&worker, event).await;
    assert_eq!(failures(&response), ids);
}

/// An outcome event is sent only once the record's other messages are stored. A record
/// whose dead letter or next step SQS refused runs again, and may end otherwise (the
/// operation finished meanwhile, a later decision came): its outcome, had it gone out
/// beside the refused message, would be followed by a second one that contradicts it.
#[tokio::test]
async fn an_outcome_waits_until_the_records_other_messages_are_stored() {
    let now = time::OffsetDateTime::now_utc();
    let not_after = assignment_worker::messages::rfc3339(now + time::Duration::hours(2));
    let grant = assignment_request("create", "TEMP-HELD", &[("notAfter", &not_after)]);
    // Past the poll deadline: a timed-out dead letter. Succeeded: an expiry step.
    let cases = [
        (
            DLQ,
            status(OperationStatus::InProgress, None),
            rfc3339_minutes_ago(16),
        ),
        (
            WORK,
            status(OperationStatus::Succeeded, None),
            rfc3339_minutes_ago(1),
        ),
    ];
    for (refused, answer, submitted_at) in cases {
        let config = config(&[]);
        let queue = assignment_worker::config::QueueUrl::parse(refused).expect("a queue URL");
        let worker = worker_sending_to(
            RecordingQueues::refusing_queue(&queue),
            vec![answer],
            config,
        );
        let poll = create_poll(&grant, 12, &submitted_at);
        let response = invoke(&worker, record_event(&poll, "m-held", 1_764_000_000_000)).await;
        assert_eq!(failures(&response), ["m-held"], "{refused}");
        assert!(outcome_events(&worker).is_empty(), "{refused}");
    }
}

/// A dead letter waits for the record's next step too. A grant with notAfter that may
/// exist, dead-lettered with its expiry step: were the dead letter stored and the step
/// refused, the record's rerun could end `succeeded` beside a dead letter for the same
/// request, which a redrive would replay.
#[tokio::test]
async fn a_dead_letter_waits_until_the_records_next_step_is_stored() {
    let config = config(&[("MAX_ATTEMPTS", "1")]);
    let work = config.work_queue.clone();
    let worker = worker_sending_to(
        RecordingQueues::refusing_queue(&work),
        vec![error(ErrorKind::Timeout, "Timeout")],
        config,
    );
    let grant = timed_grant_at("TEMP-WAIT", "2026-11-30T10:00:00Z");
    let response = invoke(&worker, record_event(&grant, "m-wait", 1_764_496_800_000)).await;
    assert_eq!(failures(&response), ["m-wait"]);
    assert!(
        worker
            .queues
            .sent_to(&worker.config.dead_letter_queue)
            .is_empty()
    );
    assert!(outcome_events(&worker).is_empty());
}

/// SPEC §5: a stored dead letter is the record's durable end; the outcome event is owed
/// only for a terminal success. A timed-out poll whose dead letter is stored and whose
/// `dead-lettered` event SQS refused is acknowledged: left for redelivery, its rerun
/// finds the create done and reports `succeeded` beside the stored `timed-out` dead
/// letter, which a redrive would replay.
#[tokio::test]
async fn a_stored_dead_letter_acknowledges_its_record_when_its_outcome_event_is_refused() {
    let outcomes = assignment_worker::config::QueueUrl::parse(OUTCOMES).expect("a queue URL");
    let worker = worker_sending_to(
        RecordingQueues::refusing_queue(&outcomes),
        vec![
            status(OperationStatus::InProgress, None),
            status(OperationStatus::Succeeded, None),
        ],
        config(&[]),
    );
    let grant = assignment_request("create", "CHG-LATE", &[]);
    let poll = create_poll(&grant, 12, &rfc3339_minutes_ago(16));
    let response = invoke(&worker, record_event(&poll, "m-late", 1_764_000_000_000)).await;
    assert_eq!(dead_letters(&worker, "ErrorClass"), ["timed-out"]);
    assert_eq!(
        failures(&response),
        Vec::<String>::new(),
        "the dead letter is stored: the record is done"
    );
}

fn rfc3339_minutes_ago(minutes: i64) -> String {
    assignment_worker::messages::rfc3339(
        time::OffsetDateTime::now_utc() - time::Duration::minutes(minutes),
    )
}

#[tokio::test]
async fn guardrails_refuse_before_any_aws_call() {
    let cases = [
        ("PROTECTED_ACCOUNT_IDS", "111122223333", "ProtectedAccount"),
        (
            "PROTECTED_PERMISSION_SET_ARNS",
            "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b",
            "ProtectedPermissionSet",
        ),
        // Spelt in another case: whether AWS tells the two apart is not documented, and
        // a list of what is never granted leans to refusing.
        (
            "PROTECTED_PERMISSION_SET_ARNS",
            "arn:aws:sso:::permissionSet/ssoins-722326BA6A8A6D40/ps-1A2B3C4D5E6F7A8B",
            "ProtectedPermissionSet",
        ),
        (
            "ALLOWED_INSTANCE_ARNS",
            "arn:aws:sso:::instance/ssoins-0000000000000000",
            "InstanceNotAllowed",
        ),
    ];
    for (variable, value, code) in cases {
        let worker = worker(vec![], config(&[(variable, value)]));
        let response = invoke(&worker, fixture("create.json")).await;
        assert!(failures(&response).is_empty());
        assert!(worker.identity_center.calls().is_empty(), "{variable}");
        let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
        assert_eq!(
            dead[0].attribute("ErrorClass"),
            Some("forbidden"),
            "{variable}"
        );
        assert_eq!(dead[0].attribute("ErrorCode"), Some(code));
        assert_eq!(dead[0].attribute("CorrelationId"), Some("CHG-1001"));
    }
    // A protected permission set may still be revoked.
    let worker = worker(
        vec![],
        config(&[(
            "PROTECTED_PERMISSION_SET_ARNS",
            "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b",
        )]),
    );
    invoke(&worker, fixture("delete.json")).await;
    assert_eq!(worker.identity_center.calls().len(), 1);
}

/// The request's ids may be written in either case (SPEC §2), and the ledger takes them
/// as one: a revoke naming the allowed instance in capitals is the same instance, and
/// refused as outside ALLOWED_INSTANCE_ARNS it would leave the access in place.
#[tokio::test]
async fn a_revoke_naming_an_allowed_instance_in_capitals_is_carried_out() {
    let worker = worker(
        vec![],
        config(&[(
            "ALLOWED_INSTANCE_ARNS",
            "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40",
        )]),
    );
    let revoke = assignment_request(
        "delete",
        "REVOKE-CAPITALS",
        &[(
            "instanceArn",
            "arn:aws:sso:::instance/ssoins-722326BA6A8A6D40",
        )],
    );
    invoke(
        &worker,
        record_event(&revoke, "m-revoke", 1_764_496_800_000),
    )
    .await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert!(dead.is_empty(), "{:?}", dead[0].attribute("ErrorCode"));
    let calls = worker.identity_center.calls();
    assert!(
        matches!(calls.first(), Some(Call::Delete { .. })),
        "{calls:?}"
    );
}

/// SPEC §7: `Attempts` counts the attempts made on the failing step, so a refusal after
/// retries says how many calls were made before it, not none.
#[tokio::test]
async fn a_refusal_after_a_throttled_attempt_counts_that_attempt() {
    let first = worker(
        vec![error(ErrorKind::Busy, "ThrottlingException")],
        config(&[]),
    );
    invoke(&first, fixture("create.json")).await;
    let retry = first.queues.sent_to(&first.config.work_queue);
    assert_eq!(retry.len(), 1);
    // The account became protected before the retry came back.
    let second = worker(vec![], config(&[("PROTECTED_ACCOUNT_IDS", "111122223333")]));
    invoke(
        &second,
        record_event(&retry[0].body, "m-retry", 1_763_785_200_000),
    )
    .await;
    assert!(second.identity_center.calls().is_empty());
    let dead = second.queues.sent_to(&second.config.dead_letter_queue);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attribute("ErrorCode"), Some("ProtectedAccount"));
    assert_eq!(dead[0].attribute("Attempts"), Some("1"));
    assert_eq!(outcome_of(&second, "CHG-1001")["attempts"], 1);
}

#[tokio::test]
async fn failed_operations_are_dead_lettered_with_the_spec_attributes() {
    let reason = "the USER assignee 9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10 was not found in directory";
    let worker = worker(
        vec![status(OperationStatus::Failed, Some(reason))],
        config(&[]),
    );
    let event = fixture("poll.json");
    let request: Value = serde_json::from_str(event.records[0].body.as_deref().unwrap()).unwrap();
    invoke(&worker, event).await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1);
    let body: Value = serde_json::from_str(&dead[0].body).unwrap();
    assert_eq!(
        body, request["request"],
        "the DLQ holds the original request, not the envelope"
    );
    assert_eq!(dead[0].attribute("ErrorClass"), Some("failed"));
    assert_eq!(dead[0].attribute("ErrorCode"), Some("FAILED"));
    assert_eq!(dead[0].attribute("ErrorMessage"), Some(reason));
    assert_eq!(dead[0].attribute("Attempts"), Some("1"));
    // The operation poll.json polls, which the answer names.
    assert_eq!(
        dead[0].attribute("OperationRequestId"),
        Some("7c1e3f0a-9b2d-4e5f-8a6b-0c1d2e3f4a5b")
    );
    assert_eq!(dead[0].attribute("CorrelationId"), Some("CHG-1003"));
}

#[tokio::test]
async fn transient_errors_are_retried_through_the_queue_with_backoff() {
    let worker = worker(
        vec![error(ErrorKind::Busy, "ThrottlingException")],
        config(&[("BACKOFF_BASE_SECONDS", "2")]),
    );
    invoke(&worker, fixture("create.json")).await;
    let work = worker.queues.sent_to(&worker.config.work_queue);
    assert_eq!(work.len(), 1);
    assert!(work[0].delay_seconds >= 15, "busy backoff starts at 15 s");
    let envelope = body_json(&work[0]);
    assert_eq!(envelope["progress"]["step"], "submit");
    assert_eq!(envelope["progress"]["attempt"], 2);
}

/// A function whose whole timeout is within the reserve can never make a call: a step
/// stored again would come back to the same shortage forever, with no dead letter and
/// no alarm (and an expiry would never revoke). Its records are left for SQS, whose
/// `MaxReceiveCount` moves them to the dead-letter queue, where the alarm sees them.
#[tokio::test]
async fn a_timeout_too_short_for_any_call_leaves_the_records_to_sqs() {
    let worker = worker(vec![], config(&[]));
    let event = fixture("mixed-batch.json");
    let ids = message_ids(&event);
    let mut context = Context::default();
    let deadline = SystemTime::now() + Duration::from_secs(2);
    let deadline_ms = deadline
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    context.deadline = u64::try_from(deadline_ms).expect("a deadline in ms");
    let response = function_handler(&worker, LambdaEvent::new(event, context))
        .await
        .expect("a batch response");
    assert!(worker.identity_center.calls().is_empty());
    assert!(worker.queues.sent_to(&worker.config.work_queue).is_empty());
    assert_eq!(failures(&response), ids[..8]);
}

#[tokio::test]
async fn near_the_deadline_no_call_starts_and_steps_are_stored_again_at_once() {
    let worker = worker(vec![], config(&[]));
    let event = fixture("mixed-batch.json");
    let response = worker
        .handle(
            event,
            &Invocation {
                deadline: Some(SystemTime::now() + Duration::from_secs(2)),
                ..Invocation::default()
            },
        )
        .await;
    assert!(worker.identity_center.calls().is_empty());
    assert!(worker.service_catalog.calls().is_empty());
    // The eight records that need an AWS call, or a ledger write (the grant whose
    // notAfter has passed claims before it is refused), are stored again as they were,
    // to run at once in another invocation; the two refused without either are
    // dead-lettered.
    assert!(failures(&response).is_empty());
    let stored = worker.queues.sent_to(&worker.config.work_queue);
    assert_eq!(stored.len(), 8);
    for step in &stored {
        assert_eq!(step.delay_seconds, 0);
        let envelope = body_json(step);
        assert_eq!(envelope["progress"]["step"], "submit", "{envelope}");
        assert_eq!(envelope["progress"]["attempt"], 1);
        assert_eq!(envelope["progress"].get("maybeSubmitted"), None);
    }
    assert_eq!(
        worker
            .queues
            .sent_to(&worker.config.dead_letter_queue)
            .len(),
        2
    );
}

/// The memory ledger with some of DynamoDB's ways scripted: claims that take
/// `claim_delay`, as a slow DynamoDB's do, on the assignments whose key holds `|` and
/// then `slow_key` (with "", every assignment); a later decision that lands just before
/// the first `record`, which is then refused for good (access denied); a first `record`
/// that lands but whose answer is lost (a timeout); every `latest` refused for good.
#[derive(Default)]
struct ScriptedLedger {
    inner: MemoryLedger,
    claim_delay: Duration,
    slow_key: &'static str,
    later_before_first_record: Mutex<Option<(AccessDecision, RecordedState)>>,
    first_record_answer_lost: Mutex<bool>,
    latest_refused: bool,
}

fn refused_for_good() -> CallError {
    CallError {
        kind: ErrorKind::AccessDenied,
        code: "AccessDeniedException".to_owned(),
        message: "scripted: refused for good".to_owned(),
    }
}

impl ScriptedLedger {
    fn slow_claims(claim_delay: Duration, slow_key: &'static str) -> Self {
        Self {
            claim_delay,
            slow_key,
            ..Self::default()
        }
    }
}

impl Ledger for ScriptedLedger {
    async fn claim(
        &self,
        key: &LedgerKey,
        decision: &AccessDecision,
        state: RecordedState,
        now: time::OffsetDateTime,
    ) -> LedgerResult<ClaimAnswer> {
        if !self.claim_delay.is_zero() && key.as_str().contains(&format!("|{}", self.slow_key)) {
            tokio::time::sleep(self.claim_delay).await;
        }
        self.inner.claim(key, decision, state, now).await
    }

    async fn latest(&self, key: &LedgerKey) -> LedgerResult<Option<AccessDecision>> {
        if self.latest_refused {
            return Err(refused_for_good());
        }
        self.inner.latest(key).await
    }

    async fn latest_with_state(
        &self,
        key: &LedgerKey,
    ) -> LedgerResult<Option<(AccessDecision, RecordedState)>> {
        self.inner.latest_with_state(key).await
    }

    async fn record(
        &self,
        key: &LedgerKey,
        order: &DecisionOrder,
        state: RecordedState,
        operation_request_id: Option<&str>,
        now: time::OffsetDateTime,
    ) -> LedgerResult<RecordAnswer> {
        let later = self.later_before_first_record.lock().unwrap().take();
        if let Some((later, later_state)) = later {
            self.inner
                .claim(key, &later, RecordedState::Pending, now)
                .await
                .expect("the later decision claimed");
            self.inner
                .record(key, &later.order, later_state, None, now)
                .await
                .expect("the later decision recorded");
            return Err(refused_for_good());
        }
        let answer = self
            .inner
            .record(key, order, state, operation_request_id, now)
            .await;
        if std::mem::take(&mut *self.first_record_answer_lost.lock().unwrap()) {
            return Err(CallError {
                kind: ErrorKind::Timeout,
                code: "TimeoutError".to_owned(),
                message: "scripted: the answer was lost".to_owned(),
            });
        }
        answer
    }
}

/// A grant whose claim leaves too little of the invocation for its create is stored
/// again at once, unsubmitted. Left for SQS to deliver again, the redelivery read its
/// own claim as a create that may have been made, and carried the grant out past its
/// notAfter.
/// A worker whose claims take `claim`, and a grant `correlation_id` sent now that ends
/// `lasts` from now: the worker, the grant's end, its body and its SentTimestamp (ms).
fn grant_with_slow_claims(
    claim: Duration,
    lasts: time::Duration,
    correlation_id: &str,
) -> (
    Worker<ScriptedIdentityCenter, RecordingQueues, ScriptedLedger, MemoryServiceCatalog>,
    time::OffsetDateTime,
    String,
    u64,
) {
    let worker = Worker {
        service_catalog: catalog(),
        ledger: ScriptedLedger::slow_claims(claim, ""),
        identity_center: ScriptedIdentityCenter::new(vec![]),
        queues: RecordingQueues::default(),
        config: config(&[]),
    };
    let now = time::OffsetDateTime::now_utc();
    let not_after = now + lasts;
    let grant = assignment_request(
        "create",
        correlation_id,
        &[("notAfter", &assignment_worker::messages::rfc3339(not_after))],
    );
    let sent_ms = u64::try_from(now.unix_timestamp() * 1000).expect("after 1970");
    (worker, not_after, grant, sent_ms)
}

#[tokio::test]
async fn a_grant_out_of_time_after_its_claim_is_stored_again_and_expires_unsubmitted() {
    let (worker, not_after, grant, sent_ms) = grant_with_slow_claims(
        Duration::from_secs(2),
        time::Duration::seconds(4),
        "TEMP-LATE",
    );
    let reserve = call_reserve(&worker.config);
    let response = worker
        .handle(
            record_event(&grant, "m-late", sent_ms),
            &Invocation {
                deadline: Some(SystemTime::now() + reserve + Duration::from_secs(1)),
                ..Invocation::default()
            },
        )
        .await;
    assert!(failures(&response).is_empty(), "left for redelivery");
    assert!(worker.identity_center.calls().is_empty());
    let stored = worker.queues.sent_to(&worker.config.work_queue);
    let [step] = stored.as_slice() else {
        panic!("one step stored, not {stored:?}");
    };
    assert_eq!(step.delay_seconds, 0);
    let envelope = body_json(step);
    assert_eq!(envelope["progress"]["step"], "submit");
    assert_eq!(envelope["progress"].get("maybeSubmitted"), None);

    let wait = not_after - time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    tokio::time::sleep(wait.unsigned_abs()).await;
    refused_as_expired(&worker, record_event(&step.body, "m-late-2", sent_ms)).await;
}

/// Runs `event`'s one grant, which must end dead-lettered `expired`, created by no call.
async fn refused_as_expired(
    worker: &Worker<ScriptedIdentityCenter, RecordingQueues, ScriptedLedger, MemoryServiceCatalog>,
    event: SqsEvent,
) {
    let response = worker.handle(event, &Invocation::default()).await;
    assert!(failures(&response).is_empty());
    assert!(
        worker.identity_center.calls().is_empty(),
        "created past notAfter"
    );
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attribute("ErrorClass"), Some("expired"));
}

/// A grant whose notAfter passes while it waits for its claim (a slow DynamoDB, or the
/// pacer holding it) is not created: checked before the claim only, it was created
/// after its end and given access past it.
#[tokio::test]
async fn a_grant_whose_end_passes_during_its_claim_is_not_created() {
    let (worker, _, grant, sent_ms) = grant_with_slow_claims(
        Duration::from_millis(2500),
        time::Duration::seconds(1),
        "TEMP-CLAIMED-LATE",
    );
    refused_as_expired(&worker, record_event(&grant, "m-claimed-late", sent_ms)).await;
    let items = worker.ledger.inner.items();
    let [item] = items.as_slice() else {
        panic!("one ledger item, not {items:?}");
    };
    assert_eq!(item.state, RecordedState::Absent);
}

#[tokio::test]
async fn many_records_go_out_in_batches_of_ten() {
    let template = fixture("create.json");
    let mut event = SqsEvent::default();
    for i in 0..25 {
        let mut record = template.records[0].clone();
        record.message_id = Some(format!("msg-{i}"));
        let body = record
            .body
            .unwrap_or_default()
            .replace("111122223333", &format!("1111222{i:05}"));
        record.body = Some(body);
        event.records.push(record);
    }
    let worker = worker(
        (0..25)
            .map(|_| status(OperationStatus::InProgress, None))
            .collect(),
        config(&[]),
    );
    let response = invoke(&worker, event).await;
    assert!(failures(&response).is_empty());
    assert_eq!(worker.queues.sent_to(&worker.config.work_queue).len(), 25);
    assert_eq!(worker.queues.batch_sizes(), [10, 10, 5]);
}

/// Counts calls in flight, overall and per (account, permission set), yielding inside
/// each call so that concurrent records really overlap.
#[derive(Default)]
struct ConcurrencyProbe {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    per_key: Mutex<HashMap<String, usize>>,
    max_per_key: AtomicUsize,
    panic_on_account: Option<&'static str>,
}

impl ConcurrencyProbe {
    async fn call(&self, assignment: &Assignment) -> CallResult {
        if self.panic_on_account == Some(assignment.account.as_str()) {
            panic!("injected panic for {}", assignment.account);
        }
        let key = format!("{}/{}", assignment.account, assignment.permission_set);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let same = {
            let mut per_key = self.per_key.lock().unwrap();
            let count = per_key.entry(key.clone()).or_default();
            *count += 1;
            *count
        };
        self.max_per_key.fetch_max(same, Ordering::SeqCst);
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        *self.per_key.lock().unwrap().entry(key).or_default() -= 1;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        status(OperationStatus::InProgress, None)
    }
}

impl IdentityCenter for ConcurrencyProbe {
    async fn create_assignment(&self, assignment: &Assignment) -> CallResult {
        self.call(assignment).await
    }
    async fn delete_assignment(&self, assignment: &Assignment) -> CallResult {
        self.call(assignment).await
    }
    async fn describe_creation_status(&self, assignment: &Assignment, _: &str) -> CallResult {
        self.call(assignment).await
    }
    async fn describe_deletion_status(&self, assignment: &Assignment, _: &str) -> CallResult {
        self.call(assignment).await
    }
}

fn batch_on_accounts(accounts: &[&str]) -> SqsEvent {
    let template = fixture("create.json");
    let mut event = SqsEvent::default();
    for (i, account) in accounts.iter().enumerate() {
        let mut record = template.records[0].clone();
        record.message_id = Some(format!("msg-{i}"));
        record.body = Some(
            record
                .body
                .unwrap_or_default()
                .replace("111122223333", account),
        );
        event.records.push(record);
    }
    event
}

#[tokio::test]
async fn records_run_concurrently_but_one_at_a_time_per_assignment() {
    let accounts = [
        "100000000001",
        "100000000002",
        "100000000001",
        "100000000003",
        "100000000004",
        "100000000001",
        "100000000005",
        "100000000006",
        "100000000002",
        "100000000007",
    ];
    let worker = Worker {
        service_catalog: catalog(),
        ledger: MemoryLedger::default(),
        identity_center: ConcurrencyProbe::default(),
        queues: RecordingQueues::default(),
        config: config(&[("MAX_CONCURRENCY", "3")]),
    };
    let response = invoke(&worker, batch_on_accounts(&accounts)).await;
    assert!(failures(&response).is_empty());
    assert_eq!(
        worker.identity_center.max_in_flight.load(Ordering::SeqCst),
        3
    );
    assert_eq!(worker.identity_center.max_per_key.load(Ordering::SeqCst), 1);
    assert_eq!(worker.queues.sent_to(&worker.config.work_queue).len(), 10);
}

/// A step's delay counts from when it was planned, not from when the batch is sent: a
/// record done early waits for the batch's slowest one, and its step came back later by
/// that much (a poll 3 s after its submit came back 5.5 s after it here).
#[tokio::test(start_paused = true)]
async fn a_step_comes_back_when_planned_however_long_its_batch_took() {
    let worker = Worker {
        service_catalog: catalog(),
        ledger: ScriptedLedger::slow_claims(Duration::from_millis(2500), "100000000002"),
        identity_center: ScriptedIdentityCenter::new(vec![
            status(OperationStatus::InProgress, None),
            status(OperationStatus::InProgress, None),
        ]),
        queues: RecordingQueues::default(),
        config: config(&[]),
    };
    let response = worker
        .handle(
            batch_on_accounts(&["100000000001", "100000000002"]),
            &Invocation::default(),
        )
        .await;
    assert!(failures(&response).is_empty());
    let delays: HashMap<String, u32> = worker
        .queues
        .sent_to(&worker.config.work_queue)
        .iter()
        .map(|message| {
            let account = body_json(message)["request"]["targetId"].to_string();
            (account.trim_matches('"').to_owned(), message.delay_seconds)
        })
        .collect();
    // The first was planned 2.5 s before the send: 2 whole seconds are off its 3 (the
    // half second left is not, so it never comes back early).
    assert_eq!(
        delays,
        HashMap::from([
            ("100000000001".to_owned(), 1),
            ("100000000002".to_owned(), 3)
        ])
    );
}

#[tokio::test]
async fn a_panic_in_one_record_fails_only_that_record() {
    let accounts = ["100000000001", "100000000666", "100000000003"];
    let worker = Worker {
        service_catalog: catalog(),
        ledger: MemoryLedger::default(),
        identity_center: ConcurrencyProbe {
            panic_on_account: Some("100000000666"),
            ..ConcurrencyProbe::default()
        },
        queues: RecordingQueues::default(),
        config: config(&[]),
    };
    let response = invoke(&worker, batch_on_accounts(&accounts)).await;
    assert_eq!(failures(&response), ["msg-1"]);
    assert_eq!(worker.queues.sent_to(&worker.config.work_queue).len(), 2);
}

#[test]
fn a_deadline_already_past_at_start_is_ignored() {
    use assignment_worker::handler::invocation_deadline;
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    assert_eq!(invocation_deadline(0, now), None);
    // cargo-lambda's emulator sends a duration (600000 ms) where Lambda sends epoch ms.
    assert_eq!(invocation_deadline(600_000, now), None);
    let real = 1_800_000_000_000 + 60_000;
    assert_eq!(
        invocation_deadline(real, now),
        Some(SystemTime::UNIX_EPOCH + Duration::from_millis(real))
    );
}

/// One record whose body is `body`, sent at `sent_ms` (epoch milliseconds).
fn record_event(body: &str, message_id: &str, sent_ms: u64) -> SqsEvent {
    serde_json::from_value(serde_json::json!({"Records": [{
        "messageId": message_id,
        "receiptHandle": format!("rh-{message_id}"),
        "body": body,
        "attributes": {"SentTimestamp": sent_ms.to_string(), "ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
    }]}))
    .expect("an SQS event")
}

fn assignment_request(action: &str, correlation_id: &str, extra: &[(&str, &str)]) -> String {
    let mut body = serde_json::json!({
        "action": action,
        "instanceArn": "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40",
        "permissionSetArn": "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b",
        "targetId": "111122223333",
        "principalType": "USER",
        "principalId": "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10",
        "correlationId": correlation_id,
    });
    for (key, value) in extra {
        body[*key] = Value::from(*value);
    }
    body.to_string()
}

/// A request decided at `requested_at`.
fn decision_at(action: &str, correlation_id: &str, requested_at: &str) -> String {
    assignment_request(action, correlation_id, &[("requestedAt", requested_at)])
}

/// A grant decided at `requested_at` whose `notAfter` is far away.
fn timed_grant_at(correlation_id: &str, requested_at: &str) -> String {
    assignment_request(
        "create",
        correlation_id,
        &[
            ("notAfter", "2099-01-01T00:00:00Z"),
            ("requestedAt", requested_at),
        ],
    )
}

fn outcome_events<I, L>(
    worker: &Worker<I, RecordingQueues, L, MemoryServiceCatalog>,
) -> Vec<Value> {
    worker
        .queues
        .sent_to(worker.config.outcome_queue.as_ref().expect("outcome queue"))
        .iter()
        .map(body_json)
        .collect()
}

/// How many of the Identity Center calls made so far `kind` picks.
fn calls_where(worker: &TestWorker, kind: impl Fn(&Call) -> bool) -> usize {
    worker
        .identity_center
        .calls()
        .iter()
        .filter(|c| kind(c))
        .count()
}

/// The outcome event of the request `correlation_id`.
fn outcome_of(worker: &TestWorker, correlation_id: &str) -> Value {
    outcome_events(worker)
        .into_iter()
        .find(|e| e["correlationId"] == correlation_id)
        .unwrap_or_else(|| panic!("an outcome for {correlation_id}"))
}

#[tokio::test]
async fn a_grant_older_than_the_recorded_revoke_is_superseded_without_a_call() {
    let worker = worker(vec![], config(&[]));
    let revoke = decision_at("delete", "REVOKE-2", "2026-11-29T10:00:02Z");
    let grant = decision_at("create", "GRANT-1", "2026-11-29T10:00:01Z");
    invoke(&worker, record_event(&revoke, "m-revoke", 1)).await;
    let response = invoke(&worker, record_event(&grant, "m-grant", 2)).await;

    assert!(failures(&response).is_empty());
    assert!(
        !worker
            .identity_center
            .calls()
            .iter()
            .any(|call| matches!(call, Call::Create { .. })),
        "{:?}",
        worker.identity_center.calls()
    );
    let events = outcome_events(&worker);
    let grant_event = events
        .iter()
        .find(|e| e["correlationId"] == "GRANT-1")
        .expect("the grant's outcome");
    assert_eq!(grant_event["outcome"], "superseded");
    assert_eq!(grant_event["supersededBy"]["correlationId"], "REVOKE-2");
    assert_eq!(
        grant_event["supersededBy"]["requestedAt"],
        "2026-11-29T10:00:02Z"
    );
    assert_eq!(grant_event["requestedAt"], "2026-11-29T10:00:01Z");
}

/// SPEC §2's patterns let an instance, permission set or principal id be written in upper
/// or lower case, and AWS's pages do not say whether it tells them apart: an upstream
/// whose grant names the principal in capitals must not see it land after a later revoke
/// written as Identity Center lists it.
#[tokio::test]
async fn a_grant_spelled_in_capitals_is_ordered_with_a_later_revoke_in_lower_case() {
    let worker = worker(vec![], config(&[]));
    let revoke = decision_at("delete", "REVOKE-2", "2026-11-29T10:00:02Z");
    let grant = assignment_request(
        "create",
        "GRANT-1",
        &[
            ("requestedAt", "2026-11-29T10:00:01Z"),
            (
                "instanceArn",
                "arn:aws:sso:::instance/ssoins-722326BA6A8A6D40",
            ),
            (
                "permissionSetArn",
                "arn:aws:sso:::permissionSet/ssoins-722326BA6A8A6D40/ps-1A2B3C4D5E6F7A8B",
            ),
            (
                "principalId",
                "9067a1b2c3-4C4F4A62-1E0B-4B4B-9C3B-1B6C5A3E7F10",
            ),
        ],
    );
    invoke(&worker, record_event(&revoke, "m-revoke", 1)).await;
    let response = invoke(&worker, record_event(&grant, "m-grant", 2)).await;

    assert!(failures(&response).is_empty());
    let creates = calls_where(&worker, |call| matches!(call, Call::Create { .. }));
    assert_eq!(creates, 0, "{:?}", worker.identity_center.calls());
    let grant_event = outcome_of(&worker, "GRANT-1");
    assert_eq!(grant_event["outcome"], "superseded");
    assert_eq!(grant_event["supersededBy"]["correlationId"], "REVOKE-2");
}

/// An SNS notification (raw delivery off) carrying `request`, published at `published`.
fn sns_notification(sns_message_id: &str, published: &str, request: &str) -> String {
    serde_json::json!({
        "Type": "Notification",
        "MessageId": sns_message_id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:access-requests",
        "Message": request,
        "Timestamp": published,
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/x.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    })
    .to_string()
}

/// An EventBridge event carrying `request`, put at `time`.
fn eventbridge_event(id: &str, time: &str, request: &str) -> String {
    let detail: Value = serde_json::from_str(request).expect("a JSON request");
    serde_json::json!({
        "version": "0", "id": id, "detail-type": "AccessDecision", "source": "approvals",
        "account": "123456789012", "time": time, "region": "us-east-1", "resources": [],
        "detail": detail,
    })
    .to_string()
}

/// A grant published to SNS at `grant_at` and a revoke at `revoke_at`.
fn published_grant_and_revoke(grant_at: &str, revoke_at: &str) -> (String, String) {
    (
        sns_notification(
            "11111111-0000-4000-8000-000000000001",
            grant_at,
            &assignment_request("create", "GRANT", &[]),
        ),
        sns_notification(
            "11111111-0000-4000-8000-000000000002",
            revoke_at,
            &assignment_request("delete", "REVOKE", &[]),
        ),
    )
}

/// SNS delivers late and more than once, each delivery a new SQS message: without
/// `requestedAt`, a decision it carries is ordered by when it was published, not by when
/// a delivery of it reached the queue. A grant published before a revoke but delivered
/// after it is superseded.
#[tokio::test]
async fn a_grant_published_before_a_revoke_but_delivered_after_it_is_superseded() {
    let worker = worker(vec![], config(&[]));
    let (grant, revoke) =
        published_grant_and_revoke("2025-11-30T10:00:00.000Z", "2025-11-30T10:00:02.000Z");
    // Reaching the queue: the revoke at 10:00:02.1, the grant (retried) at 10:00:08.
    invoke(
        &worker,
        record_event(&revoke, "m-revoke", 1_764_496_802_100),
    )
    .await;
    invoke(&worker, record_event(&grant, "m-grant", 1_764_496_808_000)).await;
    let creates = calls_where(&worker, |call| matches!(call, Call::Create { .. }));
    assert_eq!(creates, 0, "{:?}", worker.identity_center.calls());
    let grant_event = outcome_of(&worker, "GRANT");
    assert_eq!(grant_event["outcome"], "superseded");
    assert_eq!(grant_event["requestedAt"], "2025-11-30T10:00:00Z");
}

/// EventBridge's `time` is to the second, where a raw request's `SentTimestamp` is to
/// the millisecond: a revoke put at 10:00:00.9 reads `10:00:00Z`. Ordered by it, a grant
/// sent raw at 10:00:00.5 would outrank the revoke; an event is ordered by its
/// SentTimestamp instead.
#[tokio::test]
async fn an_eventbridge_revoke_a_fraction_of_a_second_after_a_raw_grant_is_not_outranked() {
    let worker = worker(vec![], config(&[]));
    let grant = assignment_request("create", "GRANT", &[]);
    let revoke = eventbridge_event(
        "11111111-0000-4000-8000-0000000000aa",
        "2025-11-30T10:00:00Z",
        &assignment_request("delete", "REVOKE", &[]),
    );
    invoke(&worker, record_event(&grant, "m-grant", 1_764_496_800_500)).await;
    invoke(
        &worker,
        record_event(&revoke, "m-revoke", 1_764_496_800_950),
    )
    .await;
    let revoke_event = outcome_of(&worker, "REVOKE");
    assert_ne!(revoke_event["outcome"], "superseded", "{revoke_event}");
    let calls = worker.identity_center.calls();
    assert!(
        matches!(calls.last(), Some(Call::Delete { .. })),
        "{calls:?}"
    );
}

/// Two grants of one assignment within one second, the later with `notAfter`: EventBridge's
/// `time` (to the second) cannot tell which came first, so it does not order them; the
/// timed grant, made later, stays the latest decision and keeps its expiry.
#[tokio::test]
async fn an_eventbridge_timed_grant_after_a_permanent_grant_in_its_second_keeps_its_expiry() {
    let permanent_raw = assignment_request("create", "GRANT-PERMANENT", &[]);
    let permanent_eventbridge = eventbridge_event(
        "11111111-0000-4000-8000-0000000000c1",
        "2025-11-30T10:00:00Z",
        &assignment_request("create", "GRANT-PERMANENT", &[]),
    );
    let timed = eventbridge_event(
        "11111111-0000-4000-8000-0000000000bb",
        "2025-11-30T10:00:00Z",
        &assignment_request(
            "create",
            "GRANT-TIMED",
            &[("notAfter", "2099-01-01T00:00:00Z")],
        ),
    );
    for permanent in [permanent_raw, permanent_eventbridge] {
        let sent_ms = [1_764_496_800_200, 1_764_496_800_900];
        permanent_then_timed_keeps_the_expiry(&permanent, &timed, "GRANT-TIMED", sent_ms).await;
    }
}

/// Delivers a permanent grant, then a timed one, at `sent_ms`: the timed grant stays the
/// latest decision, its expiry waiting.
async fn permanent_then_timed_keeps_the_expiry(
    permanent: &str,
    timed: &str,
    timed_id: &str,
    sent_ms: [u64; 2],
) {
    let worker = worker(vec![], config(&[]));
    invoke(&worker, record_event(permanent, "m-permanent", sent_ms[0])).await;
    invoke(&worker, record_event(timed, "m-timed", sent_ms[1])).await;
    let timed_event = outcome_of(&worker, timed_id);
    assert_ne!(timed_event["outcome"], "superseded", "{timed_event}");
    assert_eq!(
        work_steps(&worker),
        ["expire-wait"],
        "the latest decision's end"
    );
}

/// SNS's `Timestamp` is to the millisecond: two grants of one assignment published in
/// one millisecond (a FIFO topic's PublishBatch, the permanent grant first) tie on it.
/// The tie must not go to the permanent grant, whose access would then never end: within
/// its millisecond a decision that ends access (a timed grant, a revoke) stands above a
/// permanent grant.
#[tokio::test]
async fn an_sns_timed_grant_published_in_a_permanent_grants_millisecond_keeps_its_expiry() {
    let permanent = sns_notification(
        "11111111-0000-4000-8000-0000000000d1",
        "2025-11-30T10:00:00.123Z",
        &assignment_request("create", "TICKET-9-PERMANENT", &[]),
    );
    let timed = sns_notification(
        "11111111-0000-4000-8000-0000000000d2",
        "2025-11-30T10:00:00.123Z",
        &assignment_request(
            "create",
            "TICKET-1-TIMED",
            &[("notAfter", "2099-01-01T00:00:00Z")],
        ),
    );
    let sent_ms = [1_764_496_800_150, 1_764_496_800_180];
    permanent_then_timed_keeps_the_expiry(&permanent, &timed, "TICKET-1-TIMED", sent_ms).await;
}

/// A second SNS delivery of a grant, after a later revoke, is the same decision (one
/// publish time), not a new one that grants again.
#[tokio::test]
async fn an_sns_duplicate_of_a_grant_does_not_outrank_a_later_revoke() {
    let worker = worker(vec![], config(&[]));
    let (grant, revoke) =
        published_grant_and_revoke("2025-11-30T10:00:00.000Z", "2025-11-30T10:01:00.000Z");
    invoke(
        &worker,
        record_event(&grant, "m-grant-1", 1_764_496_800_050),
    )
    .await;
    invoke(
        &worker,
        record_event(&revoke, "m-revoke", 1_764_496_860_050),
    )
    .await;
    invoke(
        &worker,
        record_event(&grant, "m-grant-2", 1_764_496_861_000),
    )
    .await;
    let calls = worker.identity_center.calls();
    let creates = calls_where(&worker, |call| matches!(call, Call::Create { .. }));
    assert_eq!(creates, 1, "{calls:?}");
    assert!(
        matches!(calls.last(), Some(Call::Delete { .. })),
        "{calls:?}"
    );
}

#[tokio::test]
async fn without_requested_at_the_first_sent_timestamp_orders_decisions() {
    let worker = worker(vec![], config(&[]));
    let revoke = assignment_request("delete", "REVOKE", &[]);
    let grant = assignment_request("create", "GRANT", &[]);
    // The revoke was sent later (SentTimestamp) but arrives first.
    invoke(&worker, record_event(&revoke, "m-2", 1_764_496_800_500)).await;
    invoke(&worker, record_event(&grant, "m-1", 1_764_496_800_000)).await;
    let events = outcome_events(&worker);
    assert_eq!(events[0]["requestedAt"], "2025-11-30T10:00:00.5Z");
    assert_eq!(events[1]["outcome"], "superseded");
    assert_eq!(
        worker.identity_center.calls().len(),
        1,
        "only the revoke's delete"
    );
}

/// A SentTimestamp before 1970 (only a hand-made event carries one) orders nothing: the
/// receipt stands in, as for a record without one. Taken as the decision's time, year -1
/// could be written in no envelope, and the record came back until SQS gave up on it.
#[tokio::test]
async fn a_sent_timestamp_before_1970_is_not_the_decisions_time() {
    let worker = worker(vec![], config(&[]));
    let revoke = assignment_request("delete", "REVOKE-ANCIENT", &[]);
    let mut event = record_event(&revoke, "m-ancient", 0);
    event.records[0]
        .attributes
        .insert("SentTimestamp".to_owned(), "-62167219200001".to_owned());
    let response = invoke(&worker, event).await;

    assert!(failures(&response).is_empty());
    let outcome = outcome_of(&worker, "REVOKE-ANCIENT");
    assert_eq!(outcome["outcome"], "succeeded");
    assert!(
        outcome["requestedAt"]
            .as_str()
            .is_some_and(|at| at.starts_with("20")),
        "{outcome}"
    );
}

#[tokio::test]
async fn a_grant_with_not_after_stores_its_expiry_step_with_the_outcome() {
    let worker = worker(vec![], config(&[]));
    let not_after = time::OffsetDateTime::now_utc() + time::Duration::hours(2);
    let not_after = assignment_worker::messages::rfc3339(not_after);
    let grant = assignment_request("create", "TEMP-1", &[("notAfter", &not_after)]);
    let response = invoke(&worker, record_event(&grant, "m-1", 1_764_496_800_000)).await;
    assert!(failures(&response).is_empty());

    let work = worker.queues.sent_to(&worker.config.work_queue);
    assert_eq!(work.len(), 1);
    assert_eq!(work[0].delay_seconds, 900);
    let envelope = body_json(&work[0]);
    assert_eq!(envelope["progress"]["step"], "expire-wait");
    assert_eq!(envelope["progress"]["purpose"], "expiry");
    assert_eq!(envelope["progress"]["operation"], "delete");
    let events = outcome_events(&worker);
    assert_eq!(events[0]["outcome"], "succeeded");
    assert_eq!(events[0]["expiresAt"], not_after.as_str());
}

/// The expiry step the worker stores for `grant` (whose notAfter is hours away), with
/// the request's notAfter moved into the past: the step as it is when it comes due.
async fn due_expiry(
    worker: &Worker<ScriptedIdentityCenter, RecordingQueues, MemoryLedger, MemoryServiceCatalog>,
    grant: &str,
) -> String {
    invoke(worker, record_event(grant, "m-grant", 1_764_496_800_000)).await;
    let work = worker.queues.sent_to(&worker.config.work_queue);
    let mut envelope = body_json(work.last().expect("the expiry step"));
    assert_eq!(envelope["progress"]["step"], "expire-wait");
    envelope["request"]["notAfter"] = Value::from("2026-11-29T12:00:00Z");
    envelope.to_string()
}

/// An expiry that comes due with too little of the invocation left for its delete is
/// stored again at once: left for SQS to deliver again, it revoked a visibility timeout
/// (minutes) after notAfter, where SPEC §11 allows a minute.
#[tokio::test]
async fn an_expiry_due_near_the_deadline_is_stored_again_at_once() {
    let worker = worker(vec![], config(&[]));
    let grant = assignment_request("create", "TEMP-3", &[("notAfter", "2099-01-01T00:00:00Z")]);
    let expiry = due_expiry(&worker, &grant).await;
    let calls = worker.identity_center.calls().len();
    let response = worker
        .handle(
            record_event(&expiry, "m-expiry", 1_764_496_900_000),
            &Invocation {
                deadline: Some(SystemTime::now() + Duration::from_secs(2)),
                ..Invocation::default()
            },
        )
        .await;
    assert!(failures(&response).is_empty(), "left for redelivery");
    assert_eq!(worker.identity_center.calls().len(), calls);
    let work = worker.queues.sent_to(&worker.config.work_queue);
    let stored = work.last().expect("the expiry stored again");
    assert_eq!(stored.delay_seconds, 0);

    invoke(
        &worker,
        record_event(&stored.body, "m-expiry-2", 1_764_496_900_000),
    )
    .await;
    assert!(matches!(
        worker.identity_center.calls().last(),
        Some(Call::Delete { .. })
    ));
    assert_eq!(
        outcome_events(&worker).last().expect("an outcome")["trigger"],
        "expiry"
    );
}

#[tokio::test]
async fn at_not_after_the_expiry_revokes_a_grant_that_is_still_the_latest_decision() {
    let worker = worker(vec![], config(&[]));
    let grant = assignment_request("create", "TEMP-2", &[("notAfter", "2099-01-01T00:00:00Z")]);
    let expiry = due_expiry(&worker, &grant).await;
    let response = invoke(
        &worker,
        record_event(&expiry, "m-expiry", 1_764_496_900_000),
    )
    .await;
    assert!(failures(&response).is_empty());

    assert!(matches!(
        worker.identity_center.calls().last(),
        Some(Call::Delete { .. })
    ));
    let events = outcome_events(&worker);
    let last = events.last().expect("the expiry's outcome");
    assert_eq!(last["trigger"], "expiry");
    assert_eq!(last["action"], "delete");
    assert_eq!(last["correlationId"], "TEMP-2");
    assert_eq!(last["outcome"], "succeeded");
}

#[tokio::test]
async fn an_expiry_step_before_not_after_only_waits() {
    let worker = worker(vec![], config(&[]));
    let not_after = assignment_worker::messages::rfc3339(
        time::OffsetDateTime::now_utc() + time::Duration::seconds(600),
    );
    let grant = assignment_request("create", "TEMP-3", &[("notAfter", &not_after)]);
    invoke(&worker, record_event(&grant, "m-grant", 1_764_496_800_000)).await;
    let work = worker.queues.sent_to(&worker.config.work_queue);
    let expiry = work.last().expect("the expiry step").body.clone();
    let calls = worker.identity_center.calls().len();
    invoke(
        &worker,
        record_event(&expiry, "m-expiry", 1_764_496_900_000),
    )
    .await;
    assert_eq!(
        worker.identity_center.calls().len(),
        calls,
        "no call before notAfter"
    );
    let work = worker.queues.sent_to(&worker.config.work_queue);
    let wait = work.last().expect("the next wait");
    assert!(
        (599..=600).contains(&wait.delay_seconds),
        "{}",
        wait.delay_seconds
    );
    assert_eq!(body_json(wait)["progress"]["step"], "expire-wait");
}

#[tokio::test]
async fn an_expiry_after_a_later_decision_changes_nothing() {
    let worker = worker(vec![], config(&[]));
    let grant = timed_grant_at("TEMP-4", "2026-11-29T10:00:00Z");
    let expiry = due_expiry(&worker, &grant).await;
    // A later grant with a later end extends the access.
    let extension = timed_grant_at("TEMP-5", "2026-11-29T10:00:01Z");
    invoke(
        &worker,
        record_event(&extension, "m-ext", 1_764_496_800_100),
    )
    .await;
    let calls = worker.identity_center.calls().len();
    invoke(
        &worker,
        record_event(&expiry, "m-expiry", 1_764_496_900_000),
    )
    .await;
    assert_eq!(
        worker.identity_center.calls().len(),
        calls,
        "nothing revoked"
    );
    let events = outcome_events(&worker);
    let last = events.last().expect("the expiry's outcome");
    assert_eq!(last["trigger"], "expiry");
    assert_eq!(last["outcome"], "superseded");
    assert_eq!(last["supersededBy"]["correlationId"], "TEMP-5");
}

/// A later revoke that was dead-lettered never removed the access: the grant's expiry
/// still revokes at notAfter (a delete agrees with that revoke), rather than ending
/// `superseded` and leaving the access until someone redrives the revoke.
#[tokio::test]
async fn an_expiry_behind_a_later_revoke_that_was_dead_lettered_still_revokes() {
    let worker = worker(
        vec![
            status(OperationStatus::Succeeded, None),
            error(ErrorKind::AccessDenied, "AccessDeniedException"),
        ],
        config(&[]),
    );
    let grant = timed_grant_at("TEMP-R", "2026-11-29T10:00:00Z");
    let expiry = due_expiry(&worker, &grant).await;
    let revoke = decision_at("delete", "REVOKE-R", "2026-11-29T10:00:01Z");
    invoke(
        &worker,
        record_event(&revoke, "m-revoke", 1_764_496_800_100),
    )
    .await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1, "the revoke is dead-lettered");

    invoke(
        &worker,
        record_event(&expiry, "m-expiry", 1_764_496_900_000),
    )
    .await;
    let calls = worker.identity_center.calls();
    assert!(
        matches!(
            calls.as_slice(),
            [
                Call::Create { .. },
                Call::Delete { .. },
                Call::Delete { .. }
            ]
        ),
        "{calls:?}"
    );
    let events = outcome_events(&worker);
    let last = events.last().expect("the expiry's outcome");
    assert_eq!(last["trigger"], "expiry");
    assert_eq!(last["outcome"], "succeeded");
}

#[tokio::test]
async fn a_failed_expiry_is_dead_lettered_as_its_own_step_not_as_the_grant() {
    let worker = worker(
        vec![
            status(OperationStatus::Succeeded, None),
            error(ErrorKind::AccessDenied, "AccessDeniedException"),
        ],
        config(&[]),
    );
    let grant = assignment_request("create", "TEMP-6", &[("notAfter", "2099-01-01T00:00:00Z")]);
    let expiry = due_expiry(&worker, &grant).await;
    invoke(
        &worker,
        record_event(&expiry, "m-expiry", 1_764_496_900_000),
    )
    .await;
    let dead = worker.queues.sent_to(&DLQ.parse_queue());
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attribute("ErrorClass"), Some("permanent"));
    // A redrive resumes the expiry; replaying the grant would grant again.
    let body = body_json(&dead[0]);
    assert_eq!(body["progress"]["step"], "expire-wait");
    assert_eq!(body["request"]["correlationId"], "TEMP-6");
}

#[tokio::test]
async fn a_requested_at_far_ahead_of_the_clock_is_an_invalid_request() {
    let worker = worker(vec![], config(&[]));
    let ahead = assignment_worker::messages::rfc3339(
        time::OffsetDateTime::now_utc() + time::Duration::minutes(6),
    );
    let grant = assignment_request("create", "FUTURE-1", &[("requestedAt", &ahead)]);
    invoke(&worker, record_event(&grant, "m-1", 1)).await;
    assert!(worker.identity_center.calls().is_empty());
    let dead = worker.queues.sent_to(&DLQ.parse_queue());
    assert_eq!(dead[0].attribute("ErrorClass"), Some("invalid-request"));
    assert_eq!(dead[0].attribute("ErrorCode"), Some("RequestedAtInFuture"));
}

trait ParseQueue {
    fn parse_queue(&self) -> assignment_worker::config::QueueUrl;
}

impl ParseQueue for str {
    fn parse_queue(&self) -> assignment_worker::config::QueueUrl {
        assignment_worker::config::QueueUrl::parse(self).expect("a queue URL")
    }
}

/// An undo re-targets its operation at the ledger's fence; the guardrails must judge
/// the operation it ends up carrying out, not the one it started with.
#[tokio::test]
async fn an_undo_that_turns_into_a_grant_still_meets_the_guardrails() {
    let protected = "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b";
    let worker = worker(
        vec![],
        config(&[("PROTECTED_PERMISSION_SET_ARNS", protected)]),
    );
    let revoke = decision_at("delete", "OLD-REVOKE", "2026-11-29T10:00:00Z");
    // The undo step of that revoke, written as the worker writes it: it was to delete,
    // and the later decision it restores is a grant recorded by other means.
    let envelope = undo_step(&revoke, "delete");
    let later_grant = decision_of(
        Intent::Grant,
        "LATER",
        time::macros::datetime!(2026-11-29 10:00:05 UTC),
    );
    record_latest(&worker, &revoke, &later_grant).await;

    invoke(&worker, record_event(&envelope.to_string(), "m-undo", 1)).await;
    assert!(
        !worker
            .identity_center
            .calls()
            .iter()
            .any(|call| matches!(call, Call::Create { .. })),
        "{:?}",
        worker.identity_center.calls()
    );
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead[0].attribute("ErrorClass"), Some("forbidden"));
}

/// SQS delivers at least once: when a second delivery of a request has carried it out,
/// the first delivery's chain must not dead-letter it when its own poll fails (found by
/// the chaos run).
#[tokio::test]
async fn a_failure_in_a_chain_whose_request_another_delivery_carried_out_is_not_dead_lettered() {
    let worker = worker(
        vec![
            status(OperationStatus::InProgress, None),
            status(OperationStatus::Succeeded, None),
            status(OperationStatus::Failed, Some("Internal failure")),
        ],
        config(&[]),
    );
    let body = assignment_request("create", "CHG-DUP", &[]);
    // The first delivery submits and re-enqueues a poll; the same message, delivered
    // again, is carried out at once.
    for _ in 0..2 {
        let response = invoke(&worker, record_event(&body, "m-dup", 1_764_000_000_000)).await;
        assert!(failures(&response).is_empty());
    }
    let poll = worker.queues.sent_to(&worker.config.work_queue)[0]
        .body
        .clone();
    assert_eq!(body_json_text(&poll)["progress"]["step"], "poll");
    let response = invoke(&worker, record_event(&poll, "m-poll", 1_764_000_001_000)).await;
    assert!(failures(&response).is_empty());

    assert_done_twice_without_a_dead_letter(&worker);
}

/// Both deliveries ended done (the second already-satisfied) and nothing reached the DLQ.
fn assert_done_twice_without_a_dead_letter(
    worker: &Worker<ScriptedIdentityCenter, RecordingQueues, MemoryLedger, MemoryServiceCatalog>,
) {
    assert!(
        worker
            .queues
            .sent_to(&worker.config.dead_letter_queue)
            .is_empty()
    );
    let outcomes: Vec<String> = outcome_events(worker)
        .iter()
        .map(|e| e["outcome"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(outcomes, ["succeeded", "already-satisfied"]);
}

fn body_json_text(body: &str) -> Value {
    serde_json::from_str(body).expect("JSON body")
}

/// The same, when the second delivery starts after the first carried the request out:
/// claiming the same decision again must not forget that it was carried out.
#[tokio::test]
async fn a_failure_on_a_later_second_delivery_of_a_carried_out_request_is_not_dead_lettered() {
    let worker = worker(
        vec![
            status(OperationStatus::Succeeded, None),
            status(OperationStatus::Failed, Some("Internal failure")),
        ],
        config(&[]),
    );
    let body = assignment_request("create", "CHG-DUP2", &[]);
    for _ in 0..2 {
        let response = invoke(&worker, record_event(&body, "m-dup2", 1_764_000_000_000)).await;
        assert!(failures(&response).is_empty());
    }
    assert_done_twice_without_a_dead_letter(&worker);
}

/// [`record_event`] for a record SQS has delivered `receive_count` times.
fn redelivered_event(body: &str, message_id: &str, receive_count: u32) -> SqsEvent {
    let mut event = record_event(body, message_id, 1_764_000_000_000);
    event.records[0].attributes.insert(
        "ApproximateReceiveCount".to_owned(),
        receive_count.to_string(),
    );
    event
}

/// The steps the worker stored on the work queue, by name.
fn work_steps(
    worker: &Worker<ScriptedIdentityCenter, RecordingQueues, MemoryLedger, MemoryServiceCatalog>,
) -> Vec<String> {
    worker
        .queues
        .sent_to(&worker.config.work_queue)
        .iter()
        .map(|m| {
            body_json(m)["progress"]["step"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// The first delivery of `body` submits and its poll is never stored (the worker was
/// stopped); SQS delivers the record again, and then the step the worker stored after
/// that delivery (a resubmit, in the tests that use it).
async fn lost_submit_then_resubmit(
    worker: &Worker<ScriptedIdentityCenter, RecordingQueues, MemoryLedger, MemoryServiceCatalog>,
    body: &str,
) {
    invoke(worker, redelivered_event(body, "m-lost", 1)).await;
    invoke(worker, redelivered_event(body, "m-lost", 2)).await;
    let next = worker
        .queues
        .sent_to(&worker.config.work_queue)
        .last()
        .expect("a step after the second delivery")
        .body
        .clone();
    invoke(worker, record_event(&next, "m-next", 1_764_000_060_000)).await;
}

/// The worker was stopped after its first delivery submitted the grant and before the
/// poll was stored; SQS delivered the request again, and the second create FAILED
/// although the first had taken effect (the chaos run's CHAOS-0177, as a grant).
/// Dead-lettering would leave the access in place with no expiry: the access must end
/// at notAfter, and the outcome must say the grant stands.
#[tokio::test]
async fn a_grant_redelivered_after_a_lost_submit_whose_second_operation_fails_keeps_its_expiry() {
    let worker = worker(
        vec![
            // First delivery: submitted; its poll is never stored.
            status(OperationStatus::InProgress, None),
            // Second delivery: this operation fails.
            status(OperationStatus::Failed, Some("Internal failure")),
        ],
        config(&[]),
    );
    let not_after = time::OffsetDateTime::now_utc() + time::Duration::hours(2);
    let not_after = assignment_worker::messages::rfc3339(not_after);
    let body = assignment_request("create", "TEMP-LOST", &[("notAfter", &not_after)]);
    lost_submit_then_resubmit(&worker, &body).await;

    assert!(
        worker
            .queues
            .sent_to(&worker.config.dead_letter_queue)
            .is_empty(),
        "the first create stands: not a failure"
    );
    assert_eq!(work_steps(&worker), ["poll", "submit", "expire-wait"]);
    let events = outcome_events(&worker);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["outcome"], "succeeded");
    assert_eq!(events[0]["expiresAt"], not_after.as_str());
}

/// The same for a revoke: the first delete took effect, the second FAILED; the
/// request is carried out, not dead-lettered (the chaos run's CHAOS-0177).
#[tokio::test]
async fn a_revoke_redelivered_after_a_lost_submit_whose_second_operation_fails_is_carried_out() {
    let worker = worker(
        vec![
            status(OperationStatus::InProgress, None),
            status(OperationStatus::Failed, Some("Internal failure")),
            status(
                OperationStatus::Failed,
                Some("EntitlementItem doesn't exist"),
            ),
        ],
        config(&[]),
    );
    let body = assignment_request("delete", "REVOKE-LOST", &[]);
    lost_submit_then_resubmit(&worker, &body).await;

    assert!(
        worker
            .queues
            .sent_to(&worker.config.dead_letter_queue)
            .is_empty()
    );
    let events = outcome_events(&worker);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["outcome"], "already-satisfied");
}

/// A resubmit whose operation FAILED too is a failure like any other: one resubmit,
/// not a loop.
#[tokio::test]
async fn a_failure_repeated_by_the_resubmit_is_dead_lettered() {
    let reason = "the USER assignee was not found in directory";
    let worker = worker(
        vec![
            status(OperationStatus::InProgress, None),
            status(OperationStatus::Failed, Some(reason)),
            status(OperationStatus::Failed, Some(reason)),
        ],
        config(&[]),
    );
    let body = assignment_request("create", "GRANT-GONE", &[]);
    lost_submit_then_resubmit(&worker, &body).await;

    assert_eq!(dead_letters(&worker, "ErrorClass"), ["failed"]);
    assert_eq!(dead_letters(&worker, "ErrorMessage"), [reason]);
    assert_eq!(worker.identity_center.calls().len(), 3);
}

/// A first delivery's FAILED is final (SPEC §3): no earlier submit can have taken
/// effect, so there is no resubmit. A grant with notAfter still keeps its expiry: it is
/// the latest decision, and access that stands from an earlier grant ends there.
#[tokio::test]
async fn a_failure_on_the_first_delivery_is_dead_lettered_without_a_resubmit() {
    let not_after = [("notAfter", "2099-01-01T00:00:00Z")];
    for (extra, steps) in [(&[][..], &[][..]), (&not_after[..], &["expire-wait"][..])] {
        let worker = worker(
            vec![status(OperationStatus::Failed, Some("Internal failure"))],
            config(&[]),
        );
        let body = assignment_request("create", "GRANT-FAIL", extra);
        invoke(&worker, redelivered_event(&body, "m-fail", 1)).await;
        assert_eq!(
            worker
                .queues
                .sent_to(&worker.config.dead_letter_queue)
                .len(),
            1
        );
        assert_eq!(work_steps(&worker), steps);
    }
}

/// A grant whose notAfter passed while its record waited for redelivery, after the
/// first delivery claimed and submitted it: it may exist, so it is carried on and
/// revoked at once rather than refused as `expired` with the access possibly in place
/// (SPEC §3).
#[tokio::test]
async fn a_redelivered_grant_past_not_after_is_carried_on_and_revoked() {
    let worker = worker(vec![status(OperationStatus::InProgress, None)], config(&[]));
    let ahead = assignment_worker::messages::rfc3339(
        time::OffsetDateTime::now_utc() + time::Duration::hours(2),
    );
    let body = assignment_request("create", "TEMP-LATE", &[("notAfter", &ahead)]);
    invoke(&worker, redelivered_event(&body, "m-late", 1)).await;
    // Its poll was never stored; the record comes back after notAfter.
    let late = body.replace(&ahead, "2026-11-29T12:00:00Z");
    invoke(&worker, redelivered_event(&late, "m-late", 2)).await;
    assert!(
        worker
            .queues
            .sent_to(&worker.config.dead_letter_queue)
            .is_empty()
    );
    let work = worker.queues.sent_to(&worker.config.work_queue);
    assert_eq!(work_steps(&worker), ["poll", "expire-wait"]);
    assert_eq!(work[1].delay_seconds, 0);
}

/// A grant's record that SQS delivers again after the grant's chain ended `failed`:
/// the worker stopped after storing the poll step, before the submit's record was
/// acknowledged, and the poll then met AWS's FAILED. The copy makes no second create:
/// it made one, and the grant was reported dead-lettered and then succeeded, with the
/// access in place against its dead letter.
#[tokio::test]
async fn a_grant_delivered_again_after_its_chain_failed_makes_no_second_create() {
    let grants = [
        decision_at("create", "CHG-FAILED", "2026-11-30T10:00:00Z"),
        timed_grant_at("CHG-FAILED", "2026-11-30T10:00:00Z"),
    ];
    for grant in grants {
        let worker = worker(
            vec![
                status(OperationStatus::InProgress, None),
                status(
                    OperationStatus::Failed,
                    Some("Internal failure while provisioning the assignment"),
                ),
            ],
            config(&[]),
        );
        invoke(&worker, redelivered_event(&grant, "m-grant", 1)).await;
        let poll = last_work_body(&worker);
        invoke(&worker, redelivered_event(&poll, "m-poll", 1)).await;
        assert_eq!(dead_letters(&worker, "ErrorClass"), ["failed"]);
        let calls = worker.identity_center.calls().len();

        let response = invoke(&worker, redelivered_event(&grant, "m-grant", 2)).await;
        assert!(failures(&response).is_empty());
        assert_eq!(worker.identity_center.calls().len(), calls, "{grant}");
        let outcomes: Vec<Value> = outcome_events(&worker);
        let outcomes: Vec<&Value> = outcomes.iter().map(|event| &event["outcome"]).collect();
        assert_eq!(outcomes, ["dead-lettered"], "{grant}");
    }
}

/// The dead letter of a grant whose chain ended `failed`, redriven once the cause is
/// fixed: the redrive comes under a new message id and starts the decision again, and
/// so does a copy of it SQS delivers again. Neither is taken for a copy of the failed
/// chain.
#[tokio::test]
async fn a_redriven_failed_grant_is_carried_out_even_when_delivered_twice() {
    let worker = worker(
        vec![
            status(OperationStatus::InProgress, None),
            status(
                OperationStatus::Failed,
                Some("the USER assignee was not found"),
            ),
        ],
        config(&[]),
    );
    let grant = decision_at("create", "CHG-REDRIVE", "2026-11-30T10:00:00Z");
    invoke(&worker, redelivered_event(&grant, "m-grant", 1)).await;
    let poll = last_work_body(&worker);
    invoke(&worker, redelivered_event(&poll, "m-poll", 1)).await;
    assert_eq!(dead_letters(&worker, "ErrorClass"), ["failed"]);

    // The redrive, its first delivery lost before its claim (so the ledger still holds
    // the chain failed, and the claim restamps it under the first message id), and a
    // copy of it; the script is spent: every call succeeds.
    for receive_count in [2, 3] {
        let calls = worker.identity_center.calls().len();
        let response = invoke(
            &worker,
            redelivered_event(&grant, "m-redrive", receive_count),
        )
        .await;
        assert!(failures(&response).is_empty());
        assert_eq!(
            worker.identity_center.calls().len(),
            calls + 1,
            "receive count {receive_count}"
        );
        assert!(matches!(
            worker.identity_center.calls().last(),
            Some(Call::Create { .. })
        ));
    }
    let outcomes = outcome_events(&worker);
    assert_eq!(
        outcomes.last().expect("the redrive's outcome")["outcome"],
        "succeeded"
    );
}

/// A grant refused as `expired` whose record SQS delivers again (the worker stopped
/// before the record was acknowledged) never reached a submit: it is refused again,
/// not carried out (found by the chaos run: CHAOS-0255 ended both dead-lettered and
/// succeeded).
#[tokio::test]
async fn a_redelivered_grant_that_was_refused_as_expired_is_refused_again() {
    let worker = worker(vec![], config(&[]));
    let body = assignment_request(
        "create",
        "TEMP-REFUSED",
        &[("notAfter", "2026-11-29T12:00:00Z")],
    );
    invoke(&worker, redelivered_event(&body, "m-refused", 1)).await;
    invoke(&worker, redelivered_event(&body, "m-refused", 2)).await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 2);
    assert!(
        dead.iter()
            .all(|d| d.attribute("ErrorClass") == Some("expired"))
    );
    assert!(worker.identity_center.calls().is_empty());
}

/// The final state: the last Identity Center call is a delete, so the access ends
/// removed whatever the outcome events say.
fn assert_access_ends_removed(worker: &TestWorker) {
    let calls = worker.identity_center.calls();
    assert!(
        matches!(calls.last(), Some(Call::Delete { .. })),
        "the access ends removed: {calls:?}"
    );
}

/// The `attribute` of each dead letter sent so far.
fn dead_letters(worker: &TestWorker, attribute: &str) -> Vec<String> {
    worker
        .queues
        .sent_to(&worker.config.dead_letter_queue)
        .iter()
        .map(|m| m.attribute(attribute).unwrap_or_default().to_owned())
        .collect()
}

/// The body of the last step stored on the work queue.
fn last_work_body(worker: &TestWorker) -> String {
    worker
        .queues
        .sent_to(&worker.config.work_queue)
        .last()
        .expect("a stored step")
        .body
        .clone()
}

/// The poll envelope of `request`'s create, submitted (and first received) at
/// `submitted_at`, after `polls` polls.
fn create_poll(request: &str, polls: u32, submitted_at: &str) -> String {
    serde_json::json!({
        "request": body_json_text(request),
        "progress": {"step": "poll", "operation": "create", "operationRequestId": REQUEST_ID,
                     "attempt": 1, "polls": polls, "firstReceivedAt": submitted_at,
                     "submittedAt": submitted_at},
    })
    .to_string()
}

/// A grant with notAfter whose operation outlived the poll deadline may still take
/// effect: the dead letter says so, and the expiry stays scheduled so that the access,
/// if it comes, ends at notAfter.
#[tokio::test]
async fn a_timed_out_grant_with_not_after_keeps_its_expiry() {
    let worker = worker(vec![status(OperationStatus::InProgress, None)], config(&[]));
    let now = time::OffsetDateTime::now_utc();
    let not_after = assignment_worker::messages::rfc3339(now + time::Duration::hours(2));
    let submitted_at = assignment_worker::messages::rfc3339(now - time::Duration::minutes(16));
    let poll = create_poll(
        &assignment_request("create", "TEMP-SLOW", &[("notAfter", &not_after)]),
        12,
        &submitted_at,
    );
    invoke(&worker, record_event(&poll, "m-slow", 1_764_000_000_000)).await;

    assert_eq!(dead_letters(&worker, "ErrorClass"), ["timed-out"]);
    assert_eq!(work_steps(&worker), ["expire-wait"]);
}

/// A poll past its deadline whose ledger read fails is dead-lettered `timed-out` at
/// once: only a refusal before any call is repeated to read again, and repeating this
/// step would poll again past its deadline.
#[tokio::test]
async fn a_timed_out_poll_whose_read_fails_is_dead_lettered_without_polling_again() {
    let worker = worker(vec![status(OperationStatus::InProgress, None)], config(&[]));
    let submitted_at = assignment_worker::messages::rfc3339(
        time::OffsetDateTime::now_utc() - time::Duration::minutes(16),
    );
    let poll = create_poll(
        &assignment_request("create", "SLOW", &[]),
        12,
        &submitted_at,
    );
    worker.ledger.set_faults([true]);
    invoke(&worker, record_event(&poll, "m-slow", 1_764_000_000_000)).await;
    assert_eq!(dead_letters(&worker, "ErrorClass"), ["timed-out"]);
    assert!(work_steps(&worker).is_empty(), "{:?}", work_steps(&worker));
    // The body is the bare request: redriven behind a later revoke it would end
    // superseded without undoing a create that landed, so the message says to look.
    let message = &dead_letters(&worker, "ErrorMessage")[0];
    assert!(
        message.contains("Check the access before redriving"),
        "{message}"
    );
}

/// A grant's create timed out (it may have landed); before its retry ran, the operator
/// protected the permission set. The retry is refused `forbidden` before its call, but
/// the first attempt's create may stand: the grant's expiry must still end it at
/// `notAfter`.
#[tokio::test]
async fn a_grant_that_may_exist_refused_by_a_guardrail_on_retry_keeps_its_expiry() {
    let mut worker = worker(vec![error(ErrorKind::Timeout, "Timeout")], config(&[]));
    let grant = assignment_request(
        "create",
        "TEMP-GUARDED",
        &[("notAfter", "2099-01-01T00:00:00Z")],
    );
    invoke(&worker, record_event(&grant, "m-grant", 1_764_496_800_000)).await;
    let retry = last_work_body(&worker);
    assert_eq!(body_json_text(&retry)["progress"]["maybeSubmitted"], true);
    worker.config = config(&[(
        "PROTECTED_PERMISSION_SET_ARNS",
        "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b",
    )]);
    invoke(&worker, record_event(&retry, "m-retry", 1_764_496_860_000)).await;

    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attribute("ErrorClass"), Some("forbidden"));
    // The operator learns that the refusal came after a submit that may have landed.
    let message = dead[0].attribute("ErrorMessage").unwrap_or_default();
    assert!(message.contains("may have carried it out"), "{message}");
    assert_eq!(work_steps(&worker), ["submit", "expire-wait"]);
}

/// The same refusal behind a later revoke that was carried out: the grant's create may
/// have landed after the revoke's delete, so the revoke's state is restored (a delete,
/// which the guardrail allows: revokes of a protected permission set go ahead) and the
/// grant ends `superseded`, as any change that may have landed behind a later decision.
#[tokio::test]
async fn a_grant_that_may_exist_refused_by_a_guardrail_behind_a_later_revoke_is_undone() {
    let mut worker = worker(
        vec![
            error(ErrorKind::Timeout, "Timeout"),
            // The later revoke's delete, then the undo's.
            status(OperationStatus::Succeeded, None),
            status(OperationStatus::Succeeded, None),
        ],
        config(&[]),
    );
    let grant = decision_at("create", "GRANT-GUARDED", "2026-11-29T10:00:00Z");
    invoke(&worker, record_event(&grant, "m-grant", 1_764_496_800_000)).await;
    let retry = last_work_body(&worker);
    let revoke = decision_at("delete", "REVOKE-LATER", "2026-11-29T10:00:01Z");
    invoke(
        &worker,
        record_event(&revoke, "m-revoke", 1_764_496_800_100),
    )
    .await;
    assert_eq!(outcome_of(&worker, "REVOKE-LATER")["outcome"], "succeeded");
    worker.config = config(&[(
        "PROTECTED_PERMISSION_SET_ARNS",
        "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b",
    )]);
    let stored = worker.queues.sent_to(&worker.config.work_queue).len();
    invoke(&worker, record_event(&retry, "m-retry", 1_764_496_860_000)).await;
    replay_work_from(&worker, stored).await;

    assert!(
        worker
            .queues
            .sent_to(&worker.config.dead_letter_queue)
            .is_empty()
    );
    assert_access_ends_removed(&worker);
    assert_eq!(
        outcome_of(&worker, "GRANT-GUARDED")["outcome"],
        "superseded"
    );
}

/// The same refusal behind a later grant with its own `notAfter` that is not carried out
/// (throttled, then refused alike): the create that may have landed now stands for the
/// later grant, which may never schedule its expiry. The first grant ends `superseded`,
/// and a restored-expiry chain ends the access at the later grant's end.
#[tokio::test]
async fn a_grant_that_may_exist_refused_behind_a_later_grant_not_carried_out_ends_at_its_end() {
    let mut worker = worker(
        vec![
            error(ErrorKind::Timeout, "Timeout"),
            error(
                ErrorKind::Busy,
                "ThrottlingException: too many requests processing",
            ),
        ],
        config(&[]),
    );
    let grant = timed_grant_at("GRANT-FIRST", "2026-11-29T10:00:00Z");
    invoke(&worker, record_event(&grant, "m-grant", 1_764_496_800_000)).await;
    let retry = last_work_body(&worker);
    let stored = worker.queues.sent_to(&worker.config.work_queue).len();
    // Far enough for the steps before the sleep to run well before it, on a loaded machine.
    let end = time::OffsetDateTime::now_utc() + time::Duration::seconds(6);
    let later = assignment_request(
        "create",
        "GRANT-LATER",
        &[
            ("notAfter", &assignment_worker::messages::rfc3339(end)),
            ("requestedAt", "2026-11-29T10:00:01Z"),
        ],
    );
    invoke(&worker, record_event(&later, "m-later", 1_764_496_800_100)).await;
    worker.config = config(&[(
        "PROTECTED_PERMISSION_SET_ARNS",
        "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b",
    )]);
    invoke(&worker, record_event(&retry, "m-retry", 1_764_496_860_000)).await;
    assert!(
        time::OffsetDateTime::now_utc() < end,
        "the set-up outran the later grant's end"
    );
    assert_eq!(outcome_of(&worker, "GRANT-FIRST")["outcome"], "superseded");
    // The later grant's retry (refused alike), then the watch until its end.
    replay_work_from(&worker, stored).await;

    assert_eq!(dead_letters(&worker, "CorrelationId"), ["GRANT-LATER"]);
    assert_access_ends_removed(&worker);
    assert!(time::OffsetDateTime::now_utc() >= end);
}

/// A poll envelope the lowered POLL_DEADLINE_SECONDS no longer allows is refused before
/// its call; its create was accepted, so the grant's expiry must still end it.
#[tokio::test]
async fn a_poll_refused_after_the_deadline_was_lowered_keeps_the_grants_expiry() {
    let worker = worker(vec![], config(&[("POLL_DEADLINE_SECONDS", "300")]));
    let now = time::OffsetDateTime::now_utc();
    let submitted_at = assignment_worker::messages::rfc3339(now - time::Duration::seconds(460));
    let poll = create_poll(
        &assignment_request(
            "create",
            "TEMP-POLLED",
            &[("notAfter", "2099-01-01T00:00:00Z")],
        ),
        20,
        &submitted_at,
    );
    invoke(&worker, record_event(&poll, "m-poll", 1_764_000_000_000)).await;

    assert_eq!(dead_letters(&worker, "ErrorClass"), ["invalid-request"]);
    assert!(worker.identity_center.calls().is_empty());
    assert_eq!(work_steps(&worker), ["expire-wait"]);
}

/// A poll envelope whose `submittedAt` lies ahead of the clock was not written by the
/// worker (SPEC §4): it ends the chain, and claims no submit that might have landed
/// (no expiry step, unlike a poll refused by a lowered deadline).
#[tokio::test]
async fn a_poll_submitted_in_the_future_ends_without_an_expiry() {
    let worker = worker(vec![], config(&[]));
    let now = time::OffsetDateTime::now_utc();
    let ahead = assignment_worker::messages::rfc3339(now + time::Duration::hours(1));
    let poll = create_poll(
        &assignment_request(
            "create",
            "TEMP-FORGED",
            &[("notAfter", "2099-01-01T00:00:00Z")],
        ),
        1,
        &ahead,
    );
    invoke(&worker, record_event(&poll, "m-forged", 1_764_000_000_000)).await;

    assert_eq!(dead_letters(&worker, "ErrorCode"), ["SubmittedAtInFuture"]);
    assert!(work_steps(&worker).is_empty(), "{:?}", work_steps(&worker));
}

/// A grant whose polls ran out of attempts (throttled), while a later revoke was carried
/// out: its create may have landed after the revoke's delete, so rather than a dead
/// letter the revoke's state is restored (SPEC §11 rule 3's undo) and the grant ends
/// `superseded`.
#[tokio::test]
async fn a_grant_exhausted_behind_a_later_revoke_restores_the_revoke_instead() {
    let worker = worker(
        vec![error(ErrorKind::RateLimited, "ThrottlingException")],
        config(&[]),
    );
    let grant = grant_behind_a_recorded_revoke(&worker).await;
    let poll = last_attempt_step(
        &grant,
        serde_json::json!({"step": "poll", "operation": "create",
                           "operationRequestId": REQUEST_ID, "polls": 1}),
    );
    invoke(&worker, record_event(&poll, "m-slow", 1_764_000_000_000)).await;
    assert!(
        worker
            .queues
            .sent_to(&worker.config.dead_letter_queue)
            .is_empty()
    );
    let work = worker.queues.sent_to(&worker.config.work_queue);
    let undo = body_json(work.last().expect("the undo"));
    undo_of_the_slow_grant_removes_it(&worker, &undo).await;
}

/// When the ledger cannot say whether the earlier delivery claimed the grant, the
/// grant is taken as possibly submitted: carried on and revoked at once, not refused
/// as `expired` with the access possibly in place.
#[tokio::test]
async fn a_redelivered_late_grant_whose_claim_cannot_be_read_is_carried_on_and_revoked() {
    let worker = Worker {
        ledger: MemoryLedger::with_faults([true]),
        ..worker(vec![], config(&[]))
    };
    let body = assignment_request(
        "create",
        "TEMP-UNREAD",
        &[("notAfter", "2026-11-29T12:00:00Z")],
    );
    invoke(&worker, redelivered_event(&body, "m-unread", 2)).await;
    assert!(
        worker
            .queues
            .sent_to(&worker.config.dead_letter_queue)
            .is_empty()
    );
    assert_eq!(work_steps(&worker), ["expire-wait"]);
}

#[tokio::test]
async fn a_redriven_revoke_is_carried_out_whatever_its_new_message_id() {
    // A dead letter is sent back as the request alone, so its redrive arrives under a
    // new message id, and message ids are random: here below the first delivery's.
    // The ledger holds the first delivery's claim; the redrive is the same decision,
    // not an earlier one, and must make its delete.
    let worker = worker(
        vec![
            error(ErrorKind::AccessDenied, "AccessDeniedException"),
            status(OperationStatus::Succeeded, None),
        ],
        config(&[]),
    );
    let revoke = decision_at("delete", "REVOKE-1", "2026-11-29T10:00:00Z");
    invoke(&worker, record_event(&revoke, "m-b", 1)).await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1, "the first delivery is dead-lettered");
    let redrive = invoke(&worker, record_event(&dead[0].body, "m-a", 2)).await;

    assert!(failures(&redrive).is_empty());
    let deletes = calls_where(&worker, |call| matches!(call, Call::Delete { .. }));
    assert_eq!(deletes, 2, "{:?}", worker.identity_center.calls());
    let events = outcome_events(&worker);
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[1]["outcome"], "succeeded", "{events:#?}");
}

/// The grant's first delivery submitted its create and was stopped before its poll was
/// stored; a later revoke ran meanwhile and found nothing to remove. When SQS delivers
/// the grant again, the ledger names the revoke, not the grant: the grant's first
/// delivery may still have made its claim, and its create, before the revoke's. The
/// create may stand, so the revoke's state must be restored, not the grant dropped.
#[tokio::test]
async fn a_grant_redelivered_after_a_later_revoke_undoes_the_create_it_may_have_made() {
    let worker = worker(
        vec![
            // The grant's first delivery: submitted.
            status(OperationStatus::InProgress, None),
            // The revoke: nothing there yet.
            error(ErrorKind::ResourceNotFound, "ResourceNotFoundException"),
            // The undo's delete.
            status(OperationStatus::Succeeded, None),
        ],
        config(&[]),
    );
    let grant = decision_at("create", "GRANT-G", "2026-11-29T10:00:01Z");
    let revoke = decision_at("delete", "REVOKE-R", "2026-11-29T10:00:02Z");
    invoke(&worker, redelivered_event(&grant, "m-grant", 1)).await;
    invoke(&worker, record_event(&revoke, "m-revoke", 1)).await;
    let before = worker.queues.sent_to(&worker.config.work_queue).len();
    invoke(&worker, redelivered_event(&grant, "m-grant", 2)).await;
    // Then the steps the worker stored after that delivery.
    let stored = worker.queues.sent_to(&worker.config.work_queue);
    for (n, next) in stored[before..].iter().enumerate() {
        invoke(&worker, record_event(&next.body, &format!("m-next-{n}"), 2)).await;
    }

    let deletes = calls_where(&worker, |call| matches!(call, Call::Delete { .. }));
    assert_eq!(
        deletes,
        2,
        "the revoke's and the undo's: {:?}",
        worker.identity_center.calls()
    );
    assert_eq!(outcome_of(&worker, "GRANT-G")["outcome"], "superseded");
}

/// The chaos run's SHARED-0047: a grant superseded by a later revoke, delivered again
/// after its first delivery's chain had undone its create (the worker stopped before
/// acknowledging the record). That delivery may have made a create of its own, so it
/// undoes too, and Identity Center answered the redundant delete `FAILED` with a fault
/// of its own (not "doesn't exist"). A revoke the worker owes is submitted once more
/// before it is dead-lettered: the second delete finds nothing to remove, and the grant
/// ends `superseded` only, not also dead-lettered.
#[tokio::test]
async fn an_undo_whose_delete_fails_is_submitted_once_more() {
    let worker = worker(
        vec![
            // The grant's first delivery: submitted.
            status(OperationStatus::InProgress, None),
            // The revoke: nothing there yet.
            error(ErrorKind::ResourceNotFound, "ResourceNotFoundException"),
            // The grant's poll: created; its undo's delete.
            status(OperationStatus::Succeeded, None),
            status(OperationStatus::Succeeded, None),
            // The delivery again: its undo's delete, then its one more submit.
            status(OperationStatus::Failed, Some("Internal failure")),
            status(
                OperationStatus::Failed,
                Some("EntitlementItem doesn't exist"),
            ),
        ],
        config(&[]),
    );
    let grant = decision_at("create", "GRANT-G", "2026-11-29T10:00:01Z");
    let revoke = decision_at("delete", "REVOKE-R", "2026-11-29T10:00:02Z");
    invoke(&worker, redelivered_event(&grant, "m-grant", 1)).await;
    invoke(&worker, record_event(&revoke, "m-revoke", 1)).await;
    deliver_stored_steps(&worker, 0).await;
    let grant_outcomes = |worker: &TestWorker| -> Vec<Value> {
        outcome_events(worker)
            .into_iter()
            .filter(|event| event["correlationId"] == "GRANT-G")
            .map(|event| event["outcome"].clone())
            .collect()
    };
    assert_eq!(grant_outcomes(&worker), ["superseded"], "the first chain's");
    let before = worker.queues.sent_to(&worker.config.work_queue).len();
    invoke(&worker, redelivered_event(&grant, "m-grant", 2)).await;
    deliver_stored_steps(&worker, before).await;

    assert_eq!(dead_letters(&worker, "ErrorClass"), Vec::<String>::new());
    let deletes = calls_where(&worker, |call| matches!(call, Call::Delete { .. }));
    assert_eq!(deletes, 4, "{:?}", worker.identity_center.calls());
    assert_eq!(grant_outcomes(&worker), ["superseded", "superseded"]);
}

/// The same for an expiry's delete: the access must end at `notAfter`, and one fault
/// of Identity Center's is not yet a reason to leave it in place.
#[tokio::test]
async fn an_expiry_whose_delete_fails_is_submitted_once_more() {
    let worker = worker(
        vec![
            // The grant's create.
            status(OperationStatus::Succeeded, None),
            // The expiry's delete, then its one more submit.
            status(OperationStatus::Failed, Some("Internal failure")),
            status(OperationStatus::Succeeded, None),
        ],
        config(&[]),
    );
    let grant = assignment_request("create", "TEMP-F", &[("notAfter", "2099-01-01T00:00:00Z")]);
    let expiry = due_expiry(&worker, &grant).await;
    let before = worker.queues.sent_to(&worker.config.work_queue).len();
    invoke(
        &worker,
        record_event(&expiry, "m-expiry", 1_764_496_900_000),
    )
    .await;
    deliver_stored_steps(&worker, before).await;

    assert_eq!(dead_letters(&worker, "ErrorClass"), Vec::<String>::new());
    let deletes = calls_where(&worker, |call| matches!(call, Call::Delete { .. }));
    assert_eq!(deletes, 2, "{:?}", worker.identity_center.calls());
    let last = outcome_events(&worker).pop().expect("the expiry's outcome");
    assert_eq!(last["trigger"], "expiry");
    assert_eq!(last["outcome"], "succeeded");
}

/// A revoke the worker owes that fails again on its one more submit is dead-lettered:
/// once more, not a loop. The dead letter's body (the expiry's own step, SPEC §4) is an
/// operator's redrive once the cause is fixed, and that starts afresh: its first FAILED
/// is asked once more too.
#[tokio::test]
async fn an_expiry_whose_delete_fails_twice_is_dead_lettered_and_its_redrive_starts_afresh() {
    let worker = owed_revoke_failing_twice_then_fixed(status(OperationStatus::Succeeded, None));
    let grant = assignment_request("create", "TEMP-F2", &[("notAfter", "2099-01-01T00:00:00Z")]);
    let expiry = due_expiry(&worker, &grant).await;
    let restart = dead_lettered_twice_then_redriven(&worker, &expiry).await;

    assert_eq!(restart["progress"]["step"], "expire-wait", "{restart}");
    let last = outcome_events(&worker)
        .pop()
        .expect("the redrive's outcome");
    assert_eq!(last["trigger"], "expiry");
    assert_eq!(last["outcome"], "succeeded");
}

/// A worker whose Identity Center answers `first` (the call that sets the step up),
/// then fails a revoke the worker owes twice, then, on its redrive, once more before it
/// succeeds.
fn owed_revoke_failing_twice_then_fixed(first: CallResult) -> TestWorker {
    worker(
        vec![
            first,
            status(OperationStatus::Failed, Some("Internal failure")),
            status(OperationStatus::Failed, Some("Internal failure, again")),
            // The redrive's delete, then its one more submit.
            status(
                OperationStatus::Failed,
                Some("Internal failure, once fixed"),
            ),
            status(OperationStatus::Succeeded, None),
        ],
        config(&[]),
    )
}

/// Delivers `step` (a revoke the worker owes) of [`owed_revoke_failing_twice_then_fixed`]
/// and what it stores: dead-lettered `failed` with the second reason after two deletes.
/// Then redrives the dead letter: its first FAILED is asked once more, and it ends with
/// no second dead letter after two more deletes. Returns the dead letter's body.
async fn dead_lettered_twice_then_redriven(worker: &TestWorker, step: &str) -> Value {
    let calls = worker.identity_center.calls().len();
    let before = worker.queues.sent_to(&worker.config.work_queue).len();
    invoke(worker, record_event(step, "m-owed", 1_764_496_900_000)).await;
    deliver_stored_steps(worker, before).await;
    assert_eq!(dead_letters(worker, "ErrorClass"), ["failed"]);
    assert_eq!(
        dead_letters(worker, "ErrorMessage"),
        ["Internal failure, again"]
    );
    assert_eq!(worker.identity_center.calls().len(), calls + 2);

    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    let before = worker.queues.sent_to(&worker.config.work_queue).len();
    invoke(
        worker,
        record_event(&dead[0].body, "m-redrive", 1_764_497_000_000),
    )
    .await;
    deliver_stored_steps(worker, before).await;
    assert_eq!(dead_letters(worker, "ErrorClass"), ["failed"]);
    assert_eq!(worker.identity_center.calls().len(), calls + 4);
    body_json(&dead[0])
}

/// An undo FAILED while an earlier submit of it may have landed, and was submitted once
/// more; before that submit a still later decision is recorded, and the undo's fence
/// turns it around. The new operation has no FAILED of its own yet: its first FAILED is
/// asked once more too, not taken as the other operation's second. Both ways: a create
/// (restoring a later grant) turned into a delete behind a still later revoke, and a
/// delete turned into a create behind a still later grant.
#[tokio::test]
async fn an_undo_turned_around_asks_its_own_once_more() {
    for (before, after, intent) in [
        ("create", "delete", Intent::Revoke),
        ("delete", "create", Intent::Grant),
    ] {
        let settled = if after == "delete" {
            status(
                OperationStatus::Failed,
                Some("EntitlementItem doesn't exist"),
            )
        } else {
            status(OperationStatus::Succeeded, None)
        };
        let worker = worker(
            vec![
                status(OperationStatus::Failed, Some("Internal failure")),
                settled,
            ],
            config(&[]),
        );
        let request = decision_at("delete", "OLD", "2026-11-29T10:00:00Z");
        // The undo at its one more submit of `before`, as the worker writes it.
        let mut envelope = undo_step(&request, before);
        envelope["progress"]["maybeSubmitted"] = Value::from(true);
        envelope["progress"]["resubmittedAfterFailure"] = Value::from(true);
        let still_later = decision_of(
            intent,
            "STILL-LATER",
            time::macros::datetime!(2026-11-29 10:00:09 UTC),
        );
        record_latest(&worker, &request, &still_later).await;

        let stored = worker.queues.sent_to(&worker.config.work_queue).len();
        invoke(&worker, record_event(&envelope.to_string(), "m-undo", 1)).await;
        deliver_stored_steps(&worker, stored).await;

        let calls = worker.identity_center.calls();
        assert_eq!(calls.len(), 2, "{before} to {after}: {calls:?}");
        assert!(
            calls.iter().all(|call| match after {
                "delete" => matches!(call, Call::Delete { .. }),
                _ => matches!(call, Call::Create { .. }),
            }),
            "{before} to {after}: {calls:?}"
        );
        assert_eq!(
            dead_letters(&worker, "ErrorClass"),
            Vec::<String>::new(),
            "{before} to {after}"
        );
    }
}

/// An undo's delete that FAILED twice is dead-lettered with its own step as the body;
/// redriven once the cause is fixed, that step starts afresh, its first FAILED asked
/// once more too.
#[tokio::test]
async fn an_undo_dead_lettered_after_two_failures_is_redriven_afresh() {
    // First the later revoke's delete.
    let worker = owed_revoke_failing_twice_then_fixed(status(OperationStatus::Succeeded, None));
    let grant = decision_at("create", "OLD-GRANT", "2026-11-29T10:00:00Z");
    // The undo of that grant, as the worker writes it, behind a later revoke.
    let envelope = undo_step(&grant, "delete");
    invoke(
        &worker,
        record_event(
            &decision_at("delete", "LATER", "2026-11-29T10:00:05Z"),
            "m-later",
            1,
        ),
    )
    .await;
    let restart = dead_lettered_twice_then_redriven(&worker, &envelope.to_string()).await;

    assert_eq!(
        (
            &restart["progress"]["purpose"],
            &restart["progress"]["step"]
        ),
        (&Value::from("undo"), &Value::from("submit")),
        "{restart}"
    );
}

/// The undo step of `request` at its submit of `operation`, as the worker writes it:
/// first received at 10:00:01, restoring the decision `LATER` of 10:00:05.
fn undo_step(request: &str, operation: &str) -> Value {
    serde_json::json!({
        "request": body_json_text(request),
        "progress": {
            "step": "submit", "operation": operation, "purpose": "undo", "attempt": 1,
            "firstReceivedAt": "2026-11-29T10:00:01Z", "requestedAt": "2026-11-29T10:00:00Z",
            "firstMessageId": "m-1",
            "supersededBy": {"correlationId": "LATER", "requestedAt": "2026-11-29T10:00:05Z"}
        }
    })
}

/// A decision with no `notAfter`, first delivered as message `m-<correlation id>`.
fn decision_of(
    intent: Intent,
    correlation_id: &str,
    requested_at: time::OffsetDateTime,
) -> assignment_worker::ledger::AccessDecision {
    assignment_worker::ledger::AccessDecision {
        order: assignment_worker::ledger::DecisionOrder {
            requested_at,
            intent,
            correlation_id: Some(correlation_id.to_owned()),
            first_message_id: format!("m-{correlation_id}"),
        },
        not_after: None,
    }
}

/// Claims `decision` in the ledger as the latest about `request`'s assignment, as
/// another delivery would have, with no call made here.
async fn record_latest(
    worker: &TestWorker,
    request: &str,
    decision: &assignment_worker::ledger::AccessDecision,
) {
    let parsed = assignment_worker::request::parse_request(request).expect("valid");
    let (_, assignment) = parsed.assignment().expect("an assignment");
    assignment_worker::ledger::Ledger::claim(
        &worker.ledger,
        &assignment_worker::ledger::LedgerKey::assignment(assignment),
        decision,
        assignment_worker::ledger::RecordedState::Pending,
        time::OffsetDateTime::now_utc(),
    )
    .await
    .expect("claimed");
}

/// The reverse of `an_undo_that_turns_into_a_grant_still_meets_the_guardrails`: an
/// undo written to create (restoring a later grant) whose fence finds a still later
/// revoke turns into a delete, which the guardrails allow. Judged by the operation
/// written in its envelope, it was refused as a grant of a protected permission set,
/// and the access the latest decision removes stayed.
#[tokio::test]
async fn an_undo_that_turns_into_a_revoke_is_not_refused_as_the_grant_it_was() {
    let protected = "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b";
    let worker = worker(
        vec![status(OperationStatus::Succeeded, None)],
        config(&[("PROTECTED_PERMISSION_SET_ARNS", protected)]),
    );
    let request = decision_at("delete", "OLD", "2026-11-29T10:00:00Z");
    let envelope = undo_step(&request, "create");
    let still_later = decision_of(
        Intent::Revoke,
        "STILL-LATER",
        time::macros::datetime!(2026-11-29 10:00:09 UTC),
    );
    record_latest(&worker, &request, &still_later).await;

    invoke(&worker, record_event(&envelope.to_string(), "m-undo", 1)).await;

    assert_eq!(dead_letters(&worker, "ErrorCode"), Vec::<String>::new());
    assert_eq!(
        worker.identity_center.calls().len(),
        1,
        "{:?}",
        worker.identity_center.calls()
    );
    assert!(matches!(
        worker.identity_center.calls()[0],
        Call::Delete { .. }
    ));
}

/// Delivers every step the worker stores on the work queue from the `from`-th on, in
/// order, including the ones those deliveries store, until a chain stores none.
async fn deliver_stored_steps(worker: &TestWorker, from: usize) {
    let mut next = from;
    while let Some(step) = worker
        .queues
        .sent_to(&worker.config.work_queue)
        .get(next)
        .cloned()
    {
        assert!(next < from + 20, "a chain that does not end");
        let id = format!("m-next-{next}");
        invoke(worker, record_event(&step.body, &id, 1_764_496_900_000)).await;
        next += 1;
    }
}

/// A worker whose Identity Center makes a create, refuses the next create
/// (AccessDenied), then makes a delete.
fn grant_refused_then_revoke() -> TestWorker {
    worker(
        vec![
            status(OperationStatus::Succeeded, None),
            error(ErrorKind::AccessDenied, "AccessDeniedException"),
            status(OperationStatus::Succeeded, None),
        ],
        config(&[]),
    )
}

/// The same grant sent twice: the second delivery's message id sorts above the first's,
/// and its create is refused. It must not take the decision over from the first
/// delivery in the ledger: the first delivery's expiry would then find "a later
/// decision" and leave the access it granted in place for good.
#[tokio::test]
async fn a_second_delivery_under_a_higher_message_id_leaves_the_first_ones_expiry_in_force() {
    let worker = grant_refused_then_revoke();
    let grant = timed_grant_at("TEMP-TWICE", "2026-11-29T10:00:00Z");
    let expiry = due_expiry(&worker, &grant).await;
    invoke(&worker, record_event(&grant, "m-zzz", 1_764_496_800_001)).await;
    invoke(
        &worker,
        record_event(&expiry, "m-expiry", 1_764_496_900_000),
    )
    .await;

    let deletes = calls_where(&worker, |call| matches!(call, Call::Delete { .. }));
    assert_eq!(
        deletes,
        1,
        "the expiry's: {:?}",
        worker.identity_center.calls()
    );
}

/// A later grant with notAfter claimed and failed; then an earlier revoke is delivered a
/// second time. Its first delivery may have claimed and deleted before the grant came
/// (and stopped before storing what followed), so the later grant's state is restored:
/// the latest decision asks for the access. A restored-expiry step then waits to end it
/// at the grant's notAfter, since the failed grant's own success will never schedule an
/// expiry.
#[tokio::test]
async fn an_earlier_revoke_redelivered_after_a_later_grant_failed_restores_it_until_its_end() {
    let worker = worker(
        vec![
            status(OperationStatus::Failed, Some("Internal failure")),
            status(OperationStatus::Succeeded, None),
        ],
        config(&[]),
    );
    let grant = assignment_request(
        "create",
        "GRANT-LATER",
        &[
            ("requestedAt", "2026-11-29T10:00:02Z"),
            ("notAfter", "2099-01-01T00:00:00Z"),
        ],
    );
    let revoke = decision_at("delete", "REVOKE-EARLIER", "2026-11-29T10:00:01Z");
    invoke(&worker, record_event(&grant, "m-grant", 1)).await;
    let stored = worker.queues.sent_to(&worker.config.work_queue).len();
    invoke(&worker, redelivered_event(&revoke, "m-revoke", 2)).await;
    // The undo, then the restored-expiry step's first read; its wait is not replayed.
    for n in 0..2 {
        let work = worker.queues.sent_to(&worker.config.work_queue);
        let next = work.get(stored + n).expect("a step").body.clone();
        invoke(&worker, record_event(&next, &format!("m-next-{n}"), 2)).await;
    }

    let creates = calls_where(&worker, |call| matches!(call, Call::Create { .. }));
    assert_eq!(
        creates,
        2,
        "the grant's own and the undo's: {:?}",
        worker.identity_center.calls()
    );
    assert_eq!(
        outcome_of(&worker, "REVOKE-EARLIER")["outcome"],
        "superseded"
    );
    let work = worker.queues.sent_to(&worker.config.work_queue);
    let wait = body_json(work.last().expect("the wait"));
    assert_eq!(wait["progress"]["purpose"], "restored-expiry");
    assert_eq!(wait["progress"]["step"], "expire-wait");
    assert_eq!(work.last().map(|m| m.delay_seconds), Some(900));
}

/// A later grant that would extend the access to a later end is dead-lettered before
/// any call could take effect, so it has no expiry of its own. At the first grant's
/// end the expiry waits for the later end rather than give up, and then revokes.
#[tokio::test]
async fn an_expiry_overtaken_by_a_later_grant_that_failed_revokes_at_its_end() {
    let worker = grant_refused_then_revoke();
    let first = timed_grant_at("TEMP-FIRST", "2026-11-29T09:00:00Z");
    let expiry = due_expiry(&worker, &first).await;
    // Far enough for the first expiry delivery below to come well before it.
    let later_end = time::OffsetDateTime::now_utc() + time::Duration::seconds(6);
    let later = assignment_request(
        "create",
        "TEMP-LATER",
        &[
            ("notAfter", &assignment_worker::messages::rfc3339(later_end)),
            ("requestedAt", "2026-11-29T10:00:00Z"),
        ],
    );
    invoke(&worker, record_event(&later, "m-later", 1_764_496_800_001)).await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1, "the later grant is dead-lettered");

    // At the first grant's end: the later grant still asks for the access.
    let stored = worker.queues.sent_to(&worker.config.work_queue).len();
    invoke(
        &worker,
        record_event(&expiry, "m-expiry", 1_764_496_900_000),
    )
    .await;
    assert!(
        time::OffsetDateTime::now_utc() < later_end,
        "the set-up outran the later grant's end"
    );
    let deletes = || calls_where(&worker, |call| matches!(call, Call::Delete { .. }));
    assert_eq!(deletes(), 0, "{:?}", worker.identity_center.calls());
    let work = worker.queues.sent_to(&worker.config.work_queue);
    assert_eq!(work.len(), stored + 1, "the expiry waits on");
    let wait = work.last().expect("the wait");
    assert_eq!(body_json(wait)["progress"]["step"], "expire-wait");
    assert!(
        (1..=7).contains(&wait.delay_seconds),
        "{}",
        wait.delay_seconds
    );

    // At the later end: revoked.
    let remaining = later_end - time::OffsetDateTime::now_utc();
    if remaining.is_positive() {
        tokio::time::sleep(remaining.unsigned_abs()).await;
    }
    invoke(
        &worker,
        record_event(&wait.body, "m-expiry-2", 1_764_496_900_001),
    )
    .await;
    assert_eq!(deletes(), 1, "{:?}", worker.identity_center.calls());
    let expired = outcome_events(&worker)
        .into_iter()
        .filter(|e| e["correlationId"] == "TEMP-FIRST" && e["trigger"] == "expiry")
        .map(|e| e["outcome"].clone())
        .collect::<Vec<_>>();
    assert_eq!(expired, ["succeeded"]);
}

/// Replays, in order, every step stored on the work queue from index `from` on, and
/// then the steps those store, until none is left. A wait for a `notAfter` is delivered
/// after its delay, as SQS would; polls and retries at once.
async fn replay_work_from(worker: &TestWorker, from: usize) {
    replay_work_without(worker, from, None).await;
}

/// [`replay_work_from`], leaving out the steps of purpose `dropped`.
async fn replay_work_without(worker: &TestWorker, mut from: usize, dropped: Option<&str>) {
    loop {
        let work = worker.queues.sent_to(&worker.config.work_queue);
        let Some(next) = work.get(from) else {
            return;
        };
        let step = body_json(next);
        if dropped.is_some_and(|purpose| step["progress"]["purpose"] == purpose) {
            from += 1;
            continue;
        }
        if step["progress"]["step"] == "expire-wait" {
            let delay = std::time::Duration::from_secs(u64::from(next.delay_seconds));
            tokio::time::sleep(delay).await;
        }
        invoke(
            worker,
            record_event(&next.body, &format!("m-step-{from}"), 1_764_497_000_000),
        )
        .await;
        from += 1;
    }
}

/// The revoke, the later grant (its create refused) and the undo of the revoke as in
/// the test above, with the undo's create answered by nothing but timeouts: it is
/// dead-lettered with its attempts spent, and may have landed all the same. The access
/// it may have restored must still end at the grant's notAfter.
#[tokio::test]
async fn an_undo_dead_lettered_after_its_create_may_have_landed_still_ends_the_access() {
    let worker = worker(
        vec![
            status(OperationStatus::InProgress, None),
            error(ErrorKind::AccessDenied, "AccessDeniedException"),
            status(OperationStatus::Succeeded, None),
            // The undo's create: no answer, its one attempt spent.
            error(ErrorKind::Timeout, "Timeout"),
            status(OperationStatus::Succeeded, None),
        ],
        config(&[("MAX_ATTEMPTS", "1")]),
    );
    let later_end = undone_revoke_behind_a_refused_grant(&worker).await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    let classes: Vec<_> = dead.iter().map(|d| d.attribute("ErrorClass")).collect();
    assert_eq!(classes, [Some("permanent"), Some("exhausted")]);
    assert_access_ends_removed(&worker);
    assert!(time::OffsetDateTime::now_utc() >= later_end);
}

/// A revoke (earlier) whose delete is confirmed after a later grant with a notAfter 6 s
/// ahead claimed and had its create refused; then every step stored from the revoke's
/// poll on, waits included, but for the grant's own expiry (scheduled with its dead
/// letter): the undo's chain must end the access by itself, as it must for a grant that
/// has none (a dead letter that schedules none, its step purged from the queue). The
/// later grant's end.
async fn undone_revoke_behind_a_refused_grant(worker: &TestWorker) -> time::OffsetDateTime {
    let revoke = decision_at("delete", "REVOKE-FIRST", "2026-11-29T09:00:00Z");
    // Far enough for the undo to come well before it.
    let later_end = time::OffsetDateTime::now_utc() + time::Duration::seconds(6);
    let grant = assignment_request(
        "create",
        "TEMP-LATER",
        &[
            ("notAfter", &assignment_worker::messages::rfc3339(later_end)),
            ("requestedAt", "2026-11-29T10:00:00Z"),
        ],
    );
    invoke(worker, record_event(&revoke, "m-revoke", 1_764_496_800_000)).await;
    let poll = worker.queues.sent_to(&worker.config.work_queue).len() - 1;
    invoke(worker, record_event(&grant, "m-grant", 1_764_496_800_001)).await;
    assert!(
        time::OffsetDateTime::now_utc() < later_end,
        "the set-up outran the later grant's end"
    );
    replay_work_without(worker, poll, Some("expiry")).await;
    later_end
}

/// An earlier revoke's delete lands after a later grant with notAfter claimed; the
/// grant's create is refused. The revoke's confirmation finds the grant as the latest
/// decision and restores its access (an undo). That access must end at the grant's
/// notAfter, by the undo's own chain when nothing else would remove it.
#[tokio::test]
async fn access_an_undo_restores_for_a_later_grant_that_failed_ends_at_its_not_after() {
    let worker = worker(
        vec![
            // The revoke's delete: submitted.
            status(OperationStatus::InProgress, None),
            // The later grant's create: refused.
            error(ErrorKind::AccessDenied, "AccessDeniedException"),
            // The revoke's poll: deleted.
            status(OperationStatus::Succeeded, None),
            // The undo's create, and the delete at the grant's end.
            status(OperationStatus::Succeeded, None),
            status(OperationStatus::Succeeded, None),
        ],
        config(&[]),
    );
    let later_end = undone_revoke_behind_a_refused_grant(&worker).await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1, "the later grant is dead-lettered");

    let creates = calls_where(&worker, |call| matches!(call, Call::Create { .. }));
    let deletes = calls_where(&worker, |call| matches!(call, Call::Delete { .. }));
    let calls = worker.identity_center.calls();
    assert_eq!(creates, 2, "the grant's own and the undo's: {calls:?}");
    assert_eq!(
        deletes, 2,
        "the revoke's and the one at notAfter: {calls:?}"
    );
    assert_access_ends_removed(&worker);
    assert!(time::OffsetDateTime::now_utc() >= later_end);
    let revoke_events = outcome_events(&worker)
        .into_iter()
        .filter(|e| e["correlationId"] == "REVOKE-FIRST")
        .map(|e| e["outcome"].clone())
        .collect::<Vec<_>>();
    assert_eq!(revoke_events, ["superseded"], "one outcome for the revoke");
}

/// A grant that comes after its own `notAfter` is not carried out (`expired`), but it is
/// still the latest decision, and it asks for no access: access an earlier grant gave
/// must end, as it would have at `notAfter` had the grant come in time (its expiry
/// revokes whatever gave the access).
#[tokio::test]
async fn a_grant_expired_on_arrival_still_ends_an_earlier_grants_access() {
    let worker = worker(
        vec![
            // The earlier grant's create, and the revoke that ends it.
            status(OperationStatus::Succeeded, None),
            status(OperationStatus::Succeeded, None),
        ],
        config(&[]),
    );
    let standing = decision_at("create", "GRANT-STANDING", "2026-11-29T09:00:00Z");
    let late = assignment_request(
        "create",
        "TEMP-LATE",
        &[
            ("requestedAt", "2026-11-29T10:00:00Z"),
            ("notAfter", "2026-11-29T11:00:00Z"),
        ],
    );
    invoke(
        &worker,
        record_event(&standing, "m-standing", 1_764_496_800_000),
    )
    .await;
    let stored = worker.queues.sent_to(&worker.config.work_queue).len();
    invoke(&worker, record_event(&late, "m-late", 1_764_496_800_001)).await;
    replay_work_from(&worker, stored).await;

    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1, "the late grant is not carried out");
    let class = dead[0]
        .attributes
        .iter()
        .find(|(name, _)| *name == "ErrorClass")
        .map(|(_, value)| value.as_str());
    assert_eq!(class, Some("expired"));
    assert_access_ends_removed(&worker);
    let expiry = outcome_events(&worker)
        .into_iter()
        .filter(|e| e["correlationId"] == "TEMP-LATE" && e["trigger"] == "expiry")
        .map(|e| e["outcome"].clone())
        .collect::<Vec<_>>();
    assert_eq!(expiry, ["succeeded"]);
}

/// A grant that would come after a later revoke and after its own `notAfter` is simply
/// superseded: the revoke stands, and nothing is dead-lettered.
#[tokio::test]
async fn a_grant_expired_on_arrival_behind_a_later_decision_is_superseded() {
    let worker = worker(
        vec![error(
            ErrorKind::ResourceNotFound,
            "ResourceNotFoundException",
        )],
        config(&[]),
    );
    let revoke = decision_at("delete", "REVOKE-LATER", "2026-11-29T10:00:00Z");
    let late = assignment_request(
        "create",
        "TEMP-EARLIER",
        &[
            ("requestedAt", "2026-11-29T09:00:00Z"),
            ("notAfter", "2026-11-29T11:00:00Z"),
        ],
    );
    invoke(
        &worker,
        record_event(&revoke, "m-revoke", 1_764_496_800_000),
    )
    .await;
    invoke(&worker, record_event(&late, "m-late", 1_764_496_800_001)).await;

    assert!(
        worker
            .queues
            .sent_to(&worker.config.dead_letter_queue)
            .is_empty()
    );
    assert_eq!(outcome_of(&worker, "TEMP-EARLIER")["outcome"], "superseded");
    assert_eq!(worker.identity_center.calls().len(), 1, "the revoke's only");
}

/// A grant with notAfter claims and is refused: it is the latest decision, and it asks
/// for access only until notAfter. Access an earlier grant gave stands meanwhile, and
/// must end there, as it would have had the grant succeeded (its expiry revokes whatever
/// gave the access).
#[tokio::test]
async fn a_refused_grant_with_not_after_still_ends_an_earlier_grants_access_there() {
    let worker = worker(
        vec![
            status(OperationStatus::Succeeded, None),
            error(ErrorKind::AccessDenied, "AccessDeniedException"),
            status(OperationStatus::Succeeded, None),
        ],
        config(&[]),
    );
    let standing = decision_at("create", "GRANT-STANDING", "2026-11-29T09:00:00Z");
    let end = time::OffsetDateTime::now_utc() + time::Duration::seconds(5);
    let refused = assignment_request(
        "create",
        "TEMP-REFUSED",
        &[
            ("requestedAt", "2026-11-29T10:00:00Z"),
            ("notAfter", &assignment_worker::messages::rfc3339(end)),
        ],
    );
    invoke(
        &worker,
        record_event(&standing, "m-standing", 1_764_496_800_000),
    )
    .await;
    let stored = worker.queues.sent_to(&worker.config.work_queue).len();
    invoke(
        &worker,
        record_event(&refused, "m-refused", 1_764_496_800_001),
    )
    .await;
    assert!(
        time::OffsetDateTime::now_utc() < end,
        "the set-up outran the refused grant's end"
    );
    assert_eq!(
        worker
            .queues
            .sent_to(&worker.config.dead_letter_queue)
            .len(),
        1
    );
    replay_work_from(&worker, stored).await;

    assert_access_ends_removed(&worker);
    assert!(time::OffsetDateTime::now_utc() >= end);
}

/// An expiry whose wait step SQS delivered twice may have made its delete; a later
/// revoke came meanwhile, so the expiry restores the revoke's state (an undo). The
/// outcome it ends with is still the expiry's: `trigger` `expiry`, `action` `delete`,
/// `superseded`, not one that reads as the grant's own.
#[tokio::test]
async fn an_expiry_that_ends_in_an_undo_still_reports_as_the_expiry() {
    let worker = worker(
        vec![
            // The grant's create, the later revoke's delete, the undo's delete.
            status(OperationStatus::Succeeded, None),
            status(OperationStatus::Succeeded, None),
            error(ErrorKind::ResourceNotFound, "ResourceNotFoundException"),
        ],
        config(&[]),
    );
    let grant = timed_grant_at("TEMP-UNDONE", "2026-11-29T09:00:00Z");
    let expiry = due_expiry(&worker, &grant).await;
    let revoke = decision_at("delete", "REVOKE-LATER", "2026-11-29T10:00:00Z");
    invoke(
        &worker,
        record_event(&revoke, "m-revoke", 1_764_496_800_001),
    )
    .await;
    let stored = worker.queues.sent_to(&worker.config.work_queue).len();
    invoke(&worker, redelivered_event(&expiry, "m-expiry", 2)).await;
    replay_work_from(&worker, stored).await;

    let events: Vec<Value> = outcome_events(&worker)
        .into_iter()
        .filter(|e| e["correlationId"] == "TEMP-UNDONE")
        .collect();
    assert_eq!(events.len(), 2, "the grant's and its expiry's: {events:#?}");
    let last = &events[1];
    assert_eq!(last["outcome"], "superseded");
    assert_eq!(last["trigger"], "expiry");
    assert_eq!(last["action"], "delete");
}

/// The late grant of these tests: requested 2026-11-29T10:00:00Z, `notAfter` 11:00.
fn late_grant(correlation_id: &str) -> String {
    assignment_request(
        "create",
        correlation_id,
        &[
            ("requestedAt", "2026-11-29T10:00:00Z"),
            ("notAfter", "2026-11-29T11:00:00Z"),
        ],
    )
}

/// Records in the ledger the claim an earlier attempt or delivery of `late_grant` made
/// (under its first message id), in `state`; returns the ledger key.
async fn claim_of_an_earlier_delivery(
    worker: &TestWorker,
    correlation_id: &str,
    first_message_id: &str,
    state: assignment_worker::ledger::RecordedState,
) -> assignment_worker::ledger::LedgerKey {
    use assignment_worker::ledger::{AccessDecision, Ledger, LedgerKey};
    let body = late_grant(correlation_id);
    let parsed = assignment_worker::request::parse_request(&body).expect("valid");
    let key = LedgerKey::of(parsed.target().1);
    let stamp = assignment_worker::progress::DecisionStamp {
        requested_at: time::macros::datetime!(2026-11-29 10:00:00 UTC),
        first_message_id: first_message_id.to_owned(),
    };
    let decision = AccessDecision::of_request(&parsed, &stamp);
    worker
        .ledger
        .claim(
            &key,
            &decision,
            state,
            time::macros::datetime!(2026-11-29 10:00:01 UTC),
        )
        .await
        .expect("claimed");
    key
}

fn delivered_again(body: &str, message_id: &str, sent_ms: u64) -> SqsEvent {
    let mut event = record_event(body, message_id, sent_ms);
    event.records[0]
        .attributes
        .insert("ApproximateReceiveCount".to_owned(), "2".to_owned());
    event
}

fn assert_refused_as_expired_without_a_create(worker: &TestWorker) {
    let creates = calls_where(worker, |call| matches!(call, Call::Create { .. }));
    assert_eq!(creates, 0, "{:?}", worker.identity_center.calls());
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert!(!dead.is_empty());
    assert!(
        dead.iter()
            .all(|d| d.attribute("ErrorClass") == Some("expired")),
        "{dead:?}"
    );
}

/// No delivery of a record sent after its notAfter can have submitted the grant, so a
/// redelivery is refused again rather than carried on as one that may have been
/// submitted, whatever claim of its own the ledger holds (the chaos run's CHAOS-0315:
/// created, then revoked by its expiry). Here the ledger holds a `pending` one.
#[tokio::test]
async fn a_grant_sent_after_its_not_after_is_never_carried_on_by_a_redelivery() {
    let worker = worker(vec![], config(&[]));
    claim_of_an_earlier_delivery(&worker, "TEMP-SENT-LATE", "m-late", RecordedState::Pending).await;
    // Sent a day after its notAfter (2026-11-30T11:00:00Z).
    let body = late_grant("TEMP-SENT-LATE");
    invoke(&worker, delivered_again(&body, "m-late", 1_796_036_400_000)).await;
    assert_refused_as_expired_without_a_create(&worker);
}

/// A record sent in time but first delivered after its notAfter is refused as
/// `expired`, and its claim records `absent` in the same write: the ledger's next write
/// fails here, as a separate mark after the claim would have, and the redelivery still
/// finds the claim settled rather than reading a `pending` one as a create its first
/// delivery may have made.
#[tokio::test]
async fn a_grant_first_delivered_after_its_not_after_is_claimed_absent_in_one_write() {
    let worker = Worker {
        service_catalog: catalog(),
        ledger: MemoryLedger::with_faults([false, true]),
        identity_center: ScriptedIdentityCenter::new(vec![]),
        queues: RecordingQueues::default(),
        config: config(&[]),
    };
    let body = late_grant("TEMP-DELIVERED-LATE");
    // Sent half an hour before its notAfter.
    let sent_ms = 1_795_948_200_000;
    invoke(&worker, record_event(&body, "m-late", sent_ms)).await;
    worker.ledger.set_faults([]);
    invoke(&worker, delivered_again(&body, "m-late", sent_ms)).await;

    assert_refused_as_expired_without_a_create(&worker);
    let items = worker.ledger.items();
    assert_eq!(
        items.iter().map(|item| item.state).collect::<Vec<_>>(),
        [assignment_worker::ledger::RecordedState::Absent]
    );
}

/// A grant's first attempt claimed it (`pending`) and was throttled before notAfter; its
/// retry comes due after notAfter and is refused as `expired`. Claiming again must still
/// settle the claim `absent`: SQS may deliver the retry again, and a `pending` claim of
/// its own reads as a create an earlier delivery may have made (a create after notAfter).
#[tokio::test]
async fn a_retry_refused_as_expired_settles_the_claim_its_first_attempt_made() {
    let worker = worker(vec![], config(&[]));
    let key =
        claim_of_an_earlier_delivery(&worker, "TEMP-RETRIED", "m-1", RecordedState::Pending).await;
    let retry = serde_json::json!({
        "request": serde_json::from_str::<Value>(&late_grant("TEMP-RETRIED")).expect("JSON"),
        "progress": {
            "step": "submit", "operation": "create", "attempt": 2,
            "firstReceivedAt": "2026-11-29T10:00:01Z", "requestedAt": "2026-11-29T10:00:00Z",
            "firstMessageId": "m-1"
        }
    })
    .to_string();
    // The retry was sent after the throttle, before notAfter.
    let sent_ms = 1_795_946_405_000;
    invoke(&worker, record_event(&retry, "m-retry", sent_ms)).await;
    invoke(&worker, delivered_again(&retry, "m-retry", sent_ms)).await;

    assert_refused_as_expired_without_a_create(&worker);
    assert_eq!(
        worker.ledger.item(&key).map(|item| item.state),
        Some(assignment_worker::ledger::RecordedState::Absent)
    );
}

/// Another delivery of the same grant (an upstream's re-send under a new message id,
/// here a greater one) was refused as `expired` and recorded `absent`. A redelivery of
/// this record reads that claim as its own decision's, settled, not as a later decision
/// that may have come after a claim of its own: it is refused alike, with no create
/// after notAfter.
#[tokio::test]
async fn a_redelivered_grant_whose_other_delivery_was_refused_as_expired_is_refused_alike() {
    let worker = worker(vec![], config(&[]));
    let body = late_grant("TEMP-SENT-TWICE");
    claim_of_an_earlier_delivery(&worker, "TEMP-SENT-TWICE", "m-z", RecordedState::Absent).await;
    // Sent half an hour before its notAfter, delivered a second time.
    invoke(&worker, delivered_again(&body, "m-a", 1_795_948_200_000)).await;
    assert_refused_as_expired_without_a_create(&worker);
}

/// Records in `worker`'s ledger a decision about `request`'s assignment made at
/// 10:00:05, after the requests of the tests below, in `state`.
async fn record_later_decision(
    worker: &TestWorker,
    request: &str,
    intent: Intent,
    state: RecordedState,
) {
    record_later_decision_in(&worker.ledger, request, intent, None, state).await;
}

/// A decision LATER made at 10:00:05, after the requests of the tests below.
fn later_decision(intent: Intent, not_after: Option<time::OffsetDateTime>) -> AccessDecision {
    AccessDecision {
        order: DecisionOrder {
            requested_at: time::macros::datetime!(2026-11-29 10:00:05 UTC),
            intent,
            correlation_id: Some("LATER".to_owned()),
            first_message_id: "m-later".to_owned(),
        },
        not_after,
    }
}

/// [`record_later_decision`] in `ledger`, ending at `not_after`; a `pending` one is only
/// claimed.
async fn record_later_decision_in(
    ledger: &impl Ledger,
    request: &str,
    intent: Intent,
    not_after: Option<time::OffsetDateTime>,
    state: RecordedState,
) {
    let parsed = assignment_worker::request::parse_request(request).expect("valid");
    let (_, assignment) = parsed.assignment().expect("an assignment");
    let key = LedgerKey::assignment(assignment);
    let later = later_decision(intent, not_after);
    let now = time::OffsetDateTime::now_utc();
    ledger
        .claim(&key, &later, RecordedState::Pending, now)
        .await
        .expect("claimed");
    if state != RecordedState::Pending {
        ledger
            .record(&key, &later.order, state, None, now)
            .await
            .expect("recorded");
    }
}

/// A grant decided at 10:00:00, and in `worker`'s ledger a later revoke recorded
/// carried out (its delete found nothing: the grant's create had not landed).
async fn grant_behind_a_recorded_revoke(worker: &TestWorker) -> String {
    let grant = decision_at("create", "SLOW-GRANT", "2026-11-29T10:00:00Z");
    record_later_decision(worker, &grant, Intent::Revoke, RecordedState::Absent).await;
    grant
}

/// A grant decided at 10:00:00 that ends at 12:00:00, and in `worker`'s ledger a later
/// permanent grant recorded carried out.
async fn timed_grant_behind_a_recorded_grant(worker: &TestWorker) -> String {
    let grant = timed_grant_at_ten("TEMP-1");
    record_later_decision(worker, &grant, Intent::Grant, RecordedState::Present).await;
    grant
}

/// Runs the undo the grant of [`grant_behind_a_recorded_revoke`] planned: its delete is
/// made, and the grant ends `superseded`.
async fn undo_of_the_slow_grant_removes_it(worker: &TestWorker, undo: &Value) {
    assert_step(undo, "undo", "delete");
    invoke(
        worker,
        record_event(&undo.to_string(), "m-undo", 1_764_000_000_100),
    )
    .await;
    assert!(matches!(
        worker.identity_center.calls().last(),
        Some(Call::Delete { .. })
    ));
    assert_eq!(outcome_of(worker, "SLOW-GRANT")["outcome"], "superseded");
}

fn assert_step(step: &Value, purpose: &str, operation: &str) {
    assert_eq!(step["progress"]["purpose"], purpose, "{step}");
    assert_eq!(step["progress"]["operation"], operation, "{step}");
}

/// A step of `request` (decided at 10:00:00, first received two minutes ago) on its
/// last attempt of 10; a poll's operation was submitted then. `progress` adds to or
/// overrides the fields.
fn last_attempt_step(request: &str, progress: Value) -> String {
    let received_at = assignment_worker::messages::rfc3339(
        time::OffsetDateTime::now_utc() - time::Duration::minutes(2),
    );
    let mut envelope = serde_json::json!({
        "request": body_json_text(request),
        "progress": {"attempt": 10, "firstReceivedAt": received_at,
                     "requestedAt": "2026-11-29T10:00:00Z", "firstMessageId": "m-grant"},
    });
    if progress["step"] == "poll" {
        envelope["progress"]["submittedAt"] = Value::from(received_at);
    }
    for (field, value) in progress.as_object().expect("fields") {
        envelope["progress"][field] = value.clone();
    }
    envelope.to_string()
}

/// Runs `step` with the ledger's first call refused (throttled, on the step's last
/// attempt) and returns the step it plans instead of a dead letter.
async fn planned_after_a_ledger_error_on_the_last_attempt(
    worker: &TestWorker,
    step: &str,
) -> Value {
    worker.ledger.set_faults([true]);
    invoke(worker, record_event(step, "m-last", 1_764_000_000_000)).await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert!(
        dead.is_empty(),
        "dead-lettered with the change in place: {:?}",
        dead.iter()
            .map(|d| (d.attribute("ErrorClass"), d.attribute("ErrorCode")))
            .collect::<Vec<_>>()
    );
    body_json(
        worker
            .queues
            .sent_to(&worker.config.work_queue)
            .last()
            .expect("the next step"),
    )
}

/// AWS confirmed the grant's create, a later revoke is recorded carried out (its delete
/// found nothing: the create had not landed), and the write that records the grant is
/// refused on its last attempt: the create is undone toward the revoke, not left in
/// place behind a dead letter.
#[tokio::test]
async fn a_confirmed_grant_whose_record_fails_on_its_last_attempt_is_undone_toward_a_later_revoke()
{
    let worker = worker(vec![status(OperationStatus::Succeeded, None)], config(&[]));
    let grant = grant_behind_a_recorded_revoke(&worker).await;
    let poll = last_attempt_step(
        &grant,
        serde_json::json!({"step": "poll", "operation": "create",
                           "operationRequestId": REQUEST_ID, "polls": 1}),
    );
    let undo = planned_after_a_ledger_error_on_the_last_attempt(&worker, &poll).await;
    undo_of_the_slow_grant_removes_it(&worker, &undo).await;
}

/// An expiry's delete confirmed while a later permanent grant is recorded carried out,
/// and the write that records the expiry refused on its last attempt: the later grant's
/// access is created again, not left removed behind a dead letter.
#[tokio::test]
async fn a_confirmed_expiry_whose_record_fails_on_its_last_attempt_restores_a_later_grant() {
    let worker = worker(vec![status(OperationStatus::Succeeded, None)], config(&[]));
    let grant = timed_grant_behind_a_recorded_grant(&worker).await;
    let poll = last_attempt_step(
        &grant,
        serde_json::json!({"step": "poll", "operation": "delete", "purpose": "expiry",
                           "operationRequestId": REQUEST_ID, "polls": 1}),
    );
    let restore = planned_after_a_ledger_error_on_the_last_attempt(&worker, &poll).await;
    assert_step(&restore, "expiry-undo", "create");
}

/// A grant's submit delivered again after an answer that may have been lost, whose
/// claim is refused on its last attempt while a later revoke is recorded: the create
/// that may have landed is undone toward the revoke, not left behind a dead letter.
#[tokio::test]
async fn a_grant_that_may_have_landed_whose_claim_fails_on_its_last_attempt_yields_to_a_later_revoke()
 {
    let worker = worker(vec![], config(&[]));
    let grant = grant_behind_a_recorded_revoke(&worker).await;
    let submit = last_attempt_step(
        &grant,
        serde_json::json!({"step": "submit", "operation": "create", "maybeSubmitted": true}),
    );
    let undo = planned_after_a_ledger_error_on_the_last_attempt(&worker, &submit).await;
    assert_step(&undo, "undo", "delete");
    assert!(worker.identity_center.calls().is_empty());
}

/// A grant never submitted (no earlier delivery or attempt made its call) whose claim
/// the ledger refuses on its last attempt, behind a later revoke: nothing to undo, so no
/// delete, and the dead letter says the grant was not carried out.
#[tokio::test]
async fn a_grant_never_submitted_whose_claim_fails_on_its_last_attempt_undoes_nothing() {
    let worker = worker(vec![], config(&[]));
    let grant = grant_behind_a_recorded_revoke(&worker).await;
    let submit = last_attempt_step(
        &grant,
        serde_json::json!({"step": "submit", "operation": "create"}),
    );
    dead_lettered_with_no_call_after_a_ledger_error(&worker, &submit).await;
}

/// An expiry never submitted whose re-check read fails on its last attempt, behind a
/// later permanent grant: its delete was never made, so nothing restores the later
/// grant's access (a create), which is in place.
#[tokio::test]
async fn an_expiry_never_submitted_whose_read_fails_on_its_last_attempt_restores_nothing() {
    let worker = worker(vec![], config(&[]));
    let grant = timed_grant_behind_a_recorded_grant(&worker).await;
    let submit = last_attempt_step(
        &grant,
        serde_json::json!({"step": "submit", "operation": "delete", "purpose": "expiry"}),
    );
    dead_lettered_with_no_call_after_a_ledger_error(&worker, &submit).await;
}

/// Runs `step` with the ledger's first call refused on the step's last attempt: it is
/// dead-lettered `exhausted`, with no Identity Center call and no step after it.
async fn dead_lettered_with_no_call_after_a_ledger_error(worker: &TestWorker, step: &str) {
    worker.ledger.set_faults([true]);
    invoke(worker, record_event(step, "m-last", 1_764_000_000_000)).await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(
        dead.iter()
            .map(|d| d.attribute("ErrorClass"))
            .collect::<Vec<_>>(),
        [Some("exhausted")]
    );
    assert!(worker.identity_center.calls().is_empty());
    assert!(work_steps(worker).is_empty(), "{:?}", work_steps(worker));
}

/// A grant's create answered SUCCEEDED at once, a later revoke recorded meanwhile, and
/// the write that records the grant refused for good: the create is in place behind the
/// revoke, so it is undone toward it rather than dead-lettered.
#[tokio::test]
async fn a_create_answered_at_once_whose_record_is_refused_for_good_is_undone_toward_a_later_revoke()
 {
    let later = later_decision(Intent::Revoke, None);
    let ledger = ScriptedLedger {
        later_before_first_record: Mutex::new(Some((later, RecordedState::Absent))),
        ..ScriptedLedger::default()
    };
    let worker = create_answered_at_once(ledger, config(&[])).await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert!(
        dead.is_empty(),
        "dead-lettered with the create in place behind a later revoke: {:?}",
        dead.iter()
            .map(|d| (d.attribute("ErrorClass"), d.attribute("ErrorCode")))
            .collect::<Vec<_>>()
    );
    let undo = body_json(
        worker
            .queues
            .sent_to(&worker.config.work_queue)
            .last()
            .expect("the undo"),
    );
    assert_step(&undo, "undo", "delete");
}

/// A worker on `ledger` whose Identity Center answers one call SUCCEEDED at once.
fn answering_succeeded_once(
    ledger: ScriptedLedger,
    config: Config,
) -> Worker<ScriptedIdentityCenter, RecordingQueues, ScriptedLedger, MemoryServiceCatalog> {
    Worker {
        service_catalog: catalog(),
        ledger,
        identity_center: ScriptedIdentityCenter::new(vec![status(
            OperationStatus::Succeeded,
            None,
        )]),
        queues: RecordingQueues::default(),
        config,
    }
}

/// A worker on `ledger` that has run grant FAST-GRANT (decided at 10:00:00), whose create
/// Identity Center answered SUCCEEDED at once.
async fn create_answered_at_once(
    ledger: ScriptedLedger,
    config: Config,
) -> Worker<ScriptedIdentityCenter, RecordingQueues, ScriptedLedger, MemoryServiceCatalog> {
    let worker = answering_succeeded_once(ledger, config);
    let grant = decision_at("create", "FAST-GRANT", "2026-11-29T10:00:00Z");
    let response = worker
        .handle(
            record_event(&grant, "m-grant", 1_764_000_000_000),
            &Invocation::default(),
        )
        .await;
    assert!(failures(&response).is_empty());
    assert!(matches!(
        &worker.identity_center.calls()[..],
        [Call::Create { .. }]
    ));
    worker
}

/// A grant's create answered SUCCEEDED at once, whose record lands but whose answer is
/// lost on the step's last attempt: the ledger holds the grant carried out, by this
/// delivery's own call, which ends `succeeded` with its operation id, not as another
/// delivery's work (`already-satisfied`) nor dead-lettered.
#[tokio::test]
async fn a_change_whose_record_lands_with_its_answer_lost_on_the_last_attempt_succeeds() {
    let ledger = ScriptedLedger {
        first_record_answer_lost: Mutex::new(true),
        ..ScriptedLedger::default()
    };
    let worker = create_answered_at_once(ledger, config(&[("MAX_ATTEMPTS", "1")])).await;
    assert!(
        worker
            .queues
            .sent_to(&worker.config.dead_letter_queue)
            .is_empty()
    );
    let outcome = outcome_events(&worker)
        .into_iter()
        .find(|e| e["correlationId"] == "FAST-GRANT")
        .expect("the grant's outcome");
    assert_eq!(outcome["outcome"], "succeeded", "{outcome}");
    assert_eq!(outcome["operationRequestId"], REQUEST_ID, "{outcome}");
}

/// An expiry's delete confirmed, its record refused on the last attempt with no later
/// decision recorded: dead-lettered. A later revoke comes after the delete, so a redrive
/// of that dead letter ends the expiry with no call: the dead letter does not say its
/// delete may have landed behind a later decision.
#[tokio::test]
async fn a_redriven_expiry_dead_lettered_after_its_confirmed_delete_undoes_nothing() {
    let worker = worker(vec![status(OperationStatus::Succeeded, None)], config(&[]));
    let grant = timed_grant_at_ten("TEMP-3");
    let poll = last_attempt_step(
        &grant,
        serde_json::json!({"step": "poll", "operation": "delete", "purpose": "expiry",
                           "operationRequestId": REQUEST_ID, "polls": 1}),
    );
    redrive_behind_a_later_revoke_undoes_nothing(&worker, &grant, &poll, 1).await;
}

/// A grant decided at 10:00:00 that ends at 12:00:00.
fn timed_grant_at_ten(correlation_id: &str) -> String {
    assignment_request(
        "create",
        correlation_id,
        &[
            ("requestedAt", "2026-11-29T10:00:00Z"),
            ("notAfter", "2026-11-29T12:00:00Z"),
        ],
    )
}

/// Runs the expiry's confirming `poll` of `grant` on its last attempt with its record
/// refused (the `calls`-th Identity Center call): dead-lettered. Then a later revoke is
/// recorded and the dead letter redriven: it ends with no call and no step.
async fn redrive_behind_a_later_revoke_undoes_nothing(
    worker: &TestWorker,
    grant: &str,
    poll: &str,
    calls: usize,
) {
    worker.ledger.set_faults([true]);
    invoke(worker, record_event(poll, "m-last", 1_764_000_000_000)).await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1, "{dead:?}");
    record_later_decision(worker, grant, Intent::Revoke, RecordedState::Absent).await;
    let steps = redrive_the_dead_letter(worker).await;
    assert!(steps.is_empty(), "{steps:?}");
    assert_eq!(worker.identity_center.calls().len(), calls);
}

/// An expiry's delete confirmed at its poll on attempt 9, its record refused there and
/// again on attempt 10: dead-lettered. The delete landed before any later decision, so
/// a redrive behind a later revoke ends with no call: the repeated confirm does not
/// mark the restart as a delete that may still land.
#[tokio::test]
async fn a_redriven_expiry_whose_confirm_was_repeated_undoes_nothing() {
    let worker = worker(
        vec![
            status(OperationStatus::Succeeded, None),
            status(OperationStatus::Succeeded, None),
        ],
        config(&[]),
    );
    let grant = timed_grant_at_ten("TEMP-4");
    let repeat = expiry_poll_repeated_after_a_refused_record(&worker, &grant).await;
    redrive_behind_a_later_revoke_undoes_nothing(&worker, &grant, &repeat, 2).await;
}

/// An undo toward a later timed grant whose create Identity Center answered SUCCEEDED at
/// once, whose confirming read the ledger refuses for good, and whose read before the
/// dead letter fails too: dead-lettered, with the create certainly in place, so the
/// restored-expiry chain that ends it at that grant's end is stored.
#[tokio::test]
async fn an_undo_whose_create_is_in_place_when_dead_lettered_keeps_its_restored_expiry() {
    let later_end = time::macros::datetime!(2099-01-01 00:00:00 UTC);
    let (worker, revoke) =
        revoke_behind_a_later_grant(Some(later_end), RecordedState::Pending).await;
    // The fence's read passes; the read before the dead letter fails.
    worker.ledger.inner.set_faults([false, true]);
    let undo = undo_step(&revoke, "create");
    let response = worker
        .handle(
            record_event(&undo.to_string(), "m-undo", 1_764_000_000_000),
            &Invocation::default(),
        )
        .await;
    assert!(failures(&response).is_empty());
    assert!(matches!(
        &worker.identity_center.calls()[..],
        [Call::Create { .. }]
    ));
    assert_eq!(
        worker
            .queues
            .sent_to(&worker.config.dead_letter_queue)
            .len(),
        1
    );
    assert_a_step(&stored_steps(&worker), "purpose", "restored-expiry");
}

/// An expiry's delete submitted again after an unanswered submit, confirmed while a
/// later permanent grant was carried out, whose record the ledger refuses for good and
/// whose read after it fails: dead-lettered, not knowing whether the delete landed after
/// the later grant's create. A redrive finds the later grant and restores its access
/// (an expiry-undo), rather than leave it deleted.
#[tokio::test]
async fn a_redriven_expiry_whose_delete_may_have_followed_a_later_grant_restores_it() {
    let ledger = ScriptedLedger {
        later_before_first_record: Mutex::new(Some((
            later_decision(Intent::Grant, None),
            RecordedState::Present,
        ))),
        ..ScriptedLedger::default()
    };
    let worker = answering_succeeded_once(ledger, config(&[]));
    let grant = timed_grant_at_ten("TEMP-5");
    let submit = last_attempt_step(
        &grant,
        serde_json::json!({"step": "submit", "operation": "delete", "purpose": "expiry",
                           "attempt": 2, "maybeSubmitted": true}),
    );
    // The fence's read, the later grant's claim and record, then the read after the
    // refused record, which fails.
    worker.ledger.inner.set_faults([false, false, false, true]);
    worker
        .handle(
            record_event(&submit, "m-expiry", 1_764_000_000_000),
            &Invocation::default(),
        )
        .await;
    assert_restores_the_later_grant(&redrive_the_dead_letter(&worker).await);
}

/// An expiry's delete confirmed at attempt 9 behind a later permanent grant recorded
/// carried out, its record throttled; its repeated poll throttled on attempt 10, and the
/// read before the dead letter throttled too. The delete may have removed the later
/// grant's access: a redrive finds the later grant and restores it.
#[tokio::test]
async fn a_redriven_expiry_exhausted_with_its_read_failed_restores_a_later_grant() {
    let worker = worker(
        vec![
            status(OperationStatus::Succeeded, None),
            error(ErrorKind::RateLimited, "ThrottlingException"),
        ],
        config(&[]),
    );
    let grant = timed_grant_behind_a_recorded_grant(&worker).await;
    let repeat = expiry_poll_repeated_after_a_refused_record(&worker, &grant).await;
    worker.ledger.set_faults([true]);
    invoke(&worker, record_event(&repeat, "m-10", 1_764_000_000_000)).await;
    assert_restores_the_later_grant(&redrive_the_dead_letter(&worker).await);
}

/// A worker whose ledger refuses every `latest` for good and whose Identity Center
/// answers one call SUCCEEDED at once, and a revoke decided at 10:00:00 behind a later
/// grant that ends at `not_after`, recorded in `state`.
async fn revoke_behind_a_later_grant(
    not_after: Option<time::OffsetDateTime>,
    state: RecordedState,
) -> (
    Worker<ScriptedIdentityCenter, RecordingQueues, ScriptedLedger, MemoryServiceCatalog>,
    String,
) {
    let ledger = ScriptedLedger {
        latest_refused: true,
        ..ScriptedLedger::default()
    };
    let worker = answering_succeeded_once(ledger, config(&[]));
    let revoke = decision_at("delete", "OLD-REVOKE", "2026-11-29T10:00:00Z");
    record_later_decision_in(
        &worker.ledger.inner,
        &revoke,
        Intent::Grant,
        not_after,
        state,
    )
    .await;
    (worker, revoke)
}

/// Runs the poll of `grant`'s expiry on attempt 9 of 10, answered SUCCEEDED, with its
/// record throttled: the repeated poll it stores (attempt 10).
async fn expiry_poll_repeated_after_a_refused_record(worker: &TestWorker, grant: &str) -> String {
    let poll = last_attempt_step(
        grant,
        serde_json::json!({"step": "poll", "operation": "delete", "purpose": "expiry",
                           "operationRequestId": REQUEST_ID, "polls": 1, "attempt": 9}),
    );
    worker.ledger.set_faults([true]);
    invoke(worker, record_event(&poll, "m-9", 1_764_000_000_000)).await;
    worker
        .queues
        .sent_to(&worker.config.work_queue)
        .last()
        .expect("the repeated poll")
        .body
        .clone()
}

/// Redrives the one dead letter `worker` stored: the steps the redrive stored.
async fn redrive_the_dead_letter<L: Ledger>(
    worker: &Worker<ScriptedIdentityCenter, RecordingQueues, L, MemoryServiceCatalog>,
) -> Vec<Value> {
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    let [dead_letter] = &dead[..] else {
        panic!("one dead letter: {dead:?}");
    };
    let before = worker.queues.sent_to(&worker.config.work_queue).len();
    let response = worker
        .handle(
            record_event(&dead_letter.body, "m-redrive", 1_764_000_100_000),
            &Invocation::default(),
        )
        .await;
    assert!(failures(&response).is_empty());
    worker.queues.sent_to(&worker.config.work_queue)[before..]
        .iter()
        .map(body_json)
        .collect()
}

fn assert_restores_the_later_grant(steps: &[Value]) {
    assert_a_step(steps, "purpose", "expiry-undo");
}

/// Some step of `steps` has `value` in its progress's `field`.
fn assert_a_step(steps: &[Value], field: &str, value: &str) {
    assert!(
        steps.iter().any(|step| step["progress"][field] == value),
        "no step with {field} {value}: {steps:?}"
    );
}

/// The steps `worker` stored on the work queue.
fn stored_steps<L: Ledger>(
    worker: &Worker<ScriptedIdentityCenter, RecordingQueues, L, MemoryServiceCatalog>,
) -> Vec<Value> {
    worker
        .queues
        .sent_to(&worker.config.work_queue)
        .iter()
        .map(body_json)
        .collect()
}

/// An expiry's delete still running at its poll deadline, behind a later permanent grant
/// recorded carried out (whose create came first: AWS runs the delete after it):
/// dead-lettered `timed-out`, as every operation still running at its deadline is. Its
/// restart says the delete may land behind that grant, so a redrive restores it.
#[tokio::test]
async fn a_redriven_expiry_timed_out_behind_a_later_grant_restores_it() {
    let worker = worker(vec![status(OperationStatus::InProgress, None)], config(&[]));
    let grant = timed_grant_behind_a_recorded_grant(&worker).await;
    let poll = delete_poll_past_its_deadline(&grant, serde_json::json!({"purpose": "expiry"}));
    invoke(&worker, record_event(&poll, "m-poll", 1_764_000_000_000)).await;
    assert_eq!(dead_letters(&worker, "ErrorClass"), ["timed-out"]);
    assert_restores_the_later_grant(&redrive_the_dead_letter(&worker).await);
}

/// A restored-expiry chain's delete confirmed after a later permanent grant's create,
/// whose confirming read of the ledger is refused for good: the read before its dead
/// letter finds that grant, and the chain goes on as its confirm would have, restoring
/// the grant's access, rather than leave it deleted behind a dead letter.
#[tokio::test]
async fn a_restored_expiry_whose_confirming_read_is_refused_restores_a_later_grant() {
    let (worker, revoke) = revoke_behind_a_later_grant(None, RecordedState::Present).await;
    let poll = last_attempt_step(
        &revoke,
        serde_json::json!({"step": "poll", "operation": "delete", "purpose": "restored-expiry",
                           "operationRequestId": REQUEST_ID, "polls": 1, "attempt": 1,
                           "supersededBy": {"correlationId": "WATCHED",
                                            "requestedAt": "2026-11-29T10:00:03Z"}}),
    );
    let response = worker
        .handle(
            record_event(&poll, "m-restored", 1_764_000_000_000),
            &Invocation::default(),
        )
        .await;
    assert!(failures(&response).is_empty());
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert!(dead.is_empty(), "{dead:?}");
    assert_a_step(&stored_steps(&worker), "operation", "create");
}

/// A poll of `request`'s delete submitted 16 minutes ago, past the 900 s poll deadline,
/// on its 13th poll; `progress` adds the purpose and what it needs.
fn delete_poll_past_its_deadline(request: &str, progress: Value) -> String {
    let submitted_at = assignment_worker::messages::rfc3339(
        time::OffsetDateTime::now_utc() - time::Duration::minutes(16),
    );
    let mut fields = serde_json::json!({"step": "poll", "operation": "delete",
                                        "operationRequestId": REQUEST_ID, "polls": 12,
                                        "attempt": 1, "submittedAt": submitted_at});
    for (field, value) in progress.as_object().expect("fields") {
        fields[field] = value.clone();
    }
    last_attempt_step(request, fields)
}

/// A restored-expiry chain's delete still running at its poll deadline, behind a later
/// permanent grant recorded carried out: dead-lettered `timed-out`, its restart saying
/// the delete may land behind that grant. A redrive finds the grant at the chain's wait
/// and restores its access, rather than end the chain as superseded by it.
#[tokio::test]
async fn a_redriven_restored_expiry_timed_out_behind_a_later_grant_restores_it() {
    let worker = worker(vec![status(OperationStatus::InProgress, None)], config(&[]));
    let revoke = decision_at("delete", "OLD-REVOKE", "2026-11-29T10:00:00Z");
    record_later_decision(&worker, &revoke, Intent::Grant, RecordedState::Present).await;
    let poll = delete_poll_past_its_deadline(
        &revoke,
        serde_json::json!({"purpose": "restored-expiry",
                           "supersededBy": {"correlationId": "WATCHED",
                                            "requestedAt": "2026-11-29T10:00:03Z"}}),
    );
    invoke(&worker, record_event(&poll, "m-poll", 1_764_000_000_000)).await;
    assert_eq!(dead_letters(&worker, "ErrorClass"), ["timed-out"]);
    let steps = redrive_the_dead_letter(&worker).await;
    assert_a_step(&steps, "operation", "create");
}

/// A restored-expiry chain's delete confirmed behind a later permanent grant recorded
/// carried out, whose confirming read and the read before its dead letter both fail:
/// whether the delete came after the grant's create is unknown. A redrive finds the
/// grant at the chain's wait and restores its access.
#[tokio::test]
async fn a_redriven_restored_expiry_whose_reads_failed_after_its_delete_restores_a_later_grant() {
    let worker = worker(vec![status(OperationStatus::Succeeded, None)], config(&[]));
    let revoke = decision_at("delete", "OLD-REVOKE", "2026-11-29T10:00:00Z");
    record_later_decision(&worker, &revoke, Intent::Grant, RecordedState::Present).await;
    let poll = last_attempt_step(
        &revoke,
        serde_json::json!({"step": "poll", "operation": "delete", "purpose": "restored-expiry",
                           "operationRequestId": REQUEST_ID, "polls": 1, "attempt": 10,
                           "supersededBy": {"correlationId": "WATCHED",
                                            "requestedAt": "2026-11-29T10:00:03Z"}}),
    );
    worker.ledger.set_faults([true, true]);
    invoke(&worker, record_event(&poll, "m-poll", 1_764_000_000_000)).await;
    assert_eq!(dead_letters(&worker, "ErrorClass").len(), 1);
    let steps = redrive_the_dead_letter(&worker).await;
    assert_a_step(&steps, "operation", "create");
}

/// A grant with no end carried out; a later timed grant claimed, its create answered
/// busy; its retry refused by a guardrail added meanwhile (grants of the permission set
/// protected, revokes still allowed). The timed grant stays the latest decision, asking
/// for access only until its `notAfter`: its expiry is scheduled, so that the earlier
/// grant's access does not outlive that end.
#[tokio::test]
async fn a_claimed_timed_grant_refused_on_its_retry_keeps_its_expiry() {
    let mut worker = worker(
        vec![
            status(OperationStatus::Succeeded, None),
            error(ErrorKind::Busy, "ThrottlingException"),
        ],
        config(&[]),
    );
    let open = decision_at("create", "OPEN-1", "2026-11-29T10:00:00Z");
    invoke(&worker, record_event(&open, "m-open", 1_764_496_800_000)).await;
    let timed = timed_grant_at("TIMED-2", "2026-11-29T10:00:01Z");
    invoke(&worker, record_event(&timed, "m-timed", 1_764_496_800_100)).await;
    let retry = last_work_body(&worker);
    let protected = "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b";
    worker.config = config(&[("PROTECTED_PERMISSION_SET_ARNS", protected)]);
    let before = worker.queues.sent_to(&worker.config.work_queue).len();
    invoke(&worker, record_event(&retry, "m-retry", 1_764_496_800_200)).await;
    assert_eq!(dead_letters(&worker, "ErrorClass"), ["forbidden"]);
    let steps = &stored_steps(&worker)[before..];
    let [expiry] = steps else {
        panic!("one step, the timed grant's expiry: {steps:?}");
    };
    assert_eq!(expiry["progress"]["step"], "expire-wait", "{expiry}");
    assert_step(expiry, "expiry", "delete");
}

/// A restored-expiry chain whose ledger reads fail at its wait, before any call: its
/// dead letter's restart does not say a delete may have landed, so a redrive behind a
/// grant creates nothing.
#[tokio::test]
async fn a_restored_expiry_dead_lettered_at_its_wait_says_no_delete_landed() {
    let restart = restart_of_a_restored_expiry_dead_lettered_at_its_wait(1).await;
    assert_ne!(restart["progress"]["maybeSubmitted"], true, "{restart}");
}

/// A restored-expiry wait, delivered for the `receive_count`-th time, whose ledger reads
/// all fail: the step its dead letter restarts from (no call made).
async fn restart_of_a_restored_expiry_dead_lettered_at_its_wait(receive_count: u32) -> Value {
    let worker = worker(vec![], config(&[]));
    let revoke = decision_at("delete", "OLD-REVOKE", "2026-11-29T10:00:00Z");
    let wait = last_attempt_step(
        &revoke,
        serde_json::json!({"step": "expire-wait", "operation": "delete",
                           "purpose": "restored-expiry",
                           "supersededBy": {"correlationId": "WATCHED",
                                            "requestedAt": "2026-11-29T10:00:03Z"}}),
    );
    worker.ledger.set_faults([true, true, true]);
    invoke(&worker, redelivered_event(&wait, "m-wait", receive_count)).await;
    assert!(worker.identity_center.calls().is_empty());
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    let [dead] = &dead[..] else {
        panic!("one dead letter: {dead:?}");
    };
    body_json(dead)
}

/// A timed grant whose first claim was throttled (nothing recorded), refused by a
/// guardrail added before its retry: the ledger does not hold it, so no expiry is
/// scheduled, which at its `notAfter` would find no decision and revoke access no
/// decision of the worker's gave (given by hand, say).
#[tokio::test]
async fn a_timed_grant_never_claimed_refused_on_its_retry_schedules_no_expiry() {
    let mut worker = worker(vec![], config(&[]));
    let timed = timed_grant_at("TIMED-NEVER-CLAIMED", "2026-11-29T10:00:01Z");
    worker.ledger.set_faults([true]);
    invoke(&worker, record_event(&timed, "m-timed", 1_764_496_800_100)).await;
    let retry = stored_steps(&worker);
    let [retry] = &retry[..] else {
        panic!("one retry: {retry:?}");
    };
    assert_eq!(retry["progress"]["attempt"], 2, "{retry}");
    let protected = "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b";
    worker.config = config(&[("PROTECTED_PERMISSION_SET_ARNS", protected)]);
    invoke(
        &worker,
        record_event(&retry.to_string(), "m-retry", 1_764_496_800_200),
    )
    .await;
    assert_eq!(dead_letters(&worker, "ErrorClass"), ["forbidden"]);
    let steps = &stored_steps(&worker)[1..];
    assert!(steps.is_empty(), "{steps:?}");
    assert!(worker.identity_center.calls().is_empty());
}

/// A grant with no end carried out; a later grant whose `notAfter` had passed when it
/// came, whose first delivery claimed it (recorded `absent`) and stopped before its
/// expiry was stored; SQS delivers it again after a guardrail was added. It is the
/// ledger's latest decision, asking for no access: refused, it still stores its
/// expiry, which ends the earlier grant's access.
#[tokio::test]
async fn an_expired_grant_claimed_then_refused_when_delivered_again_keeps_its_expiry() {
    let mut worker = worker(vec![status(OperationStatus::Succeeded, None)], config(&[]));
    let open = decision_at("create", "OPEN-1", "2026-11-29T10:00:00Z");
    invoke(&worker, record_event(&open, "m-open", 1_764_000_000_000)).await;
    let past = assignment_request(
        "create",
        "PAST-2",
        &[
            ("requestedAt", "2026-11-29T10:00:01Z"),
            ("notAfter", "2026-11-29T10:00:02Z"),
        ],
    );
    let first_delivery = redelivered_event(&past, "m-past", 1);
    invoke(&worker, first_delivery).await;
    assert_eq!(dead_letters(&worker, "ErrorClass"), ["expired"]);
    let protected = "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b";
    worker.config = config(&[("PROTECTED_PERMISSION_SET_ARNS", protected)]);
    let before = stored_steps(&worker).len();
    invoke(&worker, redelivered_event(&past, "m-past", 2)).await;
    assert_eq!(
        dead_letters(&worker, "ErrorClass"),
        ["expired", "forbidden"]
    );
    let steps = &stored_steps(&worker)[before..];
    let [expiry] = steps else {
        panic!("one step, the grant's expiry: {steps:?}");
    };
    assert_step(expiry, "expiry", "delete");
}

/// A grant's retry after an answer that may have been lost, refused by a guardrail
/// added meanwhile, behind a later revoke, whose read of the ledger is throttled: the
/// refusal made no call, so the step is stored again to read once more, rather than
/// dead-lettered with the create possibly in place; the next delivery undoes it toward
/// the revoke.
#[tokio::test]
async fn a_refused_retry_whose_read_is_throttled_reads_again_and_undoes_toward_a_later_revoke() {
    let protected = "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b";
    let worker = worker(
        vec![],
        config(&[("PROTECTED_PERMISSION_SET_ARNS", protected)]),
    );
    let grant = grant_behind_a_recorded_revoke(&worker).await;
    let retry = serde_json::json!({
        "request": body_json_text(&grant),
        "progress": {"step": "submit", "operation": "create", "attempt": 2,
                     "maybeSubmitted": true, "firstReceivedAt": rfc3339_minutes_ago(1),
                     "requestedAt": "2026-11-29T10:00:00Z", "firstMessageId": "m-grant"},
    })
    .to_string();
    worker.ledger.set_faults([true]);
    invoke(&worker, record_event(&retry, "m-retry", 1_764_000_000_000)).await;
    assert!(dead_letters(&worker, "ErrorClass").is_empty());
    let again = last_work_body(&worker);
    invoke(&worker, record_event(&again, "m-again", 1_764_000_000_000)).await;
    let steps = stored_steps(&worker);
    assert_step(steps.last().expect("the undo"), "undo", "delete");
    assert!(worker.identity_center.calls().is_empty());
}

/// The same wait delivered again (its first delivery may have come due, deleted, and
/// stopped before storing what followed), whose ledger reads fail: its restart says the
/// delete may have landed.
#[tokio::test]
async fn a_restored_expiry_wait_delivered_again_and_dead_lettered_may_have_deleted() {
    let restart = restart_of_a_restored_expiry_dead_lettered_at_its_wait(2).await;
    assert_eq!(restart["progress"]["maybeSubmitted"], true, "{restart}");
}

/// A timed grant's first delivery refused by a guardrail, whose read of the ledger is
/// throttled: the step reads again rather than guess, and, finding no claim, schedules
/// no expiry (which at `notAfter` would find no decision and revoke access no decision
/// of the worker's gave).
#[tokio::test]
async fn a_refused_timed_grant_whose_read_is_throttled_reads_again_before_keeping_an_expiry() {
    let protected = "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b";
    let worker = worker(
        vec![],
        config(&[("PROTECTED_PERMISSION_SET_ARNS", protected)]),
    );
    let timed = timed_grant_at("TIMED-FIRST", "2026-11-29T10:00:01Z");
    worker.ledger.set_faults([true]);
    invoke(&worker, record_event(&timed, "m-timed", 1_764_496_800_100)).await;
    assert!(dead_letters(&worker, "ErrorClass").is_empty());
    let again = last_work_body(&worker);
    invoke(&worker, record_event(&again, "m-again", 1_764_496_800_200)).await;
    assert_eq!(dead_letters(&worker, "ErrorClass"), ["forbidden"]);
    let steps = &stored_steps(&worker)[1..];
    assert!(
        steps.is_empty(),
        "an expiry for a grant never claimed: {steps:?}"
    );
    assert!(worker.identity_center.calls().is_empty());
}

/// A timed grant decided more than 5 minutes ahead of the worker's clock, refused as
/// `invalid-request`, whose read of the ledger is throttled: it is dead-lettered as it
/// is, not stored again to come back once the clock has caught up and be carried out.
/// Delivers `steps` once the worker's clock is `ahead` of now.
async fn deliver_later(worker: &TestWorker, steps: &[Value], ahead: time::Duration) {
    let later = Invocation {
        clock: assignment_worker::clock::WallClock::ahead_by(ahead),
        ..Invocation::default()
    };
    for step in steps {
        worker
            .handle(
                record_event(&step.to_string(), "m-later", 1_764_000_000_000),
                &later,
            )
            .await;
    }
}

#[tokio::test]
async fn a_grant_refused_for_its_future_requested_at_is_not_retried_after_a_throttled_read() {
    let worker = worker(vec![status(OperationStatus::Succeeded, None)], config(&[]));
    let ahead = assignment_worker::messages::rfc3339(
        time::OffsetDateTime::now_utc() + time::Duration::minutes(6),
    );
    let grant = timed_grant_at("FUTURE-TIMED", &ahead);
    worker.ledger.set_faults([true]);
    invoke(&worker, record_event(&grant, "m-future", 1_764_000_000_000)).await;
    assert_eq!(dead_letters(&worker, "ErrorCode"), ["RequestedAtInFuture"]);
    deliver_later(&worker, &stored_steps(&worker), time::Duration::minutes(2)).await;
    let creates = calls_where(&worker, |call| matches!(call, Call::Create { .. }));
    assert_eq!(creates, 0, "{:?}", worker.identity_center.calls());
}

/// Where Identity Center does not tell the spellings of an id apart, its Describe
/// answer names the assignment as it holds it, in lower case: a grant written in
/// capitals, behind a later revoke in lower case (one ledger item), is the same
/// operation and is undone toward the revoke, not dead-lettered `OperationMismatch`
/// (read as "says nothing about this request") with its create in place.
#[tokio::test]
async fn a_capitals_grant_whose_poll_names_the_lower_case_ids_is_undone_toward_a_later_revoke() {
    let as_aws_holds_it = assignment_worker::identity_center::OperationSubject {
        target_id: Some("111122223333".to_owned()),
        target_type: Some("AWS_ACCOUNT".to_owned()),
        permission_set_arn: Some(
            "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b".to_owned(),
        ),
        principal_type: Some("USER".to_owned()),
        principal_id: Some("9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10".to_owned()),
    };
    let succeeded = Ok(StatusReport {
        created_at: None,
        status: OperationStatus::Succeeded,
        request_id: Some(REQUEST_ID.to_owned()),
        failure_reason: None,
        subject: as_aws_holds_it,
    });
    let worker = worker(vec![succeeded], config(&[]));
    let grant = assignment_request(
        "create",
        "CAPS-GRANT",
        &[
            ("requestedAt", "2026-11-29T10:00:00Z"),
            (
                "permissionSetArn",
                "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1A2B3C4D5E6F7A8B",
            ),
            (
                "principalId",
                "9067a1b2c3-4C4F4A62-1E0B-4B4B-9C3B-1B6C5A3E7F10",
            ),
        ],
    );
    // The later revoke, written in lower case, recorded carried out (before the create landed).
    let lower = decision_at("create", "CAPS-GRANT", "2026-11-29T10:00:00Z");
    record_later_decision(&worker, &lower, Intent::Revoke, RecordedState::Absent).await;
    let poll = create_poll(&grant, 1, &rfc3339_minutes_ago(1));
    invoke(&worker, record_event(&poll, "m-poll", 1_764_000_000_000)).await;
    let steps = stored_steps(&worker);
    assert!(
        steps
            .iter()
            .any(|step| step["progress"]["purpose"] == "undo"),
        "dead letters {:?}, no undo toward the later revoke: {steps:?}",
        dead_letters(&worker, "ErrorCode")
    );
}

/// A grant's retry after an answer that may have been lost (`maybeSubmitted`), behind a
/// later revoke, refused as `RequestedAtInFuture` by an instance whose clock is behind
/// the one that took attempt 1, its ledger read throttled: the step reads again, and
/// undoes toward the revoke, rather than dead-lettering with the create possibly in
/// place behind it (c130465 stopped repeating every refusal the clock decides).
#[tokio::test]
async fn a_maybe_submitted_retry_refused_by_the_clock_with_a_throttled_read_is_undone() {
    let worker = worker(vec![], config(&[]));
    let now = time::OffsetDateTime::now_utc();
    let requested_at = assignment_worker::messages::rfc3339(now + time::Duration::minutes(6));
    let grant = decision_at("create", "SKEWED-GRANT", &requested_at);
    // A later revoke recorded carried out (its delete found nothing yet).
    let parsed = assignment_worker::request::parse_request(&grant).expect("valid");
    let (_, assignment) = parsed.assignment().expect("an assignment");
    let key = LedgerKey::assignment(assignment);
    let later = AccessDecision {
        order: DecisionOrder {
            requested_at: now + time::Duration::minutes(7),
            intent: Intent::Revoke,
            correlation_id: Some("LATER".to_owned()),
            first_message_id: "m-later".to_owned(),
        },
        not_after: None,
    };
    worker
        .ledger
        .claim(&key, &later, RecordedState::Pending, now)
        .await
        .expect("claimed");
    worker
        .ledger
        .record(&key, &later.order, RecordedState::Absent, None, now)
        .await
        .expect("recorded");
    let retry = serde_json::json!({
        "request": body_json_text(&grant),
        "progress": {"step": "submit", "operation": "create", "attempt": 2,
                     "maybeSubmitted": true, "firstReceivedAt": rfc3339_minutes_ago(1),
                     "requestedAt": requested_at, "firstMessageId": "m-grant"},
    })
    .to_string();
    worker.ledger.set_faults([true]);
    invoke(&worker, record_event(&retry, "m-retry", 1_764_000_000_000)).await;
    assert!(
        dead_letters(&worker, "ErrorCode").is_empty(),
        "dead-lettered with the create possibly in place behind the revoke: {:?}, steps {:?}",
        dead_letters(&worker, "ErrorCode"),
        stored_steps(&worker)
    );
    let again = last_work_body(&worker);
    invoke(&worker, record_event(&again, "m-again", 1_764_000_000_000)).await;
    let steps = stored_steps(&worker);
    assert_step(steps.last().expect("the undo"), "undo", "delete");
}

/// A timed grant decided 6 minutes ahead, delivered a second time (its first
/// delivery's dead-letter send failed, say): the redelivery's read finds no claim, and
/// the refusal's own read is throttled. No expiry is kept: at `notAfter` it would find
/// no decision and revoke access no decision of the worker's gave (c130465 counted any
/// second delivery as claimed).
#[tokio::test]
async fn a_future_grant_delivered_again_with_a_throttled_read_schedules_no_expiry() {
    let worker = worker(vec![status(OperationStatus::Succeeded, None)], config(&[]));
    let now = time::OffsetDateTime::now_utc();
    let requested_at = assignment_worker::messages::rfc3339(now + time::Duration::minutes(6));
    let not_after = assignment_worker::messages::rfc3339(now + time::Duration::minutes(7));
    let grant = assignment_request(
        "create",
        "FUTURE-AGAIN",
        &[("requestedAt", &requested_at), ("notAfter", &not_after)],
    );
    // after_redelivery's read answers (no item); the refusal's read is throttled.
    worker.ledger.set_faults([false, true]);
    invoke(&worker, redelivered_event(&grant, "m-future", 2)).await;
    assert_eq!(dead_letters(&worker, "ErrorCode"), ["RequestedAtInFuture"]);
    assert!(worker.ledger.items().is_empty(), "nothing was claimed");
    let steps = stored_steps(&worker);
    // What the stored step does at notAfter: the ledger holds no decision, and it revokes.
    deliver_later(&worker, &steps, time::Duration::minutes(8)).await;
    let deletes = calls_where(&worker, |call| matches!(call, Call::Delete { .. }));
    assert!(
        steps.is_empty() && deletes == 0,
        "an expiry for a grant never claimed ({deletes} delete(s)): {steps:?}"
    );
}

/// The poll envelope of `request`'s create past its poll deadline (submitted 16 minutes
/// ago, 12 polls made), the decision stamped at `requested_at`.
fn timed_out_poll_of(request: &str, requested_at: &str) -> String {
    let submitted_at = assignment_worker::messages::rfc3339(
        time::OffsetDateTime::now_utc() - time::Duration::minutes(16),
    );
    serde_json::json!({
        "request": body_json_text(request),
        "progress": {"step": "poll", "operation": "create", "operationRequestId": REQUEST_ID,
                     "attempt": 1, "polls": 12, "firstReceivedAt": submitted_at,
                     "submittedAt": submitted_at, "requestedAt": requested_at,
                     "firstMessageId": "m-grant"},
    })
    .to_string()
}

/// The caution is one sentence an operator can search for, in the dead letter's
/// ErrorMessage and in the outcome event's errorMessage (a string literal's line breaks
/// once left runs of spaces in it).
#[tokio::test]
async fn the_unread_ledger_caution_reads_as_one_sentence() {
    let worker = worker(vec![status(OperationStatus::InProgress, None)], config(&[]));
    let grant = decision_at("create", "SLOW-SPACES", "2026-11-29T10:00:00Z");
    worker.ledger.set_faults([true]);
    invoke(
        &worker,
        record_event(
            &timed_out_poll_of(&grant, "2026-11-29T10:00:00Z"),
            "m-slow",
            1_764_000_000_000,
        ),
    )
    .await;
    let message = &dead_letters(&worker, "ErrorMessage")[0];
    assert!(
        message.contains("Check the access before redriving"),
        "{message}"
    );
    assert!(!message.contains("  "), "{message:?}");
    let event = outcome_of(&worker, "SLOW-SPACES");
    let event_message = event["errorMessage"].as_str().unwrap_or_default();
    assert!(!event_message.contains("  "), "{event_message:?}");
}

/// A grant's create still IN_PROGRESS at its poll deadline while a later revoke is
/// recorded (the ledger read succeeds): `timed-out` is dead-lettered for the operator
/// to check, not undone, and the create may land after the revoke's delete. The body
/// is the bare request, so its redrive ends `superseded` and removes nothing: the
/// message must say to check the access.
#[tokio::test]
async fn a_timed_out_grant_behind_a_later_revoke_says_to_check_the_access() {
    let worker = worker(vec![status(OperationStatus::InProgress, None)], config(&[]));
    let grant = decision_at("create", "SLOW-BEHIND", "2026-11-29T10:00:00Z");
    record_later_decision(&worker, &grant, Intent::Revoke, RecordedState::Absent).await;
    invoke(
        &worker,
        record_event(
            &timed_out_poll_of(&grant, "2026-11-29T10:00:00Z"),
            "m-slow",
            1_764_000_000_000,
        ),
    )
    .await;
    assert_eq!(dead_letters(&worker, "ErrorClass"), ["timed-out"]);
    let message = dead_letters(&worker, "ErrorMessage")[0].clone();
    let steps = redrive_the_dead_letter(&worker).await;
    let deletes = calls_where(&worker, |c| matches!(c, Call::Delete { .. }));
    assert!(
        message.contains("Check the access before redriving") || deletes > 0 || !steps.is_empty(),
        "no sign in {message:?}, and the redrive undid nothing: {steps:?}"
    );
    assert!(message.starts_with("Check the access"), "{message}");
}

/// ErrorMessage is cut to 1 KiB from its end. An unreadable 5xx (no error code)
/// carries the SDK's DisplayErrorContext as its message, raw response included: well
/// over 1 KiB. The caution must survive the cut, in the dead letter and in the outcome
/// event.
#[tokio::test]
async fn the_unread_ledger_caution_survives_a_long_aws_message() {
    let long = format!(
        "service error: unhandled error (ServiceError {{ source: Unhandled, raw: Response {{ \
         status: StatusCode(503), headers: Headers {{ .. }}, body: SdkBody {{ inner: \
         Once(Some(b\"<html>{}</html>\")) }} }} }})",
        "x".repeat(1500)
    );
    let worker = worker(
        vec![Err(CallError {
            kind: ErrorKind::ServerError,
            code: "HTTP 503".to_owned(),
            message: long,
        })],
        config(&[]),
    );
    let grant = decision_at("create", "STORM", "2026-11-29T10:00:00Z");
    let submit = last_attempt_step(
        &grant,
        serde_json::json!({"step": "submit", "operation": "create", "maybeSubmitted": true}),
    );
    // The claim passes; the read before the dead letter fails.
    worker.ledger.set_faults([false, true]);
    invoke(&worker, record_event(&submit, "m-storm", 1_764_000_000_000)).await;
    assert_eq!(dead_letters(&worker, "ErrorClass"), ["exhausted"]);
    let message = &dead_letters(&worker, "ErrorMessage")[0];
    assert!(
        message.contains("Check the access before redriving"),
        "{message}"
    );
    let event = outcome_of(&worker, "STORM");
    let event_message = event["errorMessage"].as_str().unwrap_or_default();
    assert!(
        event_message.contains("Check the access before redriving"),
        "{event_message}"
    );
}

/// A dead letter whose `ErrorMessage` begins `ledger:` is DynamoDB refusing the ledger
/// call (a missing table, a role without its `dynamodb:` permissions), which then
/// dead-letters every request. A portfolio grant's retry (its associate may have landed)
/// whose read of its IAM name's item is refused for good, and whose read before the
/// dead letter fails, also carries the redrive caution: the caution comes first, where
/// the 1 KiB cut cannot take it, and the refusal right behind it, as the README says.
#[tokio::test]
async fn a_cautioned_ledger_refusal_begins_ledger_behind_the_caution() {
    let ledger = ScriptedLedger {
        latest_refused: true,
        ..ScriptedLedger::default()
    };
    let worker = answering_succeeded_once(ledger, config(&[]));
    let grant = serde_json::json!({
        "action": "associate-portfolio-principal",
        "portfolioId": "port-abcdefghijklm",
        "principalType": "IAM",
        "principalArn": "arn:aws:iam::111122223333:role/Auditor",
        "correlationId": "CHG-LEDGER",
        "requestedAt": "2026-11-29T10:00:00Z",
    })
    .to_string();
    let retry = last_attempt_step(
        &grant,
        serde_json::json!({"step": "submit", "operation": "associate", "attempt": 2,
                           "maybeSubmitted": true}),
    );
    // The name's read is refused for good (`latest`); the read before the dead letter
    // (`latest_with_state`) is throttled.
    worker.ledger.inner.set_faults([true]);
    let response = worker
        .handle(
            record_event(&retry, "m-retry", 1_764_000_000_000),
            &Invocation::default(),
        )
        .await;
    assert!(failures(&response).is_empty());
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1, "{dead:#?}");
    let message = dead[0].attribute("ErrorMessage").unwrap_or_default();
    assert_eq!(
        dead[0].attribute("ErrorClass"),
        Some("permanent"),
        "{message}"
    );
    assert!(
        message.starts_with("Check the access before redriving: "),
        "{message}"
    );
    let behind_the_caution = message.split_once("without undoing the change. ");
    assert!(
        behind_the_caution.is_some_and(|(_, refusal)| refusal.starts_with("ledger:")),
        "{message}"
    );
}

/// Refuses every message sent to the outcome queue while `refuse_outcomes` is set (an
/// outcome send that fails, SPEC §5), storing the rest in `queues`.
struct OutcomesRefused {
    queues: RecordingQueues,
    refuse_outcomes: std::sync::atomic::AtomicBool,
}

impl QueueSender for OutcomesRefused {
    async fn send_batch(
        &self,
        queue: &assignment_worker::config::QueueUrl,
        messages: &[OutgoingMessage],
    ) -> Vec<Result<(), SendError>> {
        if queue.as_str() == OUTCOMES && self.refuse_outcomes.load(Ordering::SeqCst) {
            let refused = SendError {
                kind: ErrorKind::ServerError,
                code: "InternalError".to_owned(),
                message: "refused by the test".to_owned(),
            };
            return vec![Err(refused); messages.len()];
        }
        self.queues.send_batch(queue, messages).await
    }
}

/// The request outcomes (not the expiry's) a worker sent, as `outcome errorClass`.
fn request_outcomes(sent: &[OutgoingMessage]) -> Vec<String> {
    sent.iter()
        .map(body_json)
        .filter(|event| event.get("trigger").is_none())
        .map(|event| {
            format!(
                "{} {}",
                event["outcome"].as_str().unwrap_or_default(),
                event["errorClass"].as_str().unwrap_or_default()
            )
            .trim_end()
            .to_owned()
        })
        .collect()
}

/// The grants' `notAfter` in the tests below: two hours from now.
fn two_hours_ahead() -> String {
    assignment_worker::messages::rfc3339(time::OffsetDateTime::now_utc() + time::Duration::hours(2))
}

/// Runs `event` with the worker's clock three hours on: past [`two_hours_ahead`].
async fn past_the_end<Q: QueueSender>(
    worker: &Worker<ScriptedIdentityCenter, Q, MemoryLedger, MemoryServiceCatalog>,
    event: SqsEvent,
) -> SqsBatchResponse {
    let later = Invocation {
        clock: WallClock::ahead_by(time::Duration::hours(3)),
        ..Invocation::default()
    };
    worker.handle(event, &later).await
}

/// A timed grant created at once (SUCCEEDED at the submit) whose outcome event SQS
/// refused: its expiry step is stored, and its record comes back after the visibility
/// timeout. With a short grant the expiry runs first, revokes at `notAfter`, and marks
/// the grant's item `endedByExpiry`. The record delivered again reports the grant
/// `succeeded` (the outcome it owes), with no call, and its expiry once more, at once: it
/// was refused `expired` / `NotAfterPassed` ("passed before the grant was submitted"), a
/// grant that was carried out and used until its end.
#[tokio::test]
async fn a_carried_out_grant_whose_outcome_event_was_refused_reports_it_after_its_expiry() {
    let queues = OutcomesRefused {
        queues: RecordingQueues::default(),
        refuse_outcomes: std::sync::atomic::AtomicBool::new(true),
    };
    let worker = worker_sending_to(queues, vec![], config(&[]));
    let not_after = two_hours_ahead();
    let grant = assignment_request("create", "TEMP-SHORT", &[("notAfter", &not_after)]);
    let first = invoke(&worker, redelivered_event(&grant, "m-short", 1)).await;
    assert_eq!(failures(&first), ["m-short"], "left for redelivery");
    worker.queues.refuse_outcomes.store(false, Ordering::SeqCst);
    let work = worker.queues.queues.sent_to(&worker.config.work_queue);
    let expiry = &work.last().expect("the expiry step").body;
    past_the_end(&worker, record_event(expiry, "m-expiry", 1_764_496_900_000)).await;
    assert!(matches!(
        worker.identity_center.calls().as_slice(),
        [Call::Create { .. }, Call::Delete { .. }]
    ));
    let steps_before = worker
        .queues
        .queues
        .sent_to(&worker.config.work_queue)
        .len();

    // The grant's record again, past notAfter.
    let again = past_the_end(&worker, redelivered_event(&grant, "m-short", 2)).await;
    assert!(failures(&again).is_empty());
    let sent = worker.queues.queues.sent();
    let outcomes: Vec<OutgoingMessage> = sent
        .iter()
        .filter(|sent| sent.queue == OUTCOMES)
        .map(|sent| sent.message.clone())
        .collect();
    assert_eq!(request_outcomes(&outcomes), ["succeeded"]);
    let reported = body_json(outcomes.last().expect("the grant's outcome"));
    assert_eq!(reported["expiresAt"], not_after.as_str());
    assert!(
        worker
            .queues
            .queues
            .sent_to(&worker.config.dead_letter_queue)
            .is_empty()
    );
    assert_eq!(
        worker.identity_center.calls().len(),
        2,
        "no call after the expiry's"
    );
    let work = worker.queues.queues.sent_to(&worker.config.work_queue);
    assert_eq!(work.len(), steps_before + 1, "the expiry once more");
    let expiry = body_json(work.last().expect("the expiry step"));
    assert_eq!(expiry["progress"]["purpose"], "expiry");
    assert_eq!(work.last().map(|step| step.delay_seconds), Some(0));
}

/// The same with the usual asynchronous create: the submit stored its poll, and SQS
/// delivers the submit's record again after the visibility timeout (its delete was lost,
/// or the function stopped before answering). The poll reported `succeeded`, the expiry
/// revoked at `notAfter`; the copy, past `notAfter`, reports `succeeded` once more, with
/// no call: it was dead-lettered `expired`, a second outcome that contradicted the first.
#[tokio::test]
async fn a_copy_of_a_carried_out_grant_after_its_expiry_reports_it_again_not_expired() {
    let worker = worker(vec![status(OperationStatus::InProgress, None)], config(&[]));
    let grant = assignment_request("create", "TEMP-COPY", &[("notAfter", &two_hours_ahead())]);
    invoke(&worker, redelivered_event(&grant, "m-copy", 1)).await;
    let poll = last_work_body(&worker);
    invoke(&worker, record_event(&poll, "m-poll", 1_764_000_000_000)).await;
    let expiry = last_work_body(&worker);
    past_the_end(
        &worker,
        record_event(&expiry, "m-expiry", 1_764_496_900_000),
    )
    .await;
    let calls = worker.identity_center.calls().len();
    past_the_end(&worker, redelivered_event(&grant, "m-copy", 2)).await;
    let outcome_queue = worker.config.outcome_queue.clone().expect("outcome queue");
    assert_eq!(
        request_outcomes(&worker.queues.sent_to(&outcome_queue)),
        ["succeeded", "succeeded"]
    );
    assert_eq!(dead_letters(&worker, "ErrorClass"), Vec::<String>::new());
    assert_eq!(worker.identity_center.calls().len(), calls, "no call");
}

/// A chain carried on as one that may have submitted (a retry after a lost answer, or a
/// copy that went on before the expiry), whose step SQS delivers again after the grant's
/// expiry took the access back: its create may land after that revoke, so it goes on to
/// its own confirm and an expiry at once, not ended as a copy of the revoked chain with
/// no call (which left a create landed past `notAfter` with nothing to end it).
#[tokio::test]
async fn a_carried_on_retry_delivered_again_after_the_expiry_goes_on_to_its_own_expiry() {
    let worker = worker(
        vec![
            status(OperationStatus::Succeeded, None),
            // A copy of the grant's record, before notAfter: throttled, it waits.
            error(ErrorKind::RateLimited, "ThrottlingException"),
        ],
        config(&[]),
    );
    let grant = assignment_request("create", "TEMP-RETRY", &[("notAfter", &two_hours_ahead())]);
    invoke(&worker, redelivered_event(&grant, "m-retry", 1)).await;
    let expiry = last_work_body(&worker);
    invoke(&worker, redelivered_event(&grant, "m-retry", 2)).await;
    let retry = last_work_body(&worker);
    assert_eq!(body_json_text(&retry)["progress"]["maybeSubmitted"], true);

    // Past notAfter: the expiry revokes; then the copy's retry is delivered, twice (its
    // first delivery stopped after its call).
    past_the_end(
        &worker,
        record_event(&expiry, "m-expiry", 1_764_496_900_000),
    )
    .await;
    assert_eq!(
        worker.ledger.items().pop().map(|item| item.state),
        Some(RecordedState::Revoked)
    );
    let calls = worker.identity_center.calls().len();
    past_the_end(&worker, redelivered_event(&retry, "m-retry-2", 2)).await;
    let made = worker.identity_center.calls();
    assert!(
        matches!(made[calls..], [Call::Create { .. }]),
        "the retry goes on: {made:?}"
    );
    let next = body_json_text(&last_work_body(&worker));
    assert_eq!(next["progress"]["purpose"], "expiry", "{next}");
}

/// A duplicate of the grant (another message, the same decision) come after `notAfter`,
/// once the grant was carried out and its expiry took it back, reports it `succeeded`
/// (it was dead-lettered `expired`), and the expiry it runs again keeps the mark (it
/// wrote `absent` over it): the grant's own record delivered again still reports it
/// `succeeded`.
#[tokio::test]
async fn a_late_duplicates_expiry_keeps_the_mark_of_a_grant_carried_out() {
    let queues = OutcomesRefused {
        queues: RecordingQueues::default(),
        refuse_outcomes: std::sync::atomic::AtomicBool::new(true),
    };
    let worker = worker_sending_to(queues, vec![], config(&[]));
    let not_after = assignment_worker::messages::rfc3339(
        time::OffsetDateTime::now_utc() + time::Duration::hours(2),
    );
    let grant = assignment_request(
        "create",
        "TEMP-DUP",
        &[
            ("notAfter", &not_after),
            ("requestedAt", "2026-11-29T11:00:00Z"),
        ],
    );
    let first = invoke(&worker, redelivered_event(&grant, "m-a", 1)).await;
    assert_eq!(failures(&first), ["m-a"], "left for redelivery");
    worker.queues.refuse_outcomes.store(false, Ordering::SeqCst);
    let work = |worker: &Worker<_, OutcomesRefused, _, _>| {
        worker.queues.queues.sent_to(&worker.config.work_queue)
    };
    let expiry = work(&worker).last().expect("the expiry").body.clone();
    past_the_end(&worker, record_event(&expiry, "m-exp", 1_764_496_900_000)).await;
    past_the_end(&worker, redelivered_event(&grant, "m-b", 1)).await;
    assert_eq!(
        dead_letters_sent(&worker.queues.queues, &worker.config),
        Vec::<String>::new(),
        "the duplicate, come after the grant was carried out and ended, is not `expired`"
    );
    let second_expiry = work(&worker)
        .last()
        .expect("the duplicate's expiry")
        .body
        .clone();
    assert_eq!(
        body_json_text(&second_expiry)["progress"]["purpose"],
        "expiry"
    );
    past_the_end(
        &worker,
        record_event(&second_expiry, "m-exp-2", 1_764_496_900_000),
    )
    .await;
    assert_eq!(
        worker.ledger.items().pop().map(|item| item.state),
        Some(RecordedState::Revoked)
    );
    past_the_end(&worker, redelivered_event(&grant, "m-a", 2)).await;
    let outcomes: Vec<OutgoingMessage> = worker
        .queues
        .queues
        .sent()
        .iter()
        .filter(|sent| sent.queue == OUTCOMES)
        .map(|sent| sent.message.clone())
        .collect();
    assert_eq!(
        request_outcomes(&outcomes).last().map(String::as_str),
        Some("succeeded")
    );
}

/// The classes of the dead letters `queues` stored.
fn dead_letters_sent(queues: &RecordingQueues, config: &Config) -> Vec<String> {
    queues
        .sent_to(&config.dead_letter_queue)
        .iter()
        .map(|m| m.attribute("ErrorClass").unwrap_or_default().to_owned())
        .collect()
}

/// A grant refused for good (never carried out) whose expiry took back whatever an
/// earlier grant gave is not recorded `revoked`: a copy of its record delivered after
/// it is refused `expired` as before, not reported `succeeded`.
#[tokio::test]
async fn a_grant_never_carried_out_is_not_reported_succeeded_after_its_expiry() {
    let worker = worker(
        vec![error(ErrorKind::AccessDenied, "AccessDeniedException")],
        config(&[]),
    );
    let grant = assignment_request(
        "create",
        "TEMP-REFUSED",
        &[("notAfter", &two_hours_ahead())],
    );
    invoke(&worker, redelivered_event(&grant, "m-refused", 1)).await;
    assert_eq!(dead_letters(&worker, "ErrorClass"), ["permanent"]);
    let expiry = last_work_body(&worker);
    past_the_end(
        &worker,
        record_event(&expiry, "m-refused-exp", 1_764_496_900_000),
    )
    .await;
    assert_ne!(
        worker.ledger.items().pop().map(|item| item.state),
        Some(RecordedState::Revoked)
    );
    past_the_end(&worker, redelivered_event(&grant, "m-refused", 2)).await;
    let outcome_queue = worker.config.outcome_queue.clone().expect("outcome queue");
    assert_eq!(
        request_outcomes(&worker.queues.sent_to(&outcome_queue)),
        ["dead-lettered permanent", "dead-lettered expired"]
    );
}

/// A retry of the grant's first chain (its create throttled) comes due after a copy of
/// its record carried the grant out and the expiry took it back: it reports the grant
/// `succeeded`, with no call, not `expired` (it was delivered once: no copy of a chain,
/// but a sibling of the one that carried the decision out).
#[tokio::test]
async fn a_retry_due_after_a_sibling_chain_carried_the_grant_out_and_it_ended_is_not_expired() {
    let (worker, retry) = a_throttled_grant_carried_out_by_a_copy("TEMP-BACKOFF").await;
    let expiry = last_work_body(&worker);
    past_the_end(&worker, record_event(&expiry, "m-exp", 1_764_496_900_000)).await;
    let calls = worker.identity_center.calls().len();
    past_the_end(&worker, record_event(&retry, "m-retry", 1_764_000_000_000)).await;
    let outcome_queue = worker.config.outcome_queue.clone().expect("outcome queue");
    assert_eq!(
        request_outcomes(&worker.queues.sent_to(&outcome_queue)),
        ["succeeded", "succeeded"]
    );
    assert_eq!(worker.identity_center.calls().len(), calls, "no call");
}

/// As above, the retry come due after `notAfter` but before the expiry took the access
/// back (the grant still recorded `present`): it reports the grant `succeeded`, not
/// `expired`.
#[tokio::test]
async fn a_retry_due_after_not_after_before_the_expiry_confirms_is_not_expired() {
    let (worker, retry) = a_throttled_grant_carried_out_by_a_copy("TEMP-WINDOW").await;
    assert_eq!(
        worker.ledger.items().pop().map(|item| item.state),
        Some(RecordedState::Present)
    );
    let calls = worker.identity_center.calls().len();
    past_the_end(
        &worker,
        record_event(&retry, "m-window-retry", 1_764_000_000_000),
    )
    .await;
    assert_eq!(worker.identity_center.calls().len(), calls, "no call");
    let outcome_queue = worker.config.outcome_queue.clone().expect("outcome queue");
    assert_eq!(
        request_outcomes(&worker.queues.sent_to(&outcome_queue)),
        ["succeeded", "succeeded"]
    );
    let expiry = body_json_text(&last_work_body(&worker));
    assert_eq!(
        expiry["progress"]["purpose"], "expiry",
        "its expiry once more"
    );
}

/// The read before an `expired` refusal, throttled, is made again (the step repeats),
/// not skipped into a false `expired`.
#[tokio::test]
async fn a_throttled_read_before_an_expired_refusal_is_made_again() {
    let (worker, retry) = a_throttled_grant_carried_out_by_a_copy("TEMP-READ").await;
    worker.ledger.set_faults([true]);
    past_the_end(
        &worker,
        record_event(&retry, "m-read-retry", 1_764_000_000_000),
    )
    .await;
    assert_eq!(dead_letters(&worker, "ErrorClass"), Vec::<String>::new());
    let again = last_work_body(&worker);
    assert_eq!(body_json_text(&again)["progress"]["attempt"], 3, "{again}");
    past_the_end(
        &worker,
        record_event(&again, "m-read-again", 1_764_000_000_000),
    )
    .await;
    let outcome_queue = worker.config.outcome_queue.clone().expect("outcome queue");
    assert_eq!(
        request_outcomes(&worker.queues.sent_to(&outcome_queue)),
        ["succeeded", "succeeded"]
    );
}

/// A timed grant whose create was throttled (its retry, returned, waits in backoff),
/// carried out by a copy of its record that SQS delivered meanwhile; the copy's expiry
/// is the last step stored.
async fn a_throttled_grant_carried_out_by_a_copy(correlation_id: &str) -> (TestWorker, String) {
    let worker = worker(
        vec![error(ErrorKind::RateLimited, "ThrottlingException")],
        config(&[]),
    );
    let grant = assignment_request(
        "create",
        correlation_id,
        &[("notAfter", &two_hours_ahead())],
    );
    invoke(&worker, redelivered_event(&grant, "m-throttled", 1)).await;
    let retry = last_work_body(&worker);
    assert_eq!(body_json_text(&retry)["progress"]["attempt"], 2);
    invoke(&worker, redelivered_event(&grant, "m-throttled", 2)).await;
    (worker, retry)
}
