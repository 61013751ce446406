//! The lifecycle state machine against every row of SPEC §3, and its invariants
//! under arbitrary sequences of AWS answers.

use assignment_worker::identity_center::{
    CallError, CallResult, ErrorKind, OperationStatus, StatusReport,
};
use assignment_worker::ledger::DecisionSummary;
use assignment_worker::ledger::Intent;
use assignment_worker::lifecycle::{
    Completion, DeadLetter, Decision, ErrorClass, MAX_DELAY_SECONDS, NOT_YET_VISIBLE_POLLS, Policy,
    backoff_seconds, check_expiry, decide, expiry_wait, may_have_taken_effect, poll_delay_seconds,
    records_failed, redelivered_submit, sent_after_not_after,
};
use assignment_worker::progress::{DecisionStamp, Progress, Purpose, Stage, UndoReport};
use assignment_worker::request::AssignmentAction::{self, Create, Delete};
use proptest::prelude::*;
use time::{Duration, OffsetDateTime, macros::datetime};

const T0: OffsetDateTime = datetime!(2026-11-22 04:00:00 UTC);
const REQUEST_ID: &str = "b5f9c1d2-3e4f-4a5b-8c6d-7e8f9a0b1c2d";

fn status(status: OperationStatus, reason: Option<&str>) -> CallResult {
    Ok(StatusReport {
        created_at: None,
        status,
        request_id: Some(REQUEST_ID.to_owned()),
        failure_reason: reason.map(str::to_owned),
        subject: Default::default(),
    })
}

fn error(kind: ErrorKind, code: &str, message: &str) -> CallResult {
    Err(CallError {
        kind,
        code: code.to_owned(),
        message: message.to_owned(),
    })
}

fn stamp() -> DecisionStamp {
    DecisionStamp {
        requested_at: T0,
        first_message_id: "00000001-0000-4000-8000-000000000001".to_owned(),
    }
}

fn submit(action: AssignmentAction) -> Progress {
    Progress::start(action, T0, stamp())
}

/// A poll step after `polls` polls, submitted at T0.
fn polling(action: AssignmentAction, polls: u32) -> Progress {
    let after_submit = decide(
        &submit(action),
        &status(OperationStatus::InProgress, None),
        T0,
        &Policy::default(),
        0.5,
    );
    let Decision::Continue { mut progress, .. } = after_submit else {
        panic!("IN_PROGRESS at submit must lead to a poll, got {after_submit:?}");
    };
    if let Stage::Poll { polls: p, .. } = &mut progress.stage {
        *p = polls;
    }
    progress
}

fn decide_now(progress: &Progress, result: &CallResult) -> Decision {
    decide(
        progress,
        result,
        T0 + Duration::seconds(10),
        &Policy::default(),
        0.5,
    )
}

fn dead_letter_class(decision: &Decision) -> Option<ErrorClass> {
    match decision {
        Decision::DeadLetter(dead_letter) => Some(dead_letter.class),
        _ => None,
    }
}

#[test]
fn succeeded_is_done_for_submit_and_poll() {
    for action in [Create, Delete] {
        for progress in [submit(action), polling(action, 2)] {
            let decision = decide_now(&progress, &status(OperationStatus::Succeeded, None));
            assert_eq!(
                decision,
                Decision::Done {
                    completion: Completion::Succeeded,
                    operation_request_id: Some(REQUEST_ID.to_owned())
                }
            );
        }
    }
}

#[test]
fn in_progress_at_submit_schedules_the_first_poll() {
    for action in [Create, Delete] {
        let decision = decide(
            &submit(action),
            &status(OperationStatus::InProgress, None),
            T0,
            &Policy::default(),
            0.9,
        );
        let Decision::Continue {
            progress,
            delay_seconds,
        } = decision
        else {
            panic!("expected a poll, got {decision:?}");
        };
        assert_eq!(delay_seconds, 3);
        assert_eq!(progress.attempt, 1);
        assert_eq!(progress.operation(), action);
        assert_eq!(
            progress.stage,
            Stage::Poll {
                operation_request_id: REQUEST_ID.to_owned(),
                polls: 0,
                submitted_at: T0
            }
        );
    }
}

