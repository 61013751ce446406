//! A progress envelope is not trusted more than a fresh request (SPEC §4): anyone who
//! may send to the work queue can write one. A poll's answer about another assignment
//! is no success, and a poll chain whose `submittedAt` or poll count the worker cannot
//! have written ends at once, without an AWS call.

use std::collections::HashMap;

use assignment_worker::adapters::memory::MemoryServiceCatalog;
use assignment_worker::adapters::memory::{MemoryLedger, RecordingQueues, ScriptedIdentityCenter};
use assignment_worker::config::Config;
use assignment_worker::handler::{Worker, function_handler};
use assignment_worker::identity_center::{
    CallResult, OperationStatus, OperationSubject, StatusReport,
};
use assignment_worker::ledger::{
    AccessDecision, DecisionOrder, Intent, Ledger, LedgerKey, RecordedState,
};
use assignment_worker::lifecycle::{
    self, AWS_CLOCK_SKEW, Decision, ErrorClass, MAX_CLOCK_SKEW, Policy, check_envelope, decide,
    max_polls, poll_delay_seconds,
};
use assignment_worker::progress::{DecisionStamp, Progress, Stage};
use assignment_worker::queue::OutgoingMessage;
use assignment_worker::request::AssignmentAction::{self, Create, Delete};
use assignment_worker::request::parse_request;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use proptest::prelude::*;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime, macros::datetime};

const WORK: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/assignment-work";
const DLQ: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/assignment-dlq";
const OUTCOMES: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/assignment-outcomes";
const INSTANCE: &str = "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40";
const PERMISSION_SET: &str =
    "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b";
const OTHER_PERMISSION_SET: &str =
    "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-9f8e7d6c5b4a3f2e";
const ACCOUNT: &str = "111122223333";
const PRINCIPAL: &str = "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10";
const OTHER_PRINCIPAL: &str = "9067a1b2c3-11111111-2222-4333-8444-555555555555";
/// Another request's operation, named by the forged envelope.
const OPERATION: &str = "7c1e3f0a-9b2d-4e5f-8a6b-0c1d2e3f4a5b";

fn config() -> Config {
    let env: HashMap<&str, &str> = HashMap::from([
        ("WORK_QUEUE_URL", WORK),
        ("DEAD_LETTER_QUEUE_URL", DLQ),
        ("OUTCOME_QUEUE_URL", OUTCOMES),
        ("LEDGER_TABLE", "assignment-ledger"),
    ]);
    Config::from_lookup(|name| env.get(name).map(|v| (*v).to_owned())).expect("valid")
}

fn worker(
    script: Vec<CallResult>,
) -> Worker<ScriptedIdentityCenter, RecordingQueues, MemoryLedger, MemoryServiceCatalog> {
    Worker {
        service_catalog: MemoryServiceCatalog::default(),
        ledger: MemoryLedger::default(),
        identity_center: ScriptedIdentityCenter::new(script),
        queues: RecordingQueues::default(),
        config: config(),
    }
}

fn request(action: &str) -> Value {
    json!({
        "action": action, "instanceArn": INSTANCE, "permissionSetArn": PERMISSION_SET,
        "targetId": ACCOUNT, "principalType": "USER", "principalId": PRINCIPAL,
        "correlationId": "FORGED-1",
    })
}

/// A poll envelope for `action`, as anyone with SendMessage on the work queue can write.
fn poll_envelope(action: &str, polls: u32, submitted_at: OffsetDateTime) -> String {
    let at = assignment_worker::messages::rfc3339(submitted_at);
    json!({
        "request": request(action),
        "progress": {"step": "poll", "operation": action, "operationRequestId": OPERATION,
                     "attempt": 1, "polls": polls, "firstReceivedAt": at, "submittedAt": at},
    })
    .to_string()
}

