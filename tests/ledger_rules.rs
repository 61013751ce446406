//! The lifecycle's rules for what the ledger answered (SPEC §11): claim, re-check,
//! undo after a later opposite decision, expiry, and the `expired` class after a lost
//! answer. Pure functions, exact times.

use assignment_worker::identity_center::{CallError, ErrorKind, OperationStatus, StatusReport};
use assignment_worker::ledger::{
    AccessDecision, ClaimAnswer, DecisionOrder, Intent, Presence, RecordAnswer, RecordedState,
};
use assignment_worker::lifecycle::{
    Completion, DeadLetter, Decision, ErrorClass, MAX_DELAY_SECONDS, Policy, after_change,
    after_claim, behind_later_decision, check_expiry, check_requested_at, decide, expiry_overtaken,
    expiry_wait, later_grant_to_watch, on_ledger_error, restored_expiry, start_expiry,
    start_restored_expiry,
};
use assignment_worker::progress::{DecisionStamp, Progress, Purpose, Stage, UndoReport};
use assignment_worker::request::AssignmentAction::{self, Create, Delete};
use time::{Duration, OffsetDateTime, macros::datetime};

const T0: OffsetDateTime = datetime!(2026-11-30 09:00:00 UTC);

fn submit(action: AssignmentAction) -> Progress {
    Progress::start(
        action,
        T0,
        DecisionStamp {
            requested_at: T0,
            first_message_id: "m-1".to_owned(),
        },
    )
}

fn decision(intent: Intent, seconds: i64, not_after: Option<OffsetDateTime>) -> AccessDecision {
    AccessDecision {
        order: DecisionOrder {
            requested_at: T0 + Duration::seconds(seconds),
            intent,
            correlation_id: Some(format!("CHG-{seconds}")),
            first_message_id: "m-9".to_owned(),
        },
        not_after,
    }
}

fn transient(kind: ErrorKind, code: &str) -> CallError {
    CallError {
        kind,
        code: code.to_owned(),
        message: format!("{code} from the test"),
    }
}

fn continued(decision: Decision) -> (Progress, u32) {
    match decision {
        Decision::Continue {
            progress,
            delay_seconds,
        } => (progress, delay_seconds),
        other => panic!("expected a re-enqueue, got {other:?}"),
    }
}

#[test]
fn a_claim_goes_on_or_ends_superseded_without_a_call() {
    let policy = Policy::default();
    let claimed = after_claim(&submit(Create), &Ok(ClaimAnswer::Claimed), T0, &policy, 0.5);
    assert_eq!(claimed, None);

    let later = decision(Intent::Revoke, 60, None);
    let superseded = after_claim(
        &submit(Create),
        &Ok(ClaimAnswer::Superseded(later.clone())),
        T0,
        &policy,
        0.5,
    );
    assert_eq!(
        superseded,
        Some(Decision::Done {
            completion: Completion::Superseded(later.summary()),
            operation_request_id: None,
        })
    );
    let summary = later.summary();
    assert_eq!(summary.correlation_id.as_deref(), Some("CHG-60"));
    assert_eq!(summary.requested_at, "2026-11-30T09:01:00Z");
}

#[test]
fn a_superseded_request_whose_earlier_attempt_may_have_landed_restores_the_later_decision() {
    let policy = Policy::default();
    let later_revoke = decision(Intent::Revoke, 60, None);
    // The grant's first submit timed out: the assignment may exist.
    let lost = decide(
        &submit(Create),
        &Err(transient(ErrorKind::Timeout, "Timeout")),
        T0,
        &policy,
        0.5,
    );
    let (retry, _) = continued(lost);
    let answer = Ok(ClaimAnswer::Superseded(later_revoke.clone()));
    let undo = after_claim(&retry, &answer, T0, &policy, 0.5).expect("a decision");
    let (undo, delay) = continued(undo);
    assert_eq!(delay, 0);
    assert_eq!(undo.operation(), Delete);
    assert_eq!(
        undo.purpose,
        Purpose::Undo {
            superseded_by: later_revoke.summary(),
            reports: UndoReport::Request,
        }
    );
    // And the other way round: a revoke that may have removed a later grant's access.
    let lost = decide(
        &submit(Delete),
        &Err(transient(ErrorKind::Connection, "ConnectionError")),
        T0,
        &policy,
        0.5,
    );
    let (retry, _) = continued(lost);
    let later_grant = Ok(ClaimAnswer::Superseded(decision(Intent::Grant, 60, None)));
    let redo = after_claim(&retry, &later_grant, T0, &policy, 0.5).expect("a decision");
    assert_eq!(continued(redo).0.operation(), Create);
}