#[test]
fn in_progress_at_poll_doubles_the_delay_up_to_the_maximum() {
    let mut progress = polling(Create, 0);
    let mut delays = Vec::new();
    let mut now = T0;
    for _ in 0..7 {
        let decision = decide(
            &progress,
            &status(OperationStatus::InProgress, None),
            now,
            &Policy::default(),
            0.5,
        );
        let Decision::Continue {
            progress: next,
            delay_seconds,
        } = decision
        else {
            panic!("expected another poll, got {decision:?}");
        };
        delays.push(delay_seconds);
        now += Duration::seconds(i64::from(delay_seconds));
        progress = next;
    }
    assert_eq!(delays, [6, 12, 24, 48, 60, 60, 60]);
    assert_eq!(progress.polls(), 7);
}

#[test]
fn in_progress_past_the_deadline_is_timed_out_with_the_request_id() {
    let progress = polling(Create, 20);
    let late = T0 + Duration::seconds(900);
    let decision = decide(
        &progress,
        &status(OperationStatus::InProgress, None),
        late,
        &Policy::default(),
        0.5,
    );
    let Decision::DeadLetter(dead_letter) = decision else {
        panic!("expected timed-out, got {decision:?}");
    };
    assert_eq!(dead_letter.class, ErrorClass::TimedOut);
    assert_eq!(dead_letter.code, "IN_PROGRESS");
    assert_eq!(
        dead_letter.operation_request_id.as_deref(),
        Some(REQUEST_ID)
    );
}

#[test]
fn the_last_poll_lands_on_the_deadline() {
    let progress = polling(Create, 10);
    let now = T0 + Duration::seconds(880);
    let decision = decide(
        &progress,
        &status(OperationStatus::InProgress, None),
        now,
        &Policy::default(),
        0.5,
    );
    assert!(
        matches!(
            decision,
            Decision::Continue {
                delay_seconds: 20,
                ..
            }
        ),
        "{decision:?}"
    );
}

#[test]
fn describe_not_found_right_after_submit_is_polled_again_three_times() {
    let not_found = error(
        ErrorKind::ResourceNotFound,
        "ResourceNotFoundException",
        "request not found",
    );
    for action in [Create, Delete] {
        for polls in 0..NOT_YET_VISIBLE_POLLS {
            let decision = decide_now(&polling(action, polls), &not_found);
            let Decision::Continue { progress, .. } = decision else {
                panic!("poll {polls}: expected another poll, got {decision:?}");
            };
            assert_eq!(progress.polls(), polls + 1);
            assert_eq!(progress.step_name(), "poll");
        }
        let decision = decide_now(&polling(action, NOT_YET_VISIBLE_POLLS), &not_found);
        assert_eq!(dead_letter_class(&decision), Some(ErrorClass::Permanent));
    }
}

#[test]
fn delete_of_a_missing_assignment_is_already_satisfied() {
    let not_found = error(
        ErrorKind::ResourceNotFound,
        "ResourceNotFoundException",
        "not found",
    );
    assert!(matches!(
        decide_now(&submit(Delete), &not_found),
        Decision::Done {
            completion: Completion::AlreadySatisfied,
            ..
        }
    ));
    let reason =
        "Received a 404 status error: EntitlementItem doesn't exist for the given principal";
    // The same reason worded otherwise: a typographic apostrophe, "does not", a break.
    let reworded = [
        "Received a 404 status error: EntitlementItem doesn\u{2019}t exist",
        "Received a 404 status error: EntitlementItem does not exist",
        "Received a 404 status error: EntitlementItem\n  doesn't exist",
    ];
    for reason in std::iter::once(reason).chain(reworded) {
        for progress in [submit(Delete), polling(Delete, 1)] {
            assert!(
                matches!(
                    decide_now(&progress, &status(OperationStatus::Failed, Some(reason))),
                    Decision::Done {
                        completion: Completion::AlreadySatisfied,
                        ..
                    }
                ),
                "{reason}"
            );
        }
    }
    // The same reason on a create is a real failure.
    let decision = decide_now(
        &polling(Create, 1),
        &status(OperationStatus::Failed, Some(reason)),
    );
    assert_eq!(dead_letter_class(&decision), Some(ErrorClass::Failed));
}