fn event(body: &str) -> SqsEvent {
    serde_json::from_value(json!({"Records": [{
        "messageId": "m-forged", "receiptHandle": "rh", "body": body,
        "attributes": {"SentTimestamp": "1763785200000", "ApproximateReceiveCount": "1"},
        "messageAttributes": {}, "eventSource": "aws:sqs",
    }]}))
    .expect("an SQS event")
}

/// Runs one record; returns what went to the dead-letter and outcome queues.
async fn run(
    worker: &Worker<ScriptedIdentityCenter, RecordingQueues, MemoryLedger, MemoryServiceCatalog>,
    body: &str,
) -> (Vec<OutgoingMessage>, Vec<Value>) {
    let response = function_handler(worker, LambdaEvent::new(event(body), Context::default()))
        .await
        .expect("a batch response");
    assert!(response.batch_item_failures.is_empty());
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    let outcomes = worker
        .queues
        .sent_to(worker.config.outcome_queue.as_ref().expect("configured"))
        .iter()
        .map(|m| serde_json::from_str(&m.body).expect("JSON"))
        .collect();
    (dead, outcomes)
}

fn answer(status: OperationStatus, reason: Option<&str>, subject: OperationSubject) -> CallResult {
    Ok(StatusReport {
        created_at: None,
        status,
        request_id: Some(OPERATION.to_owned()),
        failure_reason: reason.map(str::to_owned),
        subject,
    })
}

fn subject(permission_set: &str, principal: &str) -> OperationSubject {
    OperationSubject {
        target_id: Some(ACCOUNT.to_owned()),
        target_type: Some("AWS_ACCOUNT".to_owned()),
        permission_set_arn: Some(permission_set.to_owned()),
        principal_type: Some("USER".to_owned()),
        principal_id: Some(principal.to_owned()),
    }
}

#[tokio::test]
async fn a_poll_answer_about_another_assignment_claims_no_outcome() {
    let other_account = OperationSubject {
        target_id: Some("999988887777".to_owned()),
        ..subject(PERMISSION_SET, PRINCIPAL)
    };
    let group = OperationSubject {
        principal_type: Some("GROUP".to_owned()),
        ..subject(PERMISSION_SET, PRINCIPAL)
    };
    // Every field AWS may leave out must be there: a poll cannot vouch for what it
    // does not name.
    let no_principal = OperationSubject {
        principal_id: None,
        ..subject(PERMISSION_SET, PRINCIPAL)
    };
    let missing = "EntitlementItem doesn't exist";
    let cases = [
        (
            "create",
            OperationStatus::Succeeded,
            None,
            other_account,
            "TargetId",
        ),
        (
            "create",
            OperationStatus::Succeeded,
            None,
            subject(OTHER_PERMISSION_SET, PRINCIPAL),
            "PermissionSetArn",
        ),
        (
            "create",
            OperationStatus::InProgress,
            None,
            group,
            "PrincipalType",
        ),
        (
            "delete",
            OperationStatus::Succeeded,
            None,
            subject(PERMISSION_SET, OTHER_PRINCIPAL),
            "PrincipalId",
        ),
        (
            "delete",
            OperationStatus::Failed,
            Some(missing),
            subject(OTHER_PERMISSION_SET, PRINCIPAL),
            "PermissionSetArn",
        ),
        (
            "delete",
            OperationStatus::Succeeded,
            None,
            no_principal,
            "PrincipalId",
        ),
    ];
    let now = OffsetDateTime::now_utc();
    for (action, status, reason, reported, field) in cases {
        let worker = worker(vec![answer(status, reason, reported)]);
        let (dead, outcomes) = run(&worker, &poll_envelope(action, 1, now)).await;
        let case = format!("{action} {status:?} about another {field}");
        assert_eq!(dead.len(), 1, "{case}");
        assert_eq!(dead[0].attribute("ErrorClass"), Some("permanent"), "{case}");
        assert_eq!(
            dead[0].attribute("ErrorCode"),
            Some("OperationMismatch"),
            "{case}"
        );
        assert_eq!(
            dead[0].attribute("OperationRequestId"),
            Some(OPERATION),
            "{case}"
        );
        let message = dead[0].attribute("ErrorMessage").unwrap_or_default();
        assert!(message.contains(field), "{case}: {message}");
        assert_eq!(outcomes.len(), 1, "{case}");
        assert_eq!(outcomes[0]["outcome"], "dead-lettered", "{case}");
        assert!(
            worker.queues.sent_to(&worker.config.work_queue).is_empty(),
            "{case}: the chain ends"
        );
    }
}