#[test]
fn ledger_throttling_repeats_the_step_and_anything_else_is_permanent() {
    let policy = Policy::default();
    for (kind, code) in [
        (
            ErrorKind::RateLimited,
            "ProvisionedThroughputExceededException",
        ),
        (ErrorKind::ServerError, "InternalServerError"),
        (ErrorKind::Timeout, "Timeout"),
    ] {
        let answer = Err(transient(kind, code));
        let next = after_claim(&submit(Delete), &answer, T0, &policy, 1.0).expect("a decision");
        let (progress, delay) = continued(next);
        assert_eq!(progress.stage, Stage::Submit);
        assert_eq!(progress.attempt, 2);
        assert_eq!(delay, 2, "{code}: the same backoff as Identity Center's");
        assert!(!progress.maybe_submitted, "{code}: no grant was submitted");
    }
    let missing_table = transient(ErrorKind::ResourceNotFound, "ResourceNotFoundException");
    let Decision::DeadLetter(dead_letter) =
        on_ledger_error(&submit(Create), &missing_table, &policy, 0.5)
    else {
        panic!("a missing table is permanent");
    };
    assert_eq!(dead_letter.class, ErrorClass::Permanent);
    assert!(dead_letter.message.starts_with("ledger: "));
}

#[test]
fn a_confirmed_change_stands_unless_a_later_decision_wants_the_opposite() {
    let now = T0 + Duration::seconds(30);
    let grant = submit(Create);
    let stands = |answer: RecordAnswer| after_change(&grant, Completion::Succeeded, &answer, now);
    let done = Decision::Done {
        completion: Completion::Succeeded,
        operation_request_id: None,
    };
    assert_eq!(stands(RecordAnswer::Recorded), done);
    assert_eq!(stands(RecordAnswer::NotLatest(None)), done);
    // A later grant wants what this one did.
    assert_eq!(
        stands(RecordAnswer::NotLatest(Some(decision(
            Intent::Grant,
            10,
            None
        )))),
        done
    );

    // A later revoke: delete what was created, and report superseded at the end.
    let later_revoke = decision(Intent::Revoke, 10, None);
    let undo = stands(RecordAnswer::NotLatest(Some(later_revoke.clone())));
    let (progress, delay) = continued(undo);
    assert_eq!(delay, 0);
    assert_eq!(progress.operation(), Delete);
    assert_eq!(progress.stage, Stage::Submit);
    assert_eq!(
        progress.purpose,
        Purpose::Undo {
            superseded_by: later_revoke.summary(),
            reports: UndoReport::Request,
        }
    );
    // A later grant whose end has passed asks for no access either.
    let ended = decision(Intent::Grant, 10, Some(now - Duration::seconds(1)));
    let (progress, _) = continued(stands(RecordAnswer::NotLatest(Some(ended))));
    assert_eq!(progress.operation(), Delete);

    // The opposite direction: a revoke confirmed after a later grant was recorded.
    let later_grant = decision(Intent::Grant, 10, None);
    let redo = after_change(
        &submit(Delete),
        Completion::AlreadySatisfied,
        &RecordAnswer::NotLatest(Some(later_grant)),
        now,
    );
    assert_eq!(continued(redo).0.operation(), Create);

    // The undo, once done, reports the request as superseded by the later decision.
    let finished = after_change(
        &progress,
        Completion::Succeeded,
        &RecordAnswer::NotLatest(Some(later_revoke.clone())),
        now,
    );
    assert_eq!(
        finished,
        Decision::Done {
            completion: Completion::Superseded(later_revoke.summary()),
            operation_request_id: None,
        }
    );
}