#[test]
fn failed_with_any_other_reason_is_dead_lettered_with_the_reason() {
    let reason = "the USER assignee 9067a1b2c3-... was not found in directory";
    for progress in [submit(Create), polling(Create, 3), polling(Delete, 0)] {
        let decision = decide_now(&progress, &status(OperationStatus::Failed, Some(reason)));
        let Decision::DeadLetter(dead_letter) = decision else {
            panic!("expected failed, got {decision:?}");
        };
        assert_eq!(dead_letter.class, ErrorClass::Failed);
        assert_eq!(dead_letter.code, "FAILED");
        assert_eq!(dead_letter.message, reason);
        assert_eq!(
            dead_letter.operation_request_id.as_deref(),
            Some(REQUEST_ID)
        );
    }
}

/// A submit delivered again (or a poll of its operation) may follow an earlier submit
/// that took effect unanswered: its FAILED is asked of Identity Center once more by
/// submitting again, and that submit's own FAILED is final.
#[test]
fn failed_after_a_possibly_carried_out_submit_is_submitted_once_more() {
    let failed = status(OperationStatus::Failed, Some("Internal failure"));
    let mut again = submit(Create);
    again.maybe_submitted = redelivered_submit(&again, 2, true);
    assert!(again.maybe_submitted);
    let mut poll = polling(Create, 2);
    poll.maybe_submitted = true;
    for progress in [again, poll] {
        let decision = decide_now(&progress, &failed);
        let Decision::Continue {
            progress: next,
            delay_seconds,
        } = decision
        else {
            panic!("expected a resubmit, got {decision:?}");
        };
        assert_eq!(next.stage, Stage::Submit);
        assert_eq!((next.attempt, delay_seconds), (1, 0));
        assert!(next.maybe_submitted && next.resubmitted_after_failure);
        assert_eq!(
            dead_letter_class(&decide_now(&next, &failed)),
            Some(ErrorClass::Failed)
        );
        // The resubmit's poll still knows it.
        let Decision::Continue { progress: poll, .. } =
            decide_now(&next, &status(OperationStatus::InProgress, None))
        else {
            panic!("IN_PROGRESS leads to a poll");
        };
        assert_eq!(
            dead_letter_class(&decide_now(&poll, &failed)),
            Some(ErrorClass::Failed)
        );
    }
}

/// A revoke the worker owes (an expiry's delete, an undo's of a grant) is submitted
/// once more after a FAILED too, at its submit or its poll; a requested change's
/// FAILED (SPEC §3) and an undo's create (which restores access) are final.
#[test]
fn only_a_revoke_the_worker_owes_is_submitted_once_more_after_a_first_failed() {
    let failed = status(OperationStatus::Failed, Some("Internal failure"));
    let undo = Purpose::Undo {
        superseded_by: DecisionSummary {
            correlation_id: Some("REVOKE-R".to_owned()),
            requested_at: "2026-11-29T10:00:02Z".to_owned(),
        },
        reports: UndoReport::Request,
    };
    let cases = [
        (Purpose::Expiry, Delete, true),
        (undo.clone(), Delete, true),
        (undo, Create, false),
        (Purpose::Decision, Delete, false),
        (Purpose::Decision, Create, false),
    ];
    for (purpose, action, once_more) in cases {
        for mut progress in [submit(action), polling(action, 2)] {
            progress.purpose = purpose.clone();
            let decision = decide_now(&progress, &failed);
            let Decision::Continue { progress: next, .. } = &decision else {
                assert!(!once_more, "{purpose:?} {action:?}: {decision:?}");
                assert_eq!(dead_letter_class(&decision), Some(ErrorClass::Failed));
                continue;
            };
            assert!(once_more, "{purpose:?} {action:?}: {decision:?}");
            assert_eq!((next.stage.clone(), next.attempt), (Stage::Submit, 1));
            assert!(next.resubmitted_after_failure && !next.maybe_submitted);
            assert_eq!(
                dead_letter_class(&decide_now(next, &failed)),
                Some(ErrorClass::Failed),
                "{purpose:?} {action:?}: once more, not a loop"
            );
        }
    }
}