#[tokio::test]
async fn a_poll_answer_about_the_requests_own_assignment_still_succeeds() {
    let worker = worker(vec![answer(
        OperationStatus::Succeeded,
        None,
        subject(PERMISSION_SET, PRINCIPAL),
    )]);
    let (dead, outcomes) = run(
        &worker,
        &poll_envelope("create", 1, OffsetDateTime::now_utc()),
    )
    .await;
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!(outcomes[0]["outcome"], "succeeded");
}

/// A poll answered about an older operation of the request's own assignment is not
/// believed, but that older change's access may stand: behind a later revoke recorded
/// in the ledger, the worker undoes it toward the revoke (a delete), where an answer
/// about another assignment's operation leaves only a dead letter.
#[tokio::test]
async fn an_older_operation_of_the_assignment_is_undone_toward_a_later_revoke() {
    let submitted_at = OffsetDateTime::now_utc();
    let older = |principal: &str| -> CallResult {
        Ok(StatusReport {
            created_at: Some(submitted_at - Duration::days(30)),
            status: OperationStatus::Succeeded,
            request_id: Some(OPERATION.to_owned()),
            failure_reason: None,
            subject: subject(PERMISSION_SET, principal),
        })
    };
    let parsed = parse_request(&request("create").to_string()).expect("valid");
    let (_, assignment) = parsed.assignment().expect("an assignment");
    let key = LedgerKey::assignment(assignment);
    let later_revoke = AccessDecision {
        order: DecisionOrder {
            requested_at: submitted_at + Duration::minutes(1),
            intent: Intent::Revoke,
            correlation_id: Some("REVOKE-1".to_owned()),
            first_message_id: "m-revoke".to_owned(),
        },
        not_after: None,
    };
    for (answered, undone) in [(PRINCIPAL, true), (OTHER_PRINCIPAL, false)] {
        let worker = worker(vec![older(answered)]);
        worker
            .ledger
            .claim(&key, &later_revoke, RecordedState::Pending, submitted_at)
            .await
            .expect("claim");
        let (dead, _) = run(&worker, &poll_envelope("create", 1, submitted_at)).await;
        let steps: Vec<Value> = worker
            .queues
            .sent_to(&worker.config.work_queue)
            .iter()
            .map(|m| serde_json::from_str(&m.body).expect("JSON"))
            .collect();
        let undo = steps.iter().any(|step| {
            step["progress"]["purpose"] == "undo" && step["progress"]["operation"] == "delete"
        });
        assert_eq!(undo, undone, "{answered}: {steps:?}");
        if undone {
            assert!(dead.is_empty(), "{dead:?}");
        } else {
            let [dead] = dead.as_slice() else {
                panic!("one dead letter, not {dead:?}");
            };
            assert_eq!(dead.attribute("ErrorCode"), Some("OperationMismatch"));
        }
    }
}