#[test]
fn expiry_waits_in_steps_of_at_most_900_seconds_and_lands_on_not_after() {
    let not_after = T0 + Duration::seconds(2000) + Duration::milliseconds(300);
    let grant = submit(Create);
    let (wait, first) = continued(start_expiry(&grant, not_after, T0));
    assert_eq!(wait.stage, Stage::ExpireWait);
    assert_eq!(wait.purpose, Purpose::Expiry);
    assert_eq!(wait.operation(), Delete);
    assert_eq!(first, MAX_DELAY_SECONDS);

    let mut now = T0 + Duration::seconds(i64::from(first));
    let mut delays = vec![first];
    while let Some(next) = expiry_wait(&wait, not_after, now) {
        let (_, delay) = continued(next);
        delays.push(delay);
        now += Duration::seconds(i64::from(delay));
    }
    // 2000.3 s: 900 + 900 + 201, rounded up so that the revoke never comes early.
    assert_eq!(delays, [900, 900, 201]);
    assert!(now >= not_after && now - not_after < Duration::seconds(1));
    assert_eq!(expiry_wait(&wait, not_after, not_after), None);

    // Past notAfter already (a grant carried on after a lost answer): at once.
    let (_, at_once) = continued(start_expiry(&grant, T0 - Duration::seconds(5), T0));
    assert_eq!(at_once, 0);
}

#[test]
fn expired_only_when_no_earlier_attempt_may_have_reached_aws() {
    let policy = Policy::default();
    let past = Some(T0 - Duration::seconds(1));
    let grant = submit(Create);
    assert_eq!(
        check_expiry(&grant, past, T0).map(|d| d.class),
        Some(ErrorClass::Expired)
    );
    // Answers that say AWS refused the call: nothing can exist, still `expired`.
    for (kind, code) in [
        (ErrorKind::RateLimited, "ThrottlingException"),
        (ErrorKind::Busy, "ThrottlingException"),
        (ErrorKind::Conflict, "ConflictException"),
    ] {
        let next = decide(&grant, &Err(transient(kind, code)), T0, &policy, 0.5);
        let (retry, _) = continued(next);
        assert!(!retry.maybe_submitted, "{code}");
        assert!(check_expiry(&retry, past, T0).is_some(), "{code}");
    }
    // No answer, or one that may hide a success: the grant may exist, so it is carried
    // on (and its expiry takes it back), never reported as `expired`.
    for (kind, code) in [
        (ErrorKind::Timeout, "Timeout"),
        (ErrorKind::Connection, "ConnectionError"),
        (ErrorKind::ServerError, "InternalServerException"),
        (ErrorKind::ServerError, "HTTP 200"),
    ] {
        let next = decide(&grant, &Err(transient(kind, code)), T0, &policy, 0.5);
        let (retry, _) = continued(next);
        assert!(retry.maybe_submitted, "{code}");
        assert_eq!(check_expiry(&retry, past, T0), None, "{code}");
        // And the flag survives the next throttled attempt.
        let again = decide(
            &retry,
            &Err(transient(ErrorKind::RateLimited, "ThrottlingException")),
            T0,
            &policy,
            0.5,
        );
        assert!(continued(again).0.maybe_submitted, "{code}");
    }
}

#[test]
fn a_decision_stamped_far_ahead_of_the_clock_is_invalid() {
    let mut progress = submit(Create);
    progress.stamp.requested_at = T0 + Duration::minutes(5);
    assert_eq!(check_requested_at(&progress, T0), None);
    progress.stamp.requested_at = T0 + Duration::minutes(5) + Duration::seconds(1);
    let refused = check_requested_at(&progress, T0).expect("refused");
    assert_eq!(refused.class, ErrorClass::InvalidRequest);
    assert_eq!(refused.code, "RequestedAtInFuture");
}

#[test]
fn a_later_grant_with_a_later_end_keeps_the_access_at_the_first_end() {
    let first_end = T0 + Duration::hours(1);
    let later = decision(Intent::Grant, 60, Some(T0 + Duration::hours(2)));
    assert_eq!(later.desired(first_end), Presence::Present);
    assert_eq!(later.desired(T0 + Duration::hours(2)), Presence::Absent);
}