/// The one more submit belongs to one operation: an expiry that goes back to waiting
/// (its check met a later grant with a later end) revokes afresh when that end comes.
#[test]
fn an_expiry_back_to_its_wait_forgets_its_one_more_submit() {
    let mut expiry = submit(Delete);
    expiry.purpose = Purpose::Expiry;
    expiry.resubmitted_after_failure = true;
    let Some(Decision::Continue { progress, .. }) =
        expiry_wait(&expiry, T0 + Duration::hours(1), T0)
    else {
        panic!("an end an hour away is waited for");
    };
    assert_eq!(progress.stage, Stage::ExpireWait);
    assert!(!progress.resubmitted_after_failure);
}

#[test]
fn only_a_redelivered_submit_past_its_claim_may_have_been_submitted() {
    assert!(!redelivered_submit(&submit(Create), 1, true));
    assert!(redelivered_submit(&submit(Delete), 3, true));
    // Refused before its claim, the earlier delivery made no call.
    assert!(!redelivered_submit(&submit(Create), 2, false));
    // A poll knows its operation: a second delivery of it submits nothing.
    assert!(!redelivered_submit(&polling(Create, 1), 2, true));
}

#[test]
fn a_change_may_stand_after_a_lost_submit_a_timeout_or_an_unreadable_status() {
    let dead = |class, code: &str| DeadLetter {
        class,
        code: code.to_owned(),
        message: String::new(),
        attempts: 1,
        operation_request_id: None,
    };
    let mut lost = submit(Create);
    lost.maybe_submitted = true;
    let cases = [
        (submit(Create), dead(ErrorClass::Failed, "FAILED"), false),
        (lost.clone(), dead(ErrorClass::Failed, "FAILED"), true),
        // Refused before this step's call, after one that may have landed: a guardrail
        // tightened before the retry, a poll deadline lowered before the poll.
        (lost, dead(ErrorClass::Forbidden, "AccountNotAllowed"), true),
        (
            submit(Create),
            dead(ErrorClass::Forbidden, "AccountNotAllowed"),
            false,
        ),
        (
            polling(Create, 20),
            dead(ErrorClass::InvalidRequest, "PollCountImpossible"),
            true,
        ),
        (
            polling(Create, 9),
            dead(ErrorClass::TimedOut, "IN_PROGRESS"),
            true,
        ),
        (
            submit(Create),
            dead(ErrorClass::Exhausted, "ThrottlingException"),
            true,
        ),
        (
            submit(Create),
            dead(ErrorClass::Permanent, "ValidationException"),
            false,
        ),
        (
            polling(Create, 3),
            dead(ErrorClass::Permanent, "ResourceNotFoundException"),
            true,
        ),
        (
            polling(Create, 0),
            dead(ErrorClass::Permanent, "OperationMismatch"),
            false,
        ),
        (
            submit(Create),
            dead(ErrorClass::Expired, "NotAfterPassed"),
            false,
        ),
    ];
    for (progress, dead_letter, expected) in cases {
        assert_eq!(
            may_have_taken_effect(&progress, &dead_letter),
            expected,
            "{dead_letter:?} at {progress:?}"
        );
    }
}

const TRANSIENT: [(ErrorKind, &str, &str); 6] = [
    (
        ErrorKind::Conflict,
        "ConflictException",
        "operation in progress",
    ),
    (
        ErrorKind::RateLimited,
        "ThrottlingException",
        "Rate exceeded",
    ),
    (
        ErrorKind::Busy,
        "ThrottlingException",
        "There are too many requests processing. Please try again later.",
    ),
    (
        ErrorKind::ServerError,
        "InternalServerException",
        "internal error",
    ),
    (ErrorKind::Timeout, "Timeout", "timed out"),
    (ErrorKind::Connection, "ConnectionError", "connection reset"),
];