#[tokio::test]
async fn a_poll_envelope_submitted_in_the_future_ends_at_once_without_a_call() {
    let worker = worker(vec![answer(
        OperationStatus::InProgress,
        None,
        subject(PERMISSION_SET, PRINCIPAL),
    )]);
    let future = OffsetDateTime::now_utc() + Duration::days(3650);
    let (dead, outcomes) = run(&worker, &poll_envelope("create", 0, future)).await;
    assert!(worker.identity_center.calls().is_empty());
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attribute("ErrorClass"), Some("invalid-request"));
    assert_eq!(dead[0].attribute("ErrorCode"), Some("SubmittedAtInFuture"));
    // No poll was made (SPEC §7: the attempts made on the failing step).
    assert_eq!(dead[0].attribute("Attempts"), Some("0"));
    assert_eq!(outcomes[0]["outcome"], "dead-lettered");
    assert!(worker.queues.sent_to(&worker.config.work_queue).is_empty());
}

#[tokio::test]
async fn a_poll_count_no_chain_can_reach_ends_at_once_without_a_call() {
    let worker = worker(vec![answer(
        OperationStatus::InProgress,
        None,
        subject(PERMISSION_SET, PRINCIPAL),
    )]);
    let impossible = max_polls(&worker.config.policy) + 1;
    let (dead, _) = run(
        &worker,
        &poll_envelope("delete", impossible, OffsetDateTime::now_utc()),
    )
    .await;
    assert!(worker.identity_center.calls().is_empty());
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attribute("ErrorClass"), Some("invalid-request"));
    assert_eq!(dead[0].attribute("ErrorCode"), Some("PollCountImpossible"));
}

// ---- the pure checks ----

const T0: OffsetDateTime = datetime!(2026-11-22 04:00:00 UTC);

fn polling(action: AssignmentAction, polls: u32, submitted_at: OffsetDateTime) -> Progress {
    let stamp = DecisionStamp {
        requested_at: T0,
        first_message_id: "m-1".to_owned(),
    };
    let start = Progress::start(action, T0, stamp);
    let report = answer(
        OperationStatus::InProgress,
        None,
        OperationSubject::default(),
    );
    let Decision::Continue { mut progress, .. } =
        decide(&start, &report, submitted_at, &Policy::default(), 0.5)
    else {
        panic!("IN_PROGRESS at submit leads to a poll");
    };
    if let Stage::Poll { polls: p, .. } = &mut progress.stage {
        *p = polls;
    }
    progress
}

#[test]
fn the_default_schedule_allows_nineteen_polls() {
    // Delays 3, 6, 12, 24, 48, then 60 s: the 19th poll (polls = 18) comes 933 s after
    // the submit at the earliest, past 900 s but within the minute of clock skew; its
    // next delay is cut to land on the deadline as that clock reads it (960 s).
    let policy = Policy::default();
    let earliest: u32 = (0..=18).map(|n| poll_delay_seconds(n, &policy)).sum();
    assert_eq!(earliest, 933);
    assert_eq!(max_polls(&policy), 19);
}

#[test]
fn submitted_at_within_the_clock_skew_is_accepted_and_beyond_it_refused() {
    let policy = Policy::default();
    let just_inside = polling(Create, 0, T0 + MAX_CLOCK_SKEW);
    assert_eq!(check_envelope(&just_inside, T0, &policy), None);
    let beyond = polling(Delete, 0, T0 + MAX_CLOCK_SKEW + Duration::seconds(1));
    let refused = check_envelope(&beyond, T0, &policy).expect("refused");
    assert_eq!(refused.class, ErrorClass::InvalidRequest);
    assert_eq!(refused.code, "SubmittedAtInFuture");
    assert_eq!(refused.operation_request_id.as_deref(), Some(OPERATION));
}

#[test]
fn the_poll_count_bound_is_exact() {
    let policy = Policy::default();
    let most = max_polls(&policy);
    assert_eq!(
        check_envelope(&polling(Create, most, T0), T0, &policy),
        None
    );
    let refused = check_envelope(&polling(Create, most + 1, T0), T0, &policy).expect("refused");
    assert_eq!(refused.code, "PollCountImpossible");
}