#[test]
fn an_expiry_overtaken_waits_only_for_a_later_grant_not_carried_out() {
    let first_end = T0 + Duration::hours(1);
    let later_end = T0 + Duration::hours(2);
    let (expiry, _) = continued(start_expiry(&submit(Create), first_end, T0));
    let superseded = |decision: Option<Decision>| {
        matches!(
            decision,
            Some(Decision::Done {
                completion: Completion::Superseded(_),
                ..
            })
        )
    };
    let later_grant = decision(Intent::Grant, 60, Some(later_end));
    // Dead-lettered or under way: wait for its end, then revoke.
    for state in [RecordedState::Pending, RecordedState::Absent] {
        let (waiting, delay) =
            continued(expiry_overtaken(&expiry, &later_grant, state, first_end).expect("a wait"));
        assert_eq!(waiting.stage, Stage::ExpireWait);
        assert_eq!(delay, MAX_DELAY_SECONDS);
        assert_eq!(
            expiry_overtaken(&expiry, &later_grant, state, later_end),
            None
        );
    }
    // An expiry whose delete may have been made (a wait step delivered twice) restores
    // the later grant's access instead: its delete may have landed after the grant's
    // create. (A restored-expiry step then ends that access at the grant's end.)
    let mut again = expiry.clone();
    again.maybe_submitted = true;
    let (undo, _) = continued(
        expiry_overtaken(&again, &later_grant, RecordedState::Pending, first_end).expect("an undo"),
    );
    assert_eq!(undo.operation(), Create);
    assert!(matches!(undo.purpose, Purpose::Undo { .. }));
    // Carried out: its own expiry ends it.
    assert!(superseded(expiry_overtaken(
        &expiry,
        &later_grant,
        RecordedState::Present,
        first_end
    )));
    // Unless its end has passed too: that expiry may have been dead-lettered, and the
    // later grant asks for no access any more, so this one revokes.
    assert_eq!(
        expiry_overtaken(&expiry, &later_grant, RecordedState::Present, later_end),
        None
    );
    // A later grant without an end stands, and so does a later revoke recorded carried
    // out.
    let later_revoke = decision(Intent::Revoke, 60, None);
    for (later, state) in [
        (&later_revoke, RecordedState::Absent),
        (&decision(Intent::Grant, 60, None), RecordedState::Pending),
    ] {
        assert!(superseded(expiry_overtaken(
            &expiry, later, state, first_end
        )));
    }
    // A later revoke not recorded carried out (dead-lettered, or under way) may not have
    // removed the access: the expiry revokes all the same, as that revoke asks.
    assert_eq!(
        expiry_overtaken(&expiry, &later_revoke, RecordedState::Pending, first_end),
        None
    );
}

/// Access an undo restored for a later grant ends at that grant's `notAfter` unless the
/// grant has an expiry of its own (recorded as carried out) or no end.
#[test]
fn a_restored_expiry_revokes_only_once_no_other_chain_will() {
    let end = T0 + Duration::hours(1);
    let undo_of_revoke = after_change(
        &submit(Delete),
        Completion::Succeeded,
        &RecordAnswer::NotLatest(Some(decision(Intent::Grant, 60, Some(end)))),
        T0,
    );
    let (undo, _) = continued(undo_of_revoke);
    assert_eq!(undo.operation(), Create);
    let summary = decision(Intent::Grant, 60, Some(end)).summary();
    let (watch, delay) = continued(start_restored_expiry(&undo, summary));
    assert_eq!(
        (watch.stage.clone(), watch.operation(), delay),
        (Stage::ExpireWait, Delete, 0)
    );
    assert!(watch.purpose.is_restored_expiry());
    let ended = |decision: Option<Decision>| {
        matches!(
            decision,
            Some(Decision::Done {
                completion: Completion::Superseded(_),
                ..
            })
        )
    };

    let timed = decision(Intent::Grant, 60, Some(end));
    for state in [RecordedState::Pending, RecordedState::Absent] {
        // Before the end: wait for it, in hops.
        let (waiting, delay) =
            continued(restored_expiry(&watch, Some(&(timed.clone(), state)), T0).expect("a wait"));
        assert_eq!(waiting.stage, Stage::ExpireWait);
        assert!(waiting.purpose.is_restored_expiry());
        assert_eq!(delay, MAX_DELAY_SECONDS);
        let (last, delay) = continued(
            restored_expiry(
                &watch,
                Some(&(timed.clone(), state)),
                end - Duration::seconds(10),
            )
            .expect("a wait"),
        );
        assert_eq!((last.stage, delay), (Stage::ExpireWait, 10));
        // At the end: revoke.
        assert_eq!(
            restored_expiry(&watch, Some(&(timed.clone(), state)), end),
            None
        );
    }
    // Carried out: the grant's own expiry ends it; at its end the chain revokes too, as
    // the grant asks for no access then (the delete finds nothing if the expiry came first).
    assert!(ended(restored_expiry(
        &watch,
        Some(&(timed.clone(), RecordedState::Present)),
        T0
    )));
    assert_eq!(
        restored_expiry(&watch, Some(&(timed, RecordedState::Present)), end),
        None
    );
    // A later grant without an end owns the access; a revoke asks for none; no decision,
    // nothing to carry out.
    let open = decision(Intent::Grant, 90, None);
    assert!(ended(restored_expiry(
        &watch,
        Some(&(open, RecordedState::Pending)),
        T0
    )));
    let revoke = decision(Intent::Revoke, 90, None);
    assert_eq!(
        restored_expiry(&watch, Some(&(revoke, RecordedState::Pending)), T0),
        None
    );
    assert!(ended(restored_expiry(&watch, None, T0)));

    // A later decision asking for the access again meanwhile: the chain restores it and
    // stays a restored-expiry chain (its request's outcome is out).
    let mut submitted = watch.clone();
    submitted.stage = Stage::Submit;
    let again = after_change(
        &submitted,
        Completion::Succeeded,
        &RecordAnswer::NotLatest(Some(decision(Intent::Grant, 120, Some(end)))),
        T0,
    );
    let (again, _) = continued(again);
    assert_eq!(again.operation(), Create);
    assert!(again.purpose.is_restored_expiry());
    // Its own revoke confirmed: the call's completion, not `superseded`.
    let done = after_change(
        &submitted,
        Completion::Succeeded,
        &RecordAnswer::NotLatest(Some(decision(Intent::Revoke, 120, None))),
        T0,
    );
    assert!(matches!(
        done,
        Decision::Done {
            completion: Completion::Succeeded,
            ..
        }
    ));
}