#[test]
fn transient_errors_repeat_the_same_step_with_backoff() {
    for (kind, code, message) in TRANSIENT {
        for progress in [submit(Create), polling(Delete, 2)] {
            let decision = decide_now(&progress, &error(kind, code, message));
            let Decision::Continue {
                progress: next,
                delay_seconds,
            } = decision
            else {
                panic!("{kind:?}: expected a retry, got {decision:?}");
            };
            assert_eq!(next.stage, progress.stage, "{kind:?}: same step");
            assert_eq!(next.attempt, progress.attempt + 1);
            assert!(delay_seconds <= MAX_DELAY_SECONDS);
            if kind == ErrorKind::Busy {
                assert!(
                    delay_seconds >= 15,
                    "busy backoff starts at 15 s, got {delay_seconds}"
                );
            }
        }
    }
}

#[test]
fn transient_errors_exhaust_the_attempt_budget() {
    let policy = Policy::default();
    for (kind, code, message) in TRANSIENT {
        let mut progress = submit(Create);
        let mut calls = 0;
        let dead_letter = loop {
            calls += 1;
            match decide(&progress, &error(kind, code, message), T0, &policy, 0.3) {
                Decision::Continue { progress: next, .. } => progress = next,
                Decision::DeadLetter(dead_letter) => break dead_letter,
                done @ Decision::Done { .. } => panic!("{kind:?}: {done:?}"),
            }
        };
        assert_eq!(calls, policy.max_attempts, "{kind:?}");
        assert_eq!(dead_letter.class, ErrorClass::Exhausted);
        assert_eq!(dead_letter.code, code);
        assert_eq!(dead_letter.attempts, policy.max_attempts);
    }
}

#[test]
fn permanent_errors_are_dead_lettered_at_once() {
    let cases = [
        (ErrorKind::Validation, "ValidationException"),
        (ErrorKind::AccessDenied, "AccessDeniedException"),
        (
            ErrorKind::ServiceQuotaExceeded,
            "ServiceQuotaExceededException",
        ),
        (ErrorKind::Rejected, "UnrecognizedClientException"),
    ];
    for (kind, code) in cases {
        for progress in [submit(Create), submit(Delete)] {
            let decision = decide_now(&progress, &error(kind, code, "no"));
            let Decision::DeadLetter(dead_letter) = decision else {
                panic!("{code}: expected permanent, got {decision:?}");
            };
            assert_eq!(dead_letter.class, ErrorClass::Permanent);
            assert_eq!(dead_letter.code, code);
            assert_eq!(dead_letter.attempts, 1);
        }
    }
    let not_found = error(
        ErrorKind::ResourceNotFound,
        "ResourceNotFoundException",
        "no such permission set",
    );
    assert_eq!(
        dead_letter_class(&decide_now(&submit(Create), &not_found)),
        Some(ErrorClass::Permanent)
    );
}

#[test]
fn not_after_refuses_only_grants_not_yet_submitted() {
    let past = Some(T0 - Duration::seconds(1));
    let future = Some(T0 + Duration::hours(1));
    let expired = check_expiry(&submit(Create), past, T0).map(|d| d.class);
    assert_eq!(expired, Some(ErrorClass::Expired));
    assert_eq!(check_expiry(&submit(Create), future, T0), None);
    assert_eq!(check_expiry(&submit(Create), None, T0), None);
    assert_eq!(
        check_expiry(&submit(Delete), past, T0),
        None,
        "revokes always go ahead"
    );
    assert_eq!(
        check_expiry(&polling(Create, 1), past, T0),
        None,
        "already submitted"
    );
}