#[test]
fn a_submit_answer_is_not_checked_and_a_poll_answer_is() {
    let assignment = parse_request(&request("create").to_string()).expect("valid");
    let (_, assignment) = assignment.assignment().expect("an assignment");
    let stamp = DecisionStamp {
        requested_at: T0,
        first_message_id: "m-1".to_owned(),
    };
    let other = answer(
        OperationStatus::Succeeded,
        None,
        subject(OTHER_PERMISSION_SET, PRINCIPAL),
    );
    let submit = Progress::start(Create, T0, stamp);
    assert_eq!(
        lifecycle::check_operation_subject(&submit, &other, assignment),
        None
    );
    let poll = polling(Create, 0, T0);
    let refused = lifecycle::check_operation_subject(&poll, &other, assignment).expect("refused");
    assert_eq!(refused.class, ErrorClass::Permanent);
    assert_eq!(refused.code, "OperationMismatch");
    let own = answer(
        OperationStatus::Succeeded,
        None,
        OperationSubject::of(assignment),
    );
    assert_eq!(
        lifecycle::check_operation_subject(&poll, &own, assignment),
        None
    );
}

/// A poll's answer names the operation it is about and when AWS created it: an answer
/// about another operation id, or about one created before this request's submit (an
/// old create of the same assignment that a forged envelope names), is no answer about
/// this request, and claims no outcome.
#[test]
fn a_poll_answer_about_another_or_an_older_operation_is_refused() {
    let assignment = parse_request(&request("create").to_string()).expect("valid");
    let (_, assignment) = assignment.assignment().expect("an assignment");
    let own = OperationSubject::of(assignment);
    let poll = polling(Create, 0, T0);
    let with = |request_id: &str, created_at: Option<OffsetDateTime>| -> CallResult {
        Ok(StatusReport {
            created_at,
            status: OperationStatus::Succeeded,
            request_id: Some(request_id.to_owned()),
            failure_reason: None,
            subject: own.clone(),
        })
    };
    let believed = [
        with(OPERATION, Some(T0)),
        with(OPERATION, None),
        // The submitting clock may run ahead of AWS's by as much as AWS accepts.
        with(OPERATION, Some(T0 - AWS_CLOCK_SKEW)),
    ];
    for answer in &believed {
        assert_eq!(
            lifecycle::check_operation_subject(&poll, answer, assignment),
            None,
            "{answer:?}"
        );
    }
    let older_of_another_principal = {
        let mut answer = with(OPERATION, Some(T0 - Duration::days(30)));
        if let Ok(report) = &mut answer {
            report.subject.principal_id = Some(OTHER_PRINCIPAL.to_owned());
        }
        answer
    };
    // About another operation, or another assignment: it says nothing of this request.
    let another = [
        with("00000000-1111-4222-8333-444444444444", Some(T0)),
        older_of_another_principal,
    ];
    for answer in &another {
        let dead = lifecycle::check_operation_subject(&poll, answer, assignment).expect("refused");
        assert_eq!(dead.class, ErrorClass::Permanent, "{answer:?}");
        assert_eq!(dead.code, "OperationMismatch", "{answer:?}");
        assert!(!lifecycle::may_have_taken_effect(&poll, &dead));
    }
    // About an older change of this same assignment: not this request's answer, but the
    // access that change gave may stand (and, were AWS's CreatedDate ever not the
    // operation's, this request's own create did it), so it is treated as a change that
    // may have landed: a later revoke is carried out over it.
    let older = [
        with(OPERATION, Some(T0 - AWS_CLOCK_SKEW - Duration::seconds(1))),
        with(OPERATION, Some(T0 - Duration::days(30))),
    ];
    for answer in &older {
        let dead = lifecycle::check_operation_subject(&poll, answer, assignment).expect("refused");
        assert_eq!(dead.class, ErrorClass::Permanent, "{answer:?}");
        assert_eq!(dead.code, "OperationBeforeSubmit", "{answer:?}");
        assert!(lifecycle::may_have_taken_effect(&poll, &dead));
    }
}