/// A restored-expiry restarted from a dead letter that says its delete may have landed:
/// a grant that is the latest decision (timed or not, carried out or not) has its access
/// created again, by the same chain, before the chain waits or ends; a latest decision
/// asking for no access is revoked as before.
#[test]
fn a_restored_expiry_whose_delete_may_have_landed_restores_a_latest_grant() {
    let end = T0 + Duration::hours(1);
    let mut restarted = submit(Delete);
    restarted.purpose = Purpose::Undo {
        superseded_by: decision(Intent::Grant, 60, Some(end)).summary(),
        reports: UndoReport::Nothing,
    };
    restarted.stage = Stage::ExpireWait;
    restarted.maybe_submitted = true;
    for (latest, state) in [
        (
            decision(Intent::Grant, 60, Some(end)),
            RecordedState::Pending,
        ),
        (
            decision(Intent::Grant, 60, Some(end)),
            RecordedState::Present,
        ),
        (decision(Intent::Grant, 90, None), RecordedState::Present),
    ] {
        let (restore, delay) =
            continued(restored_expiry(&restarted, Some(&(latest, state)), T0).expect("an undo"));
        assert_eq!(
            (restore.stage.clone(), restore.operation(), delay),
            (Stage::Submit, Create, 0)
        );
        assert!(restore.purpose.is_restored_expiry());
        assert!(!restore.maybe_submitted);
    }
    let revoke = decision(Intent::Revoke, 90, None);
    assert_eq!(
        restored_expiry(&restarted, Some(&(revoke, RecordedState::Absent)), T0),
        None
    );
    let timed = decision(Intent::Grant, 60, Some(end));
    assert_eq!(
        restored_expiry(&restarted, Some(&(timed, RecordedState::Pending)), end),
        None
    );
}