#[test]
fn poll_schedule_and_backoff_follow_the_spec() {
    let policy = Policy::default();
    let schedule: Vec<u32> = (0..8)
        .map(|polls| poll_delay_seconds(polls, &policy))
        .collect();
    assert_eq!(schedule, [3, 6, 12, 24, 48, 60, 60, 60]);
    // Full jitter: the whole window is reachable, from 0 to base * 2^(attempt-1).
    assert_eq!(backoff_seconds(1, false, &policy, 0.0), 0);
    assert_eq!(backoff_seconds(1, false, &policy, 1.0), 2);
    assert_eq!(backoff_seconds(4, false, &policy, 1.0), 16);
    assert_eq!(backoff_seconds(30, false, &policy, 1.0), 900);
    // Busy: the same window with a floor. The outstanding creates free up within
    // seconds, so the first busy answers wait the floor, not a window grown from it.
    assert_eq!(backoff_seconds(1, true, &policy, 0.0), 15);
    assert_eq!(backoff_seconds(2, true, &policy, 1.0), 15);
    assert_eq!(backoff_seconds(3, true, &policy, 1.0), 15);
    assert_eq!(backoff_seconds(4, true, &policy, 1.0), 16);
    assert_eq!(backoff_seconds(5, true, &policy, 0.0), 15);
    assert_eq!(backoff_seconds(5, true, &policy, 1.0), 32);
    assert_eq!(backoff_seconds(30, true, &policy, 1.0), 900);
    assert_eq!(backoff_seconds(3, false, &policy, f64::NAN), 0);
}

#[test]
fn progress_round_trips_through_its_wire_format() {
    let progress = polling(Delete, 4);
    let json = serde_json::to_value(&progress).unwrap();
    assert_eq!(json["step"], "poll");
    assert_eq!(json["operation"], "delete");
    assert_eq!(json["operationRequestId"], REQUEST_ID);
    assert_eq!(json["polls"], 4);
    assert_eq!(json["submittedAt"], "2026-11-22T04:00:00Z");
    let back: Progress = serde_json::from_value(json).unwrap();
    assert_eq!(back, progress);
}

// ---- properties ----