fn policy() -> impl Strategy<Value = Policy> {
    (1u32..1200, 1u32..10, 0u32..5).prop_map(|(deadline, initial, extra)| Policy {
        poll_deadline_seconds: deadline,
        poll_initial_delay_seconds: initial,
        poll_max_delay_seconds: initial + extra * 30,
        ..Policy::default()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The checks never refuse what the worker itself writes: a chain that stays
    /// IN_PROGRESS, each poll received exactly when its delay ends (the earliest SQS
    /// allows), on a clock up to the skew behind the submitting one.
    #[test]
    fn genuine_poll_chains_pass_the_envelope_checks(
        policy in policy(),
        delete in any::<bool>(),
        behind in 0i64..=60,
    ) {
        let action = if delete { Delete } else { Create };
        let in_progress = answer(OperationStatus::InProgress, None, OperationSubject::default());
        let stamp = DecisionStamp { requested_at: T0, first_message_id: "m-1".to_owned() };
        let mut progress = Progress::start(action, T0, stamp);
        // The submitting instance's clock is right; every later one is `behind`.
        let mut true_time = T0;
        let mut clock = T0;
        for _ in 0..10_000 {
            match decide(&progress, &in_progress, clock, &policy, 0.5) {
                Decision::Continue { progress: next, delay_seconds } => {
                    true_time += Duration::seconds(i64::from(delay_seconds));
                    clock = true_time - Duration::seconds(behind);
                    prop_assert_eq!(check_envelope(&next, clock, &policy), None, "{:?}", next.stage);
                    progress = next;
                }
                Decision::DeadLetter(dead) => {
                    prop_assert_eq!(dead.class, ErrorClass::TimedOut);
                    return Ok(());
                }
                Decision::Done { .. } => prop_assert!(false, "IN_PROGRESS never completes"),
            }
        }
        prop_assert!(false, "no end after 10000 polls");
    }
}

#[tokio::test]
async fn an_expiry_step_of_a_grant_without_not_after_makes_no_call() {
    // The worker writes expiry steps only for grants with notAfter, and leaves the wait
    // only at notAfter: past the wait, such a step is not the worker's either.
    let worker = worker(vec![answer(
        OperationStatus::Succeeded,
        None,
        subject(PERMISSION_SET, PRINCIPAL),
    )]);
    let now = assignment_worker::messages::rfc3339(OffsetDateTime::now_utc());
    let forged = json!({
        "request": request("create"),
        "progress": {"step": "submit", "operation": "delete", "purpose": "expiry",
                     "attempt": 1, "firstReceivedAt": now},
    })
    .to_string();
    let (dead, outcomes) = run(&worker, &forged).await;
    assert!(worker.identity_center.calls().is_empty());
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attribute("ErrorClass"), Some("invalid-request"));
    assert_eq!(dead[0].attribute("ErrorCode"), Some("BadEnvelope"));
    assert!(
        outcomes.iter().all(|o| o["outcome"] == "dead-lettered"),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn an_expiry_undo_step_belongs_to_a_grant_with_not_after() {
    // The worker starts an expiry-undo only from a grant's expiry: on a revoke, or on a
    // grant without notAfter, it would report an expiry that never was.
    let worker = worker(vec![]);
    let now = assignment_worker::messages::rfc3339(OffsetDateTime::now_utc());
    for action in ["delete", "create"] {
        let forged = json!({
            "request": request(action),
            "progress": {"step": "submit", "operation": "delete", "purpose": "expiry-undo",
                         "attempt": 1, "firstReceivedAt": now,
                         "supersededBy": {"requestedAt": now}},
        })
        .to_string();
        let (dead, _) = run(&worker, &forged).await;
        let last = dead.last().expect("a dead letter");
        assert_eq!(last.attribute("ErrorCode"), Some("BadEnvelope"), "{action}");
    }
    assert!(worker.identity_center.calls().is_empty());
}