#[test]
fn progress_of_every_purpose_round_trips_through_its_wire_format() {
    let grant = submit(Create);
    let (expiry, _) = continued(start_expiry(&grant, T0 + Duration::hours(1), T0));
    let undo = after_change(
        &grant,
        Completion::Succeeded,
        &RecordAnswer::NotLatest(Some(decision(Intent::Revoke, 5, None))),
        T0,
    );
    let (undo, _) = continued(undo);
    let (restored, _) = continued(start_restored_expiry(
        &undo,
        decision(Intent::Grant, 6, None).summary(),
    ));
    let (expiry_undo, _) = continued(assignment_worker::lifecycle::undo(
        &expiry,
        &decision(Intent::Revoke, 7, None),
        T0,
    ));
    for progress in [&grant, &expiry, &undo, &restored, &expiry_undo] {
        let json = serde_json::to_value(progress).unwrap();
        let back: Progress = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(&back, progress, "{json}");
    }
    let json = serde_json::to_value(&expiry).unwrap();
    assert_eq!(json["step"], "expire-wait");
    assert_eq!(json["purpose"], "expiry");
    assert_eq!(json["requestedAt"], "2026-11-30T09:00:00Z");
    assert_eq!(json["firstMessageId"], "m-1");
    let json = serde_json::to_value(&undo).unwrap();
    assert_eq!(json["supersededBy"]["correlationId"], "CHG-5");
    let json = serde_json::to_value(&expiry_undo).unwrap();
    assert_eq!(json["purpose"], "expiry-undo");
    assert!(expiry_undo.purpose.reports_as_expiry());
    let json = serde_json::to_value(&restored).unwrap();
    assert_eq!(json["purpose"], "restored-expiry");
    assert_eq!(json["step"], "expire-wait");
    assert_eq!(json["supersededBy"]["correlationId"], "CHG-6");

    // Steps the worker never writes fail closed.
    for bad in [
        r#"{"step":"expire-wait","operation":"create","purpose":"expiry","attempt":1,"firstReceivedAt":"2026-11-30T09:00:00Z"}"#,
        r#"{"step":"expire-wait","operation":"delete","purpose":"decision","attempt":1,"firstReceivedAt":"2026-11-30T09:00:00Z"}"#,
        r#"{"step":"submit","operation":"delete","purpose":"undo","attempt":1,"firstReceivedAt":"2026-11-30T09:00:00Z"}"#,
        r#"{"step":"expire-wait","operation":"delete","purpose":"undo","attempt":1,"firstReceivedAt":"2026-11-30T09:00:00Z","supersededBy":{"requestedAt":"2026-11-30T09:00:00Z"}}"#,
        r#"{"step":"expire-wait","operation":"create","purpose":"restored-expiry","attempt":1,"firstReceivedAt":"2026-11-30T09:00:00Z","supersededBy":{"requestedAt":"2026-11-30T09:00:00Z"}}"#,
        r#"{"step":"expire-wait","operation":"delete","purpose":"restored-expiry","attempt":1,"firstReceivedAt":"2026-11-30T09:00:00Z"}"#,
        r#"{"step":"submit","operation":"delete","purpose":"decision","attempt":1,"firstReceivedAt":"2026-11-30T09:00:00Z","supersededBy":{"requestedAt":"x"}}"#,
    ] {
        assert!(serde_json::from_str::<Progress>(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_success_reported_by_describe_still_goes_through_the_ledger() {
    // decide() itself is unchanged: Done; the ledger's say comes after.
    let report = StatusReport {
        created_at: None,
        status: OperationStatus::Succeeded,
        request_id: Some("r-1".to_owned()),
        failure_reason: None,
        subject: Default::default(),
    };
    let done = decide(&submit(Create), &Ok(report), T0, &Policy::default(), 0.5);
    assert!(matches!(
        done,
        Decision::Done {
            completion: Completion::Succeeded,
            ..
        }
    ));
}

/// A chain about to be dead-lettered while its change may be in place, behind a later
/// decision, is superseded: it undoes toward that decision when it wants the opposite,
/// and changes nothing when a late landing would agree with it. Never for `timed-out`:
/// an operation still running at the poll deadline is dead-lettered with its id for the
/// operator to check (SPEC §3).
#[test]
fn a_dead_letter_behind_a_later_decision_is_superseded() {
    let own = decision(Intent::Grant, 0, None);
    let dead = |class| DeadLetter {
        class,
        code: "ThrottlingException".to_owned(),
        message: String::new(),
        attempts: 10,
        operation_request_id: None,
    };
    let grant = submit(Create);
    let later_revoke = (decision(Intent::Revoke, 60, None), RecordedState::Absent);
    let later_grant = (decision(Intent::Grant, 60, None), RecordedState::Present);
    let exhausted = dead(ErrorClass::Exhausted);

    let (undo, delay) = continued(
        behind_later_decision(&grant, &exhausted, &own, Some(&later_revoke), T0).expect("an undo"),
    );
    assert_eq!((undo.operation(), delay), (Delete, 0));
    assert!(matches!(undo.purpose, Purpose::Undo { .. }));
    // The later grant wants what the create may have made: nothing to undo.
    assert_eq!(
        behind_later_decision(&grant, &exhausted, &own, Some(&later_grant), T0),
        Some(Decision::Done {
            completion: Completion::Superseded(later_grant.0.summary()),
            operation_request_id: None,
        })
    );
    // A later grant with an end, not recorded carried out, may never expire: superseded
    // too, and the access the create may have made is watched until that end.
    let later_timed_grant = (
        decision(Intent::Grant, 60, Some(T0 + Duration::hours(1))),
        RecordedState::Pending,
    );
    assert_eq!(
        behind_later_decision(&grant, &exhausted, &own, Some(&later_timed_grant), T0),
        Some(Decision::Done {
            completion: Completion::Superseded(later_timed_grant.0.summary()),
            operation_request_id: None,
        })
    );
    assert_eq!(
        later_grant_to_watch(&grant, &later_timed_grant.0, RecordedState::Pending),
        Some(later_timed_grant.0.summary())
    );
    // Not once that grant is carried out (its own expiry ends it), nor for a grant with
    // no end, nor for a delete (its landing agrees with any grant's end).
    assert_eq!(
        later_grant_to_watch(&grant, &later_timed_grant.0, RecordedState::Present),
        None
    );
    assert_eq!(
        later_grant_to_watch(&grant, &later_grant.0, RecordedState::Pending),
        None
    );
    assert_eq!(
        later_grant_to_watch(
            &submit(Delete),
            &later_timed_grant.0,
            RecordedState::Pending
        ),
        None
    );
    // Still running at the poll deadline: dead-lettered with its id.
    let mut polled = grant.clone();
    polled.stage = Stage::Poll {
        operation_request_id: "op-1".to_owned(),
        polls: 12,
        submitted_at: T0,
    };
    assert_eq!(
        behind_later_decision(
            &polled,
            &dead(ErrorClass::TimedOut),
            &own,
            Some(&later_revoke),
            T0
        ),
        None
    );
    // No later decision: the dead letter stands.
    let own_recorded = (own.clone(), RecordedState::Pending);
    assert_eq!(
        behind_later_decision(&grant, &exhausted, &own, Some(&own_recorded), T0),
        None
    );
}

/// An expiry asks the ledger to record its grant `revoked` (which the ledger keeps only
/// over a grant recorded carried out); a grant's own steps, where the access stands. A
/// grant step refused for its passed `notAfter` reports the grant carried out only when
/// the ledger records exactly its decision (first message id included) `present` or
/// `revoked`, and
/// only when it made no submit that may have landed; an expiry's step never does.
#[test]
fn an_expiry_records_its_grant_revoked_and_a_step_refused_after_it_reports_it_carried_out() {
    use assignment_worker::lifecycle::{carried_out_before, recorded_state_after};
    let grant = submit(Create);
    let (expiry, _) = continued(start_expiry(&grant, T0, T0));
    assert_eq!(recorded_state_after(&expiry), RecordedState::Revoked);
    assert_eq!(recorded_state_after(&grant), RecordedState::Present);
    assert_eq!(recorded_state_after(&submit(Delete)), RecordedState::Absent);

    let own = decision(Intent::Grant, 0, Some(T0));
    let revoked = (own.clone(), RecordedState::Revoked);
    assert!(carried_out_before(&grant, &own, &revoked));
    let mut carried_on = grant.clone();
    carried_on.maybe_submitted = true;
    assert!(!carried_out_before(&carried_on, &own, &revoked));
    assert!(!carried_out_before(&expiry, &own, &revoked));
    let present = (own.clone(), RecordedState::Present);
    assert!(carried_out_before(&grant, &own, &present));
    for state in [
        RecordedState::Absent,
        RecordedState::Pending,
        RecordedState::Failed,
    ] {
        assert!(!carried_out_before(&grant, &own, &(own.clone(), state)));
    }
    let mut another_delivery = own.clone();
    another_delivery.order.first_message_id = "m-2".to_owned();
    let theirs = (another_delivery, RecordedState::Revoked);
    assert!(!carried_out_before(&grant, &own, &theirs));
}