fn call_result() -> impl Strategy<Value = CallResult> {
    let kinds = prop::sample::select(vec![
        ErrorKind::Conflict,
        ErrorKind::RateLimited,
        ErrorKind::Busy,
        ErrorKind::ServerError,
        ErrorKind::Timeout,
        ErrorKind::Connection,
        ErrorKind::Validation,
        ErrorKind::AccessDenied,
        ErrorKind::ResourceNotFound,
        ErrorKind::ServiceQuotaExceeded,
        ErrorKind::Rejected,
    ]);
    prop_oneof![
        6 => Just(status(OperationStatus::InProgress, None)),
        1 => Just(status(OperationStatus::Succeeded, None)),
        1 => Just(status(OperationStatus::Failed, Some("EntitlementItem doesn't exist"))),
        1 => Just(status(OperationStatus::Failed, Some("quota"))),
        1 => Just(Ok(StatusReport { created_at: None, status: OperationStatus::InProgress, request_id: None, failure_reason: None, subject: Default::default() })),
        4 => kinds.prop_map(|kind| error(kind, "Code", "message")),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    (1u32..12, 1u32..1200, 1u32..10, 0u32..5, 0u32..20, 0u32..30).prop_map(
        |(max_attempts, deadline, initial, extra, base, busy)| Policy {
            max_attempts,
            poll_deadline_seconds: deadline,
            poll_initial_delay_seconds: initial,
            poll_max_delay_seconds: initial + extra * 30,
            backoff_base_seconds: base,
            busy_backoff_min_seconds: busy,
        },
    )
}

/// One simulated job run to its end.
struct Run {
    decisions: Vec<Decision>,
    end: OffsetDateTime,
    submitted_at: Option<OffsetDateTime>,
}

/// Runs one job: the scripted answers (result, jitter, seconds the call takes) first,
/// then `tail` forever with calls of 1 s.
fn run(
    action: AssignmentAction,
    policy: &Policy,
    script: &[(CallResult, f64, u8)],
    tail: &CallResult,
) -> Run {
    run_from(Progress::start(action, T0, stamp()), policy, script, tail)
}

fn run_from(
    mut progress: Progress,
    policy: &Policy,
    script: &[(CallResult, f64, u8)],
    tail: &CallResult,
) -> Run {
    let mut now = T0;
    let mut decisions = Vec::new();
    let mut submitted_at = None;
    for step in 0.. {
        let (result, jitter, call_seconds) =
            script.get(step).cloned().unwrap_or((tail.clone(), 0.5, 1));
        now += Duration::seconds(i64::from(call_seconds));
        let decision = decide(&progress, &result, now, policy, jitter);
        decisions.push(decision.clone());
        match decision {
            Decision::Continue {
                progress: next,
                delay_seconds,
            } => {
                if let Stage::Poll {
                    submitted_at: at, ..
                } = next.stage
                {
                    submitted_at = Some(at);
                }
                now += Duration::seconds(i64::from(delay_seconds));
                progress = next;
            }
            _ => break,
        }
        assert!(step < 100_000, "no terminal state after 100000 calls");
    }
    Run {
        decisions,
        end: now,
        submitted_at,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_job_ends_exactly_once_within_its_budgets(
        policy in policy(),
        delete in any::<bool>(),
        receive_count in 1u32..3,
        script in prop::collection::vec((call_result(), 0.0f64..1.0, 0u8..3), 0..80),
        tail in call_result(),
    ) {
        let action = if delete { Delete } else { Create };
        let mut start = Progress::start(action, T0, stamp());
        start.maybe_submitted = redelivered_submit(&start, receive_count, true);
        let decisions = run_from(start, &policy, &script, &tail).decisions;
        let (last, before) = decisions.split_last().expect("at least one decision");
        prop_assert!(!matches!(last, Decision::Continue { .. }), "ends in a terminal state");
        prop_assert!(before.iter().all(|d| matches!(d, Decision::Continue { .. })), "exactly one terminal state");
        for decision in &decisions {
            match decision {
                Decision::Continue { delay_seconds, progress } => {
                    prop_assert!(*delay_seconds <= MAX_DELAY_SECONDS);
                    prop_assert!(progress.attempt <= policy.max_attempts, "never past the attempt budget");
                }
                Decision::DeadLetter(dead_letter) => prop_assert!(!dead_letter.code.is_empty()),
                Decision::Done { .. } => {}
            }
        }
        // Each poll advances time by at least a second, so there are at most
        // deadline + not-yet-visible + 1 polls, each after at most max_attempts - 1
        // transient failures, plus the submit's own budget.
        let polls_bound = u64::from(policy.poll_deadline_seconds) + u64::from(NOT_YET_VISIBLE_POLLS) + 1;
        // A delivery that may follow a lost submit resubmits once after a FAILED.
        let chains = if receive_count > 1 { 2 } else { 1 };
        let bound = chains * u64::from(policy.max_attempts) * (polls_bound + 1);
        let resubmits = decisions
            .iter()
            .filter(|d| matches!(d, Decision::Continue { progress, .. } if progress.resubmitted_after_failure && progress.stage == Stage::Submit && progress.attempt == 1))
            .count();
        prop_assert!(resubmits <= 1, "{resubmits} resubmits after a failure");
        if receive_count > 1 && last_failed_before_resubmit(&decisions) {
            prop_assert!(false, "a FAILED after a possibly lost submit was dead-lettered unasked");
        }
        prop_assert!(decisions.len() as u64 <= bound, "{} calls > bound {bound}", decisions.len());
    }

    #[test]
    fn in_progress_forever_times_out_at_the_deadline(policy in policy(), delete in any::<bool>()) {
        let action = if delete { Delete } else { Create };
        let in_progress = status(OperationStatus::InProgress, None);
        let run = run(action, &policy, &[], &in_progress);
        prop_assert_eq!(run.decisions.last().and_then(dead_letter_class), Some(ErrorClass::TimedOut));
        let submitted_at = run.submitted_at.expect("submitted");
        let waited = (run.end - submitted_at).whole_seconds();
        let deadline = i64::from(policy.poll_deadline_seconds);
        // Each call takes 1 s here: the give-up comes on the deadline, not a whole
        // poll interval past it.
        prop_assert!(waited >= deadline && waited <= deadline + 1, "waited {waited} s for a {deadline} s deadline");
    }

    #[test]
    fn transient_forever_is_exhausted_within_the_budget(
        policy in policy(),
        transient in prop::sample::select(TRANSIENT.to_vec()),
        jitter in 0.0f64..1.0,
    ) {
        let (kind, code, message) = transient;
        let failing = error(kind, code, message);
        let run = run(Create, &policy, &[(failing.clone(), jitter, 0)], &failing);
        prop_assert_eq!(run.decisions.len() as u32, policy.max_attempts);
        prop_assert_eq!(run.decisions.last().and_then(dead_letter_class), Some(ErrorClass::Exhausted));
    }
}

/// Whether the chain dead-lettered a FAILED without having resubmitted first.
fn last_failed_before_resubmit(decisions: &[Decision]) -> bool {
    let resubmitted = decisions.iter().any(
        |d| matches!(d, Decision::Continue { progress, .. } if progress.resubmitted_after_failure),
    );
    decisions.last().and_then(dead_letter_class) == Some(ErrorClass::Failed) && !resubmitted
}

#[test]
fn an_operation_never_seen_past_the_deadline_is_timed_out_as_not_found() {
    let late = T0 + Duration::seconds(2000);
    let not_found = error(
        ErrorKind::ResourceNotFound,
        "ResourceNotFoundException",
        "no such request",
    );
    let decision = decide(
        &polling(Create, 1),
        &not_found,
        late,
        &Policy::default(),
        0.5,
    );
    let Decision::DeadLetter(dead_letter) = decision else {
        panic!("expected timed-out, got {decision:?}");
    };
    assert_eq!(dead_letter.class, ErrorClass::TimedOut);
    assert_eq!(dead_letter.code, "ResourceNotFoundException");
    assert!(
        dead_letter.message.contains("still unknown"),
        "{}",
        dead_letter.message
    );
    assert!(
        !dead_letter.message.contains("IN_PROGRESS"),
        "{}",
        dead_letter.message
    );
}

/// A `notAfter` at the very end of year 9999 is a valid time: comparing it with the
/// record's SentTimestamp must not overflow.
#[test]
fn a_not_after_at_the_end_of_year_9999_was_not_passed_by_any_send() {
    let end = time::macros::datetime!(9999-12-31 23:59:59.999 UTC);
    let sent = time::macros::datetime!(2026-11-30 10:00:00 UTC);
    assert!(!sent_after_not_after(Some(sent), Some(end)));
    assert!(sent_after_not_after(
        Some(sent),
        Some(sent - time::Duration::hours(1))
    ));
}

/// Only a poll of a grant's own create that AWS answered FAILED ends its chain
/// `failed` in the ledger: a FAILED submit's record is the chain's only one, and an
/// expiry's or a revoke's failure says nothing of a grant's access.
#[test]
fn only_a_grants_failed_poll_records_the_chain_failed() {
    let failed = DeadLetter {
        class: ErrorClass::Failed,
        code: "FAILED".to_owned(),
        message: "the USER assignee was not found".to_owned(),
        attempts: 1,
        operation_request_id: None,
    };
    let exhausted = DeadLetter {
        class: ErrorClass::Exhausted,
        ..failed.clone()
    };
    let mut expiry = polling(Delete, 1);
    expiry.purpose = Purpose::Expiry;
    let cases = [
        (polling(Create, 1), &failed, Intent::Grant, true),
        (submit(Create), &failed, Intent::Grant, false),
        (polling(Create, 1), &exhausted, Intent::Grant, false),
        (polling(Delete, 1), &failed, Intent::Revoke, false),
        (expiry, &failed, Intent::Grant, false),
    ];
    for (progress, dead_letter, intent, expected) in cases {
        assert_eq!(
            records_failed(&progress, dead_letter, intent),
            expected,
            "{progress:?} {dead_letter:?}"
        );
    }
}
