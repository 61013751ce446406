//! The request lifecycle (SPEC §3) as a pure state machine: given where a request
//! stands and what one AWS call answered, decide the next step. No I/O, no clock, no
//! randomness: the caller passes `now` and the jitter draw.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::identity_center::{CallError, CallResult, ErrorKind, OperationStatus, OperationSubject};
use crate::ledger::{
    AccessDecision, ClaimAnswer, DecisionSummary, Intent, LedgerResult, Presence, RecordAnswer,
    RecordedState,
};
use crate::messages::MAX_ERROR_MESSAGE_BYTES;
use crate::progress::{Progress, Purpose, Stage, UndoReport};
use crate::request::{Assignment, AssignmentAction};

/// SQS refuses a DelaySeconds above this.
pub const MAX_DELAY_SECONDS: u32 = 900;
/// Describe*Status may not know an operation right after submit; this many
/// `ResourceNotFoundException` answers are read as "not visible yet".
pub const NOT_YET_VISIBLE_POLLS: u32 = 3;
/// A delete whose entitlement is already gone fails with this in its reason.
const ENTITLEMENT_MISSING: &str = "entitlementitem doesn't exist";
/// The code of a poll answer about another assignment than the request's.
const OPERATION_MISMATCH: &str = "OperationMismatch";
const OPERATION_BEFORE_SUBMIT: &str = "OperationBeforeSubmit";
/// The code of a poll envelope stamped ahead of the clock: the worker did not write it.
const SUBMITTED_AT_IN_FUTURE: &str = "SubmittedAtInFuture";
const REQUESTED_AT_IN_FUTURE: &str = "RequestedAtInFuture";

/// Timing and budgets, from configuration (SPEC §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub max_attempts: u32,
    pub poll_deadline_seconds: u32,
    pub poll_initial_delay_seconds: u32,
    pub poll_max_delay_seconds: u32,
    pub backoff_base_seconds: u32,
    /// Smallest backoff after "too many requests processing": the outstanding
    /// operations need time to finish, so retrying sooner only adds load.
    pub busy_backoff_min_seconds: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            poll_deadline_seconds: 900,
            poll_initial_delay_seconds: 3,
            poll_max_delay_seconds: 60,
            backoff_base_seconds: 2,
            busy_backoff_min_seconds: 15,
        }
    }
}

/// A `requestedAt` further ahead of the worker's clock than this is refused: a
/// far-future grant would outrank every later revoke (SPEC §2).
pub const MAX_REQUESTED_AT_AHEAD: time::Duration = time::Duration::minutes(5);

/// The terminal outcomes other than dead-lettering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    Succeeded,
    AlreadySatisfied,
    /// A later decision stood: this one was not carried out, or was undone.
    Superseded(DecisionSummary),
}

impl Completion {
    pub fn as_str(&self) -> &'static str {
        match self {
            Completion::Succeeded => "succeeded",
            Completion::AlreadySatisfied => "already-satisfied",
            Completion::Superseded(_) => "superseded",
        }
    }
}

/// Why a request was dead-lettered (SPEC §7 `ErrorClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    InvalidRequest,
    Forbidden,
    Expired,
    Permanent,
    Failed,
    Exhausted,
    TimedOut,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::InvalidRequest => "invalid-request",
            ErrorClass::Forbidden => "forbidden",
            ErrorClass::Expired => "expired",
            ErrorClass::Permanent => "permanent",
            ErrorClass::Failed => "failed",
            ErrorClass::Exhausted => "exhausted",
            ErrorClass::TimedOut => "timed-out",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub class: ErrorClass,
    pub code: String,
    pub message: String,
    pub attempts: u32,
    pub operation_request_id: Option<String>,
}

impl DeadLetter {
    /// Whether AWS's answer (or its absence) caused it, rather than a refusal made
    /// before any call.
    pub fn after_a_call(&self) -> bool {
        matches!(
            self.class,
            ErrorClass::Failed
                | ErrorClass::Permanent
                | ErrorClass::Exhausted
                | ErrorClass::TimedOut
        )
    }

    /// A refusal made before any AWS call (invalid, forbidden, expired).
    pub fn before_any_call(
        class: ErrorClass,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            class,
            code: code.into(),
            message: message.into(),
            attempts: 0,
            operation_request_id: None,
        }
    }

    /// The refusal made at `progress`'s attempt, before its call: the attempts made on
    /// the step are the ones before it (SPEC §7), which retries may have made.
    pub fn before_attempt(mut self, progress: &Progress) -> Self {
        self.attempts = progress.attempt.saturating_sub(1);
        self
    }
}

/// The next step for a request after one AWS call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Done {
        completion: Completion,
        operation_request_id: Option<String>,
    },
    /// Re-enqueue the request with this progress, delivered after `delay_seconds`.
    Continue {
        progress: Progress,
        delay_seconds: u32,
    },
    DeadLetter(DeadLetter),
}

/// Refuses a grant whose `notAfter` has passed before it was submitted. Revokes are
/// never refused: ending access late is still better than never. A grant an earlier
/// attempt may have carried out (its answer lost) is not refused: it is carried on,
/// and its expiry takes the access back at once (SPEC §3, `expired`).
pub fn check_expiry(
    progress: &Progress,
    not_after: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Option<DeadLetter> {
    let not_after = not_after?;
    let grant_not_submitted = progress.purpose == Purpose::Decision
        && progress.operation() == AssignmentAction::Create
        && progress.stage == Stage::Submit
        && !progress.maybe_submitted;
    (grant_not_submitted && now > not_after).then(|| {
        DeadLetter::before_any_call(
            ErrorClass::Expired,
            "NotAfterPassed",
            format!(
                "notAfter {} passed before the grant was submitted",
                not_after
                    .format(&Rfc3339)
                    .unwrap_or_else(|_| not_after.to_string())
            ),
        )
    })
}

/// Whether a refusal made before any call comes again when its step is repeated: a
/// guardrail's (until the operator changes it) or an envelope's does; one the clock
/// decides (a `requestedAt` or `submittedAt` ahead of it) may not, and the repeat would
/// go on to its call.
pub fn refusal_repeats(dead_letter: &DeadLetter) -> bool {
    !dead_letter.after_a_call()
        && ![REQUESTED_AT_IN_FUTURE, SUBMITTED_AT_IN_FUTURE].contains(&dead_letter.code.as_str())
}

/// Refuses a decision stamped more than [`MAX_REQUESTED_AT_AHEAD`] after `now`.
pub fn check_requested_at(progress: &Progress, now: OffsetDateTime) -> Option<DeadLetter> {
    let requested_at = progress.stamp.requested_at;
    (progress.purpose == Purpose::Decision && requested_at > now + MAX_REQUESTED_AT_AHEAD).then(
        || {
            DeadLetter::before_any_call(
                ErrorClass::InvalidRequest,
                REQUESTED_AT_IN_FUTURE,
                format!(
                    "requestedAt: {} is more than {} minutes ahead of the worker's clock ({}); \
                     a future decision would outrank every later one",
                    crate::messages::rfc3339(requested_at),
                    MAX_REQUESTED_AT_AHEAD.whole_minutes(),
                    crate::messages::rfc3339(now)
                ),
            )
        },
    )
}

/// How far the clocks of two worker instances may disagree. A poll envelope's
/// `submittedAt` was written by the worker's clock at the submit, before the envelope
/// was sent, so on any instance it lies in the past, give or take this. Lambda hosts
/// keep NTP time (skews of milliseconds); a minute leaves room for a local run on a
/// drifting clock, and lets a forged envelope outlive the poll deadline by at most a
/// minute.
pub const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(1);

/// How far the worker's clock may disagree with AWS's: Signature Version 4 refuses a
/// request signed more than five minutes off, so a worker whose clock is further off
/// makes no call at all.
pub const AWS_CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// The most polls a genuine poll envelope can count: the poll schedule of
/// `next_poll` replayed at its fastest. Every poll comes when its delay ends (SQS
/// holds a message for at least its DelaySeconds; retries only add time) and reads a
/// clock [`MAX_CLOCK_SKEW`] behind the submitting one, which makes the deadline look
/// further away; the chain ends at the first poll that reads the deadline as passed.
pub fn max_polls(policy: &Policy) -> u32 {
    let skew = MAX_CLOCK_SKEW.whole_seconds();
    let deadline = i64::from(policy.poll_deadline_seconds);
    let mut since_submit = 0i64;
    let mut polls = 0u32;
    let mut delay = i64::from(poll_delay_seconds(0, policy)).min(deadline);
    loop {
        // Every delay is at least 1 s (configuration, and `remaining` below), so this
        // ends within deadline + skew rounds.
        since_submit += delay.max(1);
        let remaining = deadline - (since_submit - skew).max(0);
        if remaining <= 0 {
            return polls;
        }
        polls = polls.saturating_add(1);
        delay = i64::from(poll_delay_seconds(polls, policy)).min(remaining);
    }
}

/// Refuses a poll envelope the worker cannot have written (SPEC §4): a `submittedAt`
/// ahead of the clock would keep its poll chain alive past any deadline, and a poll
/// count no chain can reach within the poll deadline is made up. Checked before the
/// poll's call; the class claims no effect.
pub fn check_envelope(
    progress: &Progress,
    now: OffsetDateTime,
    policy: &Policy,
) -> Option<DeadLetter> {
    // A portfolio's confirm step polls the list on the same schedule.
    let (Stage::Poll {
        polls,
        submitted_at,
        ..
    }
    | Stage::Confirm {
        polls,
        submitted_at,
    }) = &progress.stage
    else {
        return None;
    };
    let refuse = |code: &str, message: String| {
        Some(DeadLetter {
            class: ErrorClass::InvalidRequest,
            code: code.to_owned(),
            message: format!("progress envelope: {message}"),
            // Refused before this attempt's call.
            attempts: progress.attempt.saturating_sub(1),
            operation_request_id: progress.operation_request_id().map(str::to_owned),
        })
    };
    if *submitted_at > now + MAX_CLOCK_SKEW {
        return refuse(
            SUBMITTED_AT_IN_FUTURE,
            format!(
                "submittedAt {} is ahead of the worker's clock ({}); the worker did not write it",
                crate::messages::rfc3339(*submitted_at),
                crate::messages::rfc3339(now)
            ),
        );
    }
    let most = max_polls(policy);
    if *polls > most {
        return refuse(
            "PollCountImpossible",
            format!(
                "polls {polls} is more than the {most} a {} s poll deadline allows; the worker \
                 did not write it, or POLL_DEADLINE_SECONDS was lowered since its submit",
                policy.poll_deadline_seconds
            ),
        );
    }
    None
}

/// Refuses a poll's answer about another assignment than the request's (SPEC §4): the
/// operation request id comes from the message, and anyone who may send to the work
/// queue could have named another request's operation. Only an answer that names the
/// request's target, permission set and principal, every one of them, is believed.
/// A submit's answer is about the call just made and is not checked.
pub fn check_operation_subject(
    progress: &Progress,
    result: &CallResult,
    assignment: &Assignment,
) -> Option<DeadLetter> {
    let (
        Stage::Poll {
            operation_request_id,
            submitted_at,
            ..
        },
        Ok(report),
    ) = (&progress.stage, result)
    else {
        return None;
    };
    let refused = |code: &str, message: String| {
        Some(DeadLetter {
            class: ErrorClass::Permanent,
            code: code.to_owned(),
            message,
            attempts: progress.attempt,
            operation_request_id: Some(operation_request_id.clone()),
        })
    };
    let mismatch = |message: String| refused(OPERATION_MISMATCH, message);
    if let Some(answered) = &report.request_id
        && answered != operation_request_id
    {
        return mismatch(format!(
            "the poll of operation {operation_request_id} was answered about operation {answered}"
        ));
    }
    let expected = OperationSubject::of(assignment);
    let fields = [
        ("TargetId", &report.subject.target_id, &expected.target_id),
        (
            "TargetType",
            &report.subject.target_type,
            &expected.target_type,
        ),
        (
            "PermissionSetArn",
            &report.subject.permission_set_arn,
            &expected.permission_set_arn,
        ),
        (
            "PrincipalType",
            &report.subject.principal_type,
            &expected.principal_type,
        ),
        (
            "PrincipalId",
            &report.subject.principal_id,
            &expected.principal_id,
        ),
    ];
    // In any case: SPEC §2 takes the ids in either, and where AWS does not tell the
    // spellings apart it answers with the one it holds (the ledger orders them as one,
    // [`crate::ledger::LedgerKey::assignment`]); ids AWS issues differ in more than case.
    let same = |reported: &Option<String>, wanted: &Option<String>| match (reported, wanted) {
        (Some(reported), Some(wanted)) => reported.eq_ignore_ascii_case(wanted),
        _ => reported == wanted,
    };
    if let Some((name, reported, wanted)) = fields
        .into_iter()
        .find(|(_, reported, wanted)| !same(reported, wanted))
    {
        return mismatch(format!(
            "operation {operation_request_id} is not this request's: its {name} is {}, the \
             request's is `{}`",
            reported
                .as_deref()
                .map_or_else(|| "missing".to_owned(), |value| format!("`{value}`")),
            wanted.as_deref().unwrap_or_default()
        ));
    }
    // An operation of this assignment that AWS created before this request's submit
    // (beyond the clocks' skew) is an older change, which the envelope names: its answer
    // is not this request's. Its own code, which reads as a change that may have landed
    // ([`may_have_taken_effect`]): that older change's access may stand, and so would
    // this request's, were the answer's CreatedDate ever other than the operation's.
    let created_at = report.created_at?;
    if created_at < *submitted_at - AWS_CLOCK_SKEW {
        return refused(
            OPERATION_BEFORE_SUBMIT,
            format!(
                "operation {operation_request_id} was created at {}, before this request's \
                 submit at {}",
                crate::messages::rfc3339(created_at),
                crate::messages::rfc3339(*submitted_at)
            ),
        );
    }
    None
}

/// What the claim before a decision's submit means for it (SPEC §11, rules 1 and 2):
/// `None` to go on with the submit.
pub fn after_claim(
    progress: &Progress,
    answer: &LedgerResult<ClaimAnswer>,
    now: OffsetDateTime,
    policy: &Policy,
    jitter: f64,
) -> Option<Decision> {
    match answer {
        Ok(ClaimAnswer::Claimed) => None,
        Ok(ClaimAnswer::Superseded(later)) => Some(superseded(progress, later, now)),
        Err(error) => Some(on_ledger_error(progress, error, policy, jitter)),
    }
}

/// A later decision stands. Nothing was done for this request, unless an earlier
/// attempt may have been carried out (its answer was lost): then the access may be
/// this request's, and the later decision's state is restored like any undo.
pub fn superseded(progress: &Progress, later: &AccessDecision, now: OffsetDateTime) -> Decision {
    if progress.maybe_submitted {
        return undo(progress, later, now);
    }
    Decision::Done {
        completion: Completion::Superseded(later.summary()),
        operation_request_id: None,
    }
}

/// A decision about to be dead-lettered after an AWS call, which the ledger records as
/// carried out: another delivery of the same request (SQS delivers at least once)
/// already confirmed the access is as the decision asked, so this delivery's failure
/// changes nothing and the request is `already-satisfied`, not a false alarm in the DLQ.
pub fn settled_elsewhere(
    progress: &Progress,
    dead_letter: &DeadLetter,
    own: &AccessDecision,
    recorded: Option<&(AccessDecision, RecordedState)>,
) -> Option<Decision> {
    let carried_out = recorded_carried_out(progress, own, recorded);
    (progress.purpose == Purpose::Decision && dead_letter.after_a_call() && carried_out).then_some(
        Decision::Done {
            completion: Completion::AlreadySatisfied,
            operation_request_id: None,
        },
    )
}

/// Whether the ledger records `own` decision in the state this step's change leaves.
pub fn recorded_carried_out(
    progress: &Progress,
    own: &AccessDecision,
    recorded: Option<&(AccessDecision, RecordedState)>,
) -> bool {
    recorded.is_some_and(|(latest, state)| {
        latest.order == own.order && state.access() == Some(Presence::after(progress.operation()))
    })
}

/// The state the ledger is asked to record for the decision once this step's change is
/// confirmed: where the access stands, and for an expiry `revoked`, which the ledger
/// keeps only over a grant recorded carried out ([`RecordedState::Revoked`]).
pub fn recorded_state_after(progress: &Progress) -> RecordedState {
    if progress.purpose == Purpose::Expiry {
        RecordedState::Revoked
    } else {
        Presence::after(progress.operation()).into()
    }
}

/// A decision or expiry about to be dead-lettered after a change that may have taken
/// effect ([`may_have_taken_effect`]), while the ledger holds a later decision: the
/// chain is superseded instead. When the later decision wants the opposite, that change
/// may have landed after the later decision's own (SPEC §11, rule 3's window, here on a
/// chain that ran out of attempts), so its state is restored first, as for a superseded
/// request whose submit may have landed ([`undo`]; AWS answers a second operation on
/// the same account and permission set with a conflict until the first has propagated,
/// SPEC §10, so the undo waits behind a create still in progress); when it wants the
/// same, a late landing agrees with it and nothing is changed (a create behind a grant
/// that may never end the access is watched: [`later_grant_to_watch`]). Not for
/// `timed-out`: an operation still running at the poll deadline is dead-lettered with
/// its id for the operator to check (SPEC §3).
pub fn behind_later_decision(
    progress: &Progress,
    dead_letter: &DeadLetter,
    own: &AccessDecision,
    recorded: Option<&(AccessDecision, RecordedState)>,
    now: OffsetDateTime,
) -> Option<Decision> {
    let (latest, _) = recorded?;
    let later = !latest.is_same_decision_as(own) && latest.order > own.order;
    if !later || !may_yield_to_a_later_decision(progress, dead_letter) {
        return None;
    }
    if latest.desired(now) == Presence::after(progress.operation()) {
        return Some(Decision::Done {
            completion: Completion::Superseded(latest.summary()),
            operation_request_id: None,
        });
    }
    Some(undo(progress, latest, now))
}

/// Why an operator should look at the access before redriving a request's dead letter
/// whose change may have landed: the body is the bare request (SPEC §7), which cannot
/// carry `maybeSubmitted`, so its redrive behind a later decision ends `superseded` and
/// undoes nothing. (Expiry, undo and restored-expiry steps are dead-lettered with their
/// envelope, which carries it.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedriveCaution {
    /// The ledger could not be read to look for a later decision.
    LedgerUnread,
    /// A later decision that wants the opposite is recorded, and the change may still
    /// land behind it (an operation still running at its poll deadline).
    BehindLaterDecision,
}

impl RedriveCaution {
    /// The caution for a dead letter of `progress`'s chain (with `maybeSubmitted` as its
    /// restart says), or `None` when none is due.
    pub fn of(progress: &Progress, caution: RedriveCaution) -> Option<Self> {
        (progress.purpose == Purpose::Decision && progress.maybe_submitted).then_some(caution)
    }

    /// The bytes of ErrorMessage (cut at [`MAX_ERROR_MESSAGE_BYTES`]) a caution leaves
    /// for the message behind it: a message that must reach the operator whole (an ARN
    /// to send) is sized to this.
    pub const ROOM_BEHIND: usize = {
        let unread = RedriveCaution::LedgerUnread.text().len();
        let behind = RedriveCaution::BehindLaterDecision.text().len();
        let longest = if unread > behind { unread } else { behind };
        MAX_ERROR_MESSAGE_BYTES - longest - " ".len()
    };

    const fn text(self) -> &'static str {
        match self {
            RedriveCaution::LedgerUnread => {
                "Check the access before redriving: this change may have been carried out, \
                 and the ledger could not be read to look for a later decision; redriven \
                 behind one, it ends superseded without undoing the change."
            }
            RedriveCaution::BehindLaterDecision => {
                "Check the access before redriving: this change may still be carried out \
                 behind a later decision recorded since; redriven, it ends superseded \
                 without undoing the change."
            }
        }
    }

    /// `dead_letter` with `caution`, if any, first, where the 1 KiB cut of ErrorMessage
    /// (from its end) cannot take it.
    pub fn put_on(caution: Option<Self>, mut dead_letter: DeadLetter) -> DeadLetter {
        if let Some(caution) = caution {
            dead_letter.message = format!("{} {}", caution.text(), dead_letter.message);
        }
        dead_letter
    }
}

/// Whether a chain about to be dead-lettered with `dead_letter` yields to a later
/// decision, if one is recorded ([`behind_later_decision`]): a request's or an expiry's
/// own chain whose change may have taken effect, not at its poll deadline.
pub fn may_yield_to_a_later_decision(progress: &Progress, dead_letter: &DeadLetter) -> bool {
    matches!(progress.purpose, Purpose::Decision | Purpose::Expiry)
        && dead_letter.class != ErrorClass::TimedOut
        && may_have_taken_effect(progress, dead_letter)
}

/// The later grant whose access a create that may have landed now stands for, when
/// that grant has a `notAfter` and is not recorded carried out: it may never schedule
/// its expiry, and the create's own expiry (if any) yields to it. A restored-expiry
/// chain then ends the access at that grant's end, as after an undo that made it
/// present. `None` for a delete (its landing agrees with a grant's end) and for a
/// later grant with no end or with an expiry of its own.
pub fn later_grant_to_watch(
    progress: &Progress,
    latest: &AccessDecision,
    state: RecordedState,
) -> Option<DecisionSummary> {
    (progress.operation() == AssignmentAction::Create
        && end_without_expiry(latest, state).is_some())
    .then(|| latest.summary())
}

/// A ledger call that failed: transient errors repeat the step after a backoff with the
/// same budget as Identity Center's; anything else is permanent.
pub fn on_ledger_error(
    progress: &Progress,
    error: &CallError,
    policy: &Policy,
    jitter: f64,
) -> Decision {
    if error.kind.is_transient() {
        return retry(progress, error, policy, jitter);
    }
    Decision::DeadLetter(DeadLetter {
        class: ErrorClass::Permanent,
        code: error.code.clone(),
        message: format!("ledger: {}", error.message),
        attempts: progress.attempt,
        operation_request_id: progress.operation_request_id().map(str::to_owned),
    })
}

/// Once Identity Center confirmed the change (`completion`), what the ledger's latest
/// decision means for it (SPEC §11, rules 3 and 4): done, or undo the change because a
/// later decision asks for the opposite. `answer` is what recording the new state
/// found (for an undo, which records nothing, the latest decision read).
pub fn after_change(
    progress: &Progress,
    completion: Completion,
    answer: &RecordAnswer,
    now: OffsetDateTime,
) -> Decision {
    let effect = Presence::after(progress.operation());
    let completion = match &progress.purpose {
        Purpose::Undo {
            superseded_by,
            reports: UndoReport::Request | UndoReport::Expiry,
        } => Completion::Superseded(superseded_by.clone()),
        // Not an outcome: what the call found, for the expiry's count.
        Purpose::Undo {
            reports: UndoReport::Nothing,
            ..
        }
        | Purpose::Decision
        | Purpose::Expiry => completion,
    };
    let done = |completion| Decision::Done {
        completion,
        operation_request_id: progress.operation_request_id().map(str::to_owned),
    };
    match answer {
        RecordAnswer::Recorded | RecordAnswer::NotLatest(None) => done(completion),
        RecordAnswer::NotLatest(Some(latest)) => {
            if latest.desired(now) == effect {
                return done(completion);
            }
            undo(progress, latest, now)
        }
    }
}

/// The chain that restores what the later decision `latest` asks for now, in place of
/// this request's change; its outcome is `superseded`: the request's, or the expiry's for
/// an expiry's undo (none when the outcome is already out: a restored-expiry chain stays
/// one).
pub fn undo(progress: &Progress, latest: &AccessDecision, now: OffsetDateTime) -> Decision {
    Decision::Continue {
        progress: progress.for_purpose(
            Purpose::Undo {
                superseded_by: latest.summary(),
                reports: match &progress.purpose {
                    Purpose::Decision => UndoReport::Request,
                    Purpose::Expiry => UndoReport::Expiry,
                    Purpose::Undo { reports, .. } => *reports,
                },
            },
            latest.desired(now).action(),
            Stage::Submit,
        ),
        delay_seconds: 0,
    }
}

/// The first expiry step of a grant that succeeded: waits on the work queue until
/// `not_after` (at once when it has passed, as for a grant carried on after a lost
/// answer).
pub fn start_expiry(
    progress: &Progress,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> Decision {
    Decision::Continue {
        progress: progress.for_purpose(
            Purpose::Expiry,
            AssignmentAction::Delete,
            Stage::ExpireWait,
        ),
        delay_seconds: seconds_until(not_after, now),
    }
}

/// At an expiry step: `None` once `not_after` has come (revoke now), or the wait for the
/// rest of it, in delays of at most 900 s, the last one landing on `not_after`.
pub fn expiry_wait(
    progress: &Progress,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> Option<Decision> {
    let delay = seconds_until(not_after, now);
    (delay > 0).then(|| Decision::Continue {
        progress: progress.restarted_at(AssignmentAction::Delete, Stage::ExpireWait),
        delay_seconds: delay,
    })
}

/// At an expiry whose grant is no longer the latest decision (`state`: what the ledger
/// records of it): `None` to revoke all the same. An expiry whose delete may already have
/// been made (a wait step delivered twice counts as one) restores the later decision's
/// state, as any superseded request does: its delete may have landed after a later
/// grant's create (a restored-expiry step then ends that access at the grant's end).
/// Otherwise a later revoke recorded carried out, a later grant with no end, or one
/// carried out (it has an expiry of its own) stands: `superseded`. A later revoke not
/// recorded carried out (dead-lettered, or still under way) may never remove the access:
/// the expiry revokes all the same, which is what that revoke asks. A later grant with a
/// `notAfter` that is not recorded as carried out extends the access to its end only:
/// the expiry waits for that end and looks again, instead of leaving this grant's
/// access for good. Past that end the later grant asks for no access, and the expiry
/// revokes, even when that grant was carried out: its own expiry may have been
/// dead-lettered.
pub fn expiry_overtaken(
    progress: &Progress,
    latest: &AccessDecision,
    state: RecordedState,
    now: OffsetDateTime,
) -> Option<Decision> {
    if progress.maybe_submitted {
        return Some(superseded(progress, latest, now));
    }
    if latest.order.intent == Intent::Revoke && state != RecordedState::Absent {
        return None;
    }
    match end_without_expiry(latest, state) {
        Some(end) => expiry_wait(progress, end, now),
        None if latest.order.intent == Intent::Grant && latest.desired(now) == Presence::Absent => {
            None
        }
        None => Some(superseded(progress, latest, now)),
    }
}

/// The `notAfter` of a grant that may have no expiry of its own: one the ledger does not
/// record as carried out (dead-lettered, or still under way). Only a grant's own chain
/// schedules its expiry (at its outcome or dead letter), and it may not have got that far,
/// so access given on its behalf must be ended by whoever gave it.
fn end_without_expiry(latest: &AccessDecision, state: RecordedState) -> Option<OffsetDateTime> {
    match (latest.order.intent, latest.not_after) {
        (Intent::Grant, Some(end)) if state != RecordedState::Present => Some(end),
        _ => None,
    }
}

/// The first step of a restored-expiry chain, after an undo that made the access present
/// (or a create that may have landed, superseded behind a grant: [`later_grant_to_watch`])
/// reported its outcome: the chain reads the ledger at once and ends the access at the
/// `notAfter` of the grant it was restored for, if nothing else will
/// ([`restored_expiry`]).
pub fn start_restored_expiry(progress: &Progress, superseded_by: DecisionSummary) -> Decision {
    Decision::Continue {
        progress: progress.for_purpose(
            Purpose::Undo {
                superseded_by,
                reports: UndoReport::Nothing,
            },
            AssignmentAction::Delete,
            Stage::ExpireWait,
        ),
        delay_seconds: 0,
    }
}

/// At a restored-expiry wait (`latest`: the ledger's decision and state): `None` to
/// revoke now. While the latest decision is a grant with a `notAfter` to come and no
/// expiry of its own, the chain waits for that end (hops of at most 900 s, a read at
/// each). A grant without end, or one recorded as carried out (its own expiry ends it),
/// owns the access: the chain ends. Once the latest decision asks for no access (the
/// grant's end passed, or a revoke came) the chain revokes; its fence and confirmation
/// then follow the latest decision as any undo does. A restart that says its delete may
/// have landed (`maybe_submitted`) restores a latest decision's access first.
pub fn restored_expiry(
    progress: &Progress,
    latest: Option<&(AccessDecision, RecordedState)>,
    now: OffsetDateTime,
) -> Option<Decision> {
    // Not an outcome (the chain's was sent): `superseded` tells the metrics no revoke
    // was made.
    let ended = |latest: Option<&AccessDecision>| {
        let summary = latest
            .map(AccessDecision::summary)
            .or_else(|| progress.purpose.superseded_by().cloned());
        Some(Decision::Done {
            completion: summary.map_or(Completion::AlreadySatisfied, Completion::Superseded),
            operation_request_id: None,
        })
    };
    // A missing item is "no decision": nothing to carry out.
    let Some((latest, state)) = latest else {
        return ended(None);
    };
    // A restart whose delete may have landed after the latest grant's create (the chain
    // was dead-lettered not knowing): its access is restored before anything else.
    if progress.maybe_submitted && latest.desired(now) == Presence::Present {
        return Some(undo(progress, latest, now));
    }
    if let Some(end) = end_without_expiry(latest, *state)
        && let Some(wait) = expiry_wait(progress, end, now)
    {
        return Some(wait);
    }
    match latest.desired(now) {
        Presence::Absent => None,
        Presence::Present => ended(Some(latest)),
    }
}

/// Whole seconds from `now` to `until`, rounded up so that a delay never lands before
/// it, at most the SQS maximum.
fn seconds_until(until: OffsetDateTime, now: OffsetDateTime) -> u32 {
    let remaining = until - now;
    if remaining <= time::Duration::ZERO {
        return 0;
    }
    let whole = remaining.whole_seconds() + i64::from(remaining.subsec_nanoseconds() > 0);
    u32::try_from(whole.min(i64::from(MAX_DELAY_SECONDS))).unwrap_or(MAX_DELAY_SECONDS)
}

/// A `FAILED` answer's reason when AWS gave none.
pub const FAILED_WITHOUT_A_REASON: &str = "operation FAILED without a reason";

/// Decides what follows one call made for `progress`.
///
/// `jitter` is a uniform draw from [0, 1): the fraction of the backoff window used.
pub fn decide(
    progress: &Progress,
    result: &CallResult,
    now: OffsetDateTime,
    policy: &Policy,
    jitter: f64,
) -> Decision {
    let known_request_id = progress.operation_request_id().map(str::to_owned);
    match result {
        Ok(report) => {
            let request_id = report.request_id.clone().or(known_request_id);
            match report.status {
                OperationStatus::Succeeded => Decision::Done {
                    completion: Completion::Succeeded,
                    operation_request_id: request_id,
                },
                OperationStatus::Failed => {
                    let reason = report
                        .failure_reason
                        .clone()
                        .unwrap_or_else(|| FAILED_WITHOUT_A_REASON.to_owned());
                    if progress.operation() == AssignmentAction::Delete
                        && crate::aws_call::plain_words(&reason).contains(ENTITLEMENT_MISSING)
                    {
                        Decision::Done {
                            completion: Completion::AlreadySatisfied,
                            operation_request_id: request_id,
                        }
                    } else if (progress.maybe_submitted || progress.is_owed_revoke())
                        && !progress.resubmitted_after_failure
                    {
                        resubmit_after_failure(progress)
                    } else {
                        Decision::DeadLetter(DeadLetter {
                            class: ErrorClass::Failed,
                            code: "FAILED".to_owned(),
                            message: reason,
                            attempts: progress.attempt,
                            operation_request_id: request_id,
                        })
                    }
                }
                OperationStatus::InProgress => {
                    in_progress(progress, request_id, now, policy, jitter)
                }
            }
        }
        Err(error) => on_error(progress, error, now, policy, jitter),
    }
}

/// This operation FAILED, but an earlier submit of the same change may have taken
/// effect unanswered (its delivery stopped before storing the poll, or its answer was
/// lost). Dead-lettering would report a failure for a change that may stand, and a
/// grant's expiry would never be scheduled. Submitting once more asks Identity Center
/// itself: a create of an existing assignment succeeds, a delete of a missing one fails
/// as `EntitlementItem doesn't exist`, and an earlier operation still running answers
/// `ConflictException` until it ends.
///
/// A revoke the worker owes (an expiry's or an undo's delete) is submitted once more
/// too: dead-lettered, it leaves access nobody's latest decision asks for, and an undo
/// started by a delivery that only may have created is often redundant (another chain
/// of the same request undid the create), where one fault of Identity Center's would
/// report a request already `superseded` as dead-lettered too. The resubmit's own
/// `FAILED` is final.
fn resubmit_after_failure(progress: &Progress) -> Decision {
    let mut next = progress.at(progress.operation(), Stage::Submit, 1);
    next.resubmitted_after_failure = true;
    Decision::Continue {
        progress: next,
        delay_seconds: 0,
    }
}

/// Whether SQS took a grant's record only after its `notAfter` (by more than the clock
/// skew allowed): every delivery of it then found the grant expired before its submit
/// and made no call, whatever the ledger holds (a `pending` claim of its own may be an
/// earlier attempt's, left by a worker that stopped).
pub fn sent_after_not_after(
    sent_at: Option<OffsetDateTime>,
    not_after: Option<OffsetDateTime>,
) -> bool {
    // Checked: a notAfter at the end of year 9999 has no time a minute after it.
    matches!((sent_at, not_after), (Some(sent), Some(end))
        if end.checked_add(MAX_CLOCK_SKEW).is_some_and(|end| sent > end))
}

/// Whether a dead letter ends a grant's chain as `failed` in the ledger: AWS answered
/// FAILED at a poll of the decision's own create. Not at the submit: that record is the
/// chain's only one, and a delivery of it again must still end with the dead letter
/// (whose send may have failed).
pub fn records_failed(progress: &Progress, dead_letter: &DeadLetter, intent: Intent) -> bool {
    dead_letter.class == ErrorClass::Failed
        && intent == Intent::Grant
        && progress.purpose == Purpose::Decision
        && matches!(progress.stage, Stage::Poll { .. })
}

/// Whether a submit SQS delivers again is a copy of a step its chain has passed, the
/// chain having ended `failed` ([`records_failed`]): the ledger records exactly this
/// decision, under this delivery's first message id, as failed. Submitted again, its
/// create could land against the dead letter the request was reported with. A redrive
/// of that dead letter comes under another message id, and starts the decision again.
pub fn copy_of_failed_chain(
    progress: &Progress,
    receive_count: u32,
    own: &AccessDecision,
    recorded: Option<&(AccessDecision, RecordedState)>,
) -> bool {
    receive_count > 1
        && progress.purpose == Purpose::Decision
        && progress.stage == Stage::Submit
        && recorded.is_some_and(|(latest, state)| {
            *state == RecordedState::Failed && latest.order == own.order
        })
}

/// Whether a grant step refused because its `notAfter` has passed belongs to a decision
/// the ledger records carried out (`present`, its expiry still to come or under way, or
/// `revoked`, taken back by its expiry since; this decision under its first message id):
/// a copy of the chain that carried it out (a record SQS delivers again, perhaps the one
/// whose outcome event SQS refused), or a sibling of it (a retry come due after
/// `notAfter`, a second send of the decision). Refused as `expired`, it would report a
/// grant that was carried out as never submitted. Not a step that may have submitted
/// (`maybe_submitted`: it is not refused as expired at all, and its change may land
/// after the expiry took the access back, which only its own chain, to its confirm and
/// expiry, ends).
pub fn carried_out_before(
    progress: &Progress,
    own: &AccessDecision,
    recorded: &(AccessDecision, RecordedState),
) -> bool {
    let (latest, state) = recorded;
    progress.purpose == Purpose::Decision
        && !progress.maybe_submitted
        && matches!(state, RecordedState::Present | RecordedState::Revoked)
        && latest.order == own.order
}

/// Whether a submit SQS delivers again (`ApproximateReceiveCount` above 1) may repeat
/// one that the earlier delivery made before it stopped short of storing what followed
/// (a worker stopped mid-batch, a send that failed): then the change may have taken
/// effect unanswered, as after a lost answer. A decision's earlier delivery can have
/// submitted only after claiming it (`claimed`: the ledger's latest decision is this
/// one); a delivery refused by a guardrail before its claim, or refused as `expired`
/// (its claim recorded absent), made no call, and its redelivery must be refused alike.
pub fn redelivered_submit(progress: &Progress, receive_count: u32, claimed: bool) -> bool {
    receive_count > 1
        && progress.stage == Stage::Submit
        && (progress.purpose != Purpose::Decision || claimed)
}

/// Whether the change of a step that is being dead-lettered may be in place, or may
/// still come: an earlier submit may have taken effect unanswered, the operation was
/// still running at the poll deadline, or its status could not be read after it was
/// submitted. Attempts exhausted at a submit count too: the last attempt's answer may
/// have been lost, and an expiry that finds nothing to revoke costs one call. A refusal
/// before this step's call says nothing of an earlier one: a retry refused by a
/// guardrail tightened meanwhile, or a poll by a poll deadline lowered meanwhile, follows
/// a submit that may have landed (or was accepted).
pub fn may_have_taken_effect(progress: &Progress, dead_letter: &DeadLetter) -> bool {
    if !dead_letter.after_a_call() {
        // A poll stamped ahead of the clock was not written by the worker: it tells of
        // no submit.
        return dead_letter.code != SUBMITTED_AT_IN_FUTURE
            && (progress.maybe_submitted
                || matches!(progress.stage, Stage::Poll { .. } | Stage::Confirm { .. }));
    }
    progress.maybe_submitted
        || match dead_letter.class {
            ErrorClass::TimedOut | ErrorClass::Exhausted => true,
            // A poll refused as another request's says nothing about this one.
            ErrorClass::Permanent => {
                progress.stage != Stage::Submit && dead_letter.code != OPERATION_MISMATCH
            }
            ErrorClass::Failed
            | ErrorClass::InvalidRequest
            | ErrorClass::Forbidden
            | ErrorClass::Expired => false,
        }
}

fn in_progress(
    progress: &Progress,
    request_id: Option<String>,
    now: OffsetDateTime,
    policy: &Policy,
    jitter: f64,
) -> Decision {
    match (&progress.stage, request_id) {
        // Nothing to poll without a request id. Submitting again is safe (create of an
        // existing assignment succeeds, delete of a missing one is already-satisfied).
        (_, None) => retry_call(
            progress,
            &CallError {
                kind: ErrorKind::ServerError,
                code: "MissingRequestId".to_owned(),
                message: "IN_PROGRESS answer carried no request id".to_owned(),
            },
            policy,
            jitter,
        ),
        (Stage::Submit | Stage::ExpireWait | Stage::Confirm { .. }, Some(operation_request_id)) => {
            next_poll(
                progress,
                operation_request_id,
                0,
                now,
                now,
                policy,
                LastSeen::InProgress,
            )
        }
        (
            Stage::Poll {
                polls,
                submitted_at,
                ..
            },
            Some(operation_request_id),
        ) => next_poll(
            progress,
            operation_request_id,
            polls + 1,
            *submitted_at,
            now,
            policy,
            LastSeen::InProgress,
        ),
    }
}

/// Schedules the next poll, or gives up once the poll deadline has passed.
/// What the last poll saw, for the timed-out message: the operation in progress, or
/// not yet known to Describe*Status.
#[derive(Debug, Clone, Copy)]
enum LastSeen {
    InProgress,
    NotVisible,
}

fn next_poll(
    progress: &Progress,
    operation_request_id: String,
    polls: u32,
    submitted_at: OffsetDateTime,
    now: OffsetDateTime,
    policy: &Policy,
    last_seen: LastSeen,
) -> Decision {
    let elapsed = (now - submitted_at).whole_seconds().max(0);
    let remaining = i64::from(policy.poll_deadline_seconds) - elapsed;
    if remaining <= 0 {
        let (code, state) = match last_seen {
            LastSeen::InProgress => ("IN_PROGRESS", "still IN_PROGRESS"),
            LastSeen::NotVisible => (
                "ResourceNotFoundException",
                "still unknown to Describe*Status",
            ),
        };
        return Decision::DeadLetter(DeadLetter {
            class: ErrorClass::TimedOut,
            code: code.to_owned(),
            message: format!(
                "operation {state} {elapsed} s after submit (deadline {} s, {polls} polls)",
                policy.poll_deadline_seconds
            ),
            attempts: polls,
            operation_request_id: Some(operation_request_id),
        });
    }
    // The last poll lands on the deadline rather than up to a whole interval past it.
    let delay = poll_delay_seconds(polls, policy).min(u32::try_from(remaining).unwrap_or(u32::MAX));
    Decision::Continue {
        progress: progress.at(
            progress.operation(),
            Stage::Poll {
                operation_request_id,
                polls,
                submitted_at,
            },
            1,
        ),
        delay_seconds: delay,
    }
}

fn on_error(
    progress: &Progress,
    error: &CallError,
    now: OffsetDateTime,
    policy: &Policy,
    jitter: f64,
) -> Decision {
    if error.kind.is_transient() {
        return retry_call(progress, error, policy, jitter);
    }
    if error.kind == ErrorKind::ResourceNotFound {
        match &progress.stage {
            Stage::Submit if progress.operation() == AssignmentAction::Delete => {
                return Decision::Done {
                    completion: Completion::AlreadySatisfied,
                    operation_request_id: None,
                };
            }
            Stage::Poll {
                operation_request_id,
                polls,
                submitted_at,
            } if *polls < NOT_YET_VISIBLE_POLLS => {
                return next_poll(
                    progress,
                    operation_request_id.clone(),
                    polls + 1,
                    *submitted_at,
                    now,
                    policy,
                    LastSeen::NotVisible,
                );
            }
            _ => {}
        }
    }
    let message = match &progress.stage {
        Stage::Poll {
            operation_request_id,
            polls,
            ..
        } if error.kind == ErrorKind::ResourceNotFound => format!(
            "operation {operation_request_id} still unknown to Describe*Status after {polls} polls: {}",
            error.message
        ),
        _ => error.message.clone(),
    };
    Decision::DeadLetter(DeadLetter {
        class: ErrorClass::Permanent,
        code: error.code.clone(),
        message,
        attempts: progress.attempt,
        operation_request_id: progress.operation_request_id().map(str::to_owned),
    })
}

/// The pacer held the step back before its call (SPEC §10): the same step again after
/// `delay_seconds`, with the same attempt. No call was made, so nothing may have taken
/// effect and no budget is spent.
pub fn deferred(progress: &Progress, delay_seconds: u32) -> Decision {
    Decision::Continue {
        progress: progress.clone(),
        delay_seconds: delay_seconds.min(MAX_DELAY_SECONDS),
    }
}

/// Repeats the same step after a backoff, or dead-letters once the budget is spent.
pub(crate) fn retry(
    progress: &Progress,
    error: &CallError,
    policy: &Policy,
    jitter: f64,
) -> Decision {
    if progress.attempt >= policy.max_attempts {
        return Decision::DeadLetter(DeadLetter {
            class: ErrorClass::Exhausted,
            code: error.code.clone(),
            message: format!(
                "{} (gave up after {} attempts on step {})",
                error.message,
                progress.attempt,
                progress.step_name()
            ),
            attempts: progress.attempt,
            operation_request_id: progress.operation_request_id().map(str::to_owned),
        });
    }
    let busy = error.kind == ErrorKind::Busy;
    Decision::Continue {
        progress: progress.at(
            progress.operation(),
            progress.stage.clone(),
            progress.attempt + 1,
        ),
        delay_seconds: backoff_seconds(progress.attempt, busy, policy, jitter),
    }
}

/// [`retry`] after an Identity Center call: a submit whose answer may hide a success
/// marks the request as possibly carried out (SPEC §3, `expired`).
pub(crate) fn retry_call(
    progress: &Progress,
    error: &CallError,
    policy: &Policy,
    jitter: f64,
) -> Decision {
    let mut decision = retry(progress, error, policy, jitter);
    if let Decision::Continue { progress: next, .. } = &mut decision {
        next.maybe_submitted |=
            progress.stage == Stage::Submit && error.kind.may_have_taken_effect();
    }
    decision
}

/// Delay before the poll that follows `polls_done` polls: the initial delay, doubling,
/// capped at the configured maximum.
pub fn poll_delay_seconds(polls_done: u32, policy: &Policy) -> u32 {
    let doubled = u64::from(policy.poll_initial_delay_seconds) << polls_done.min(20);
    let capped = doubled
        .min(u64::from(policy.poll_max_delay_seconds))
        .min(u64::from(MAX_DELAY_SECONDS));
    u32::try_from(capped).unwrap_or(MAX_DELAY_SECONDS)
}

/// A random draw from the caller as a fraction in [0, 1]; one that is not a number
/// counts as 0.
pub(crate) fn unit_fraction(value: f64) -> f64 {
    if value.is_finite() {
        value.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// Exponential backoff with full jitter ("Exponential Backoff And Jitter", AWS
/// Architecture Blog): a uniform draw from [floor, window], where the window doubles per
/// failed attempt from the base and is capped at SQS's 900 s. `failed_attempt` counts
/// from 1. When the outstanding-operations limit is hit (`busy`), the delay is at least
/// `busy_backoff_min_seconds` (SPEC §3: the floor). The window is not raised with it:
/// the outstanding creates finish within seconds, and a retry that comes back before
/// its process's next create turn is deferred by the pacer without spending an
/// attempt, so a second or third busy answer waits the floor again. A window grown
/// from the floor (15, 30, 60 s) made the few grants that were answered busy twice or
/// three times the last to finish. A limit that stays in use longer still meets a
/// growing backoff: with the defaults the window passes the floor at the fourth
/// attempt.
pub fn backoff_seconds(failed_attempt: u32, busy: bool, policy: &Policy, jitter: f64) -> u32 {
    let cap = f64::from(MAX_DELAY_SECONDS);
    let floor = if busy {
        f64::from(policy.busy_backoff_min_seconds).min(cap)
    } else {
        0.0
    };
    let base = f64::from(policy.backoff_base_seconds);
    let exponent = i32::try_from(failed_attempt.saturating_sub(1).min(30)).unwrap_or(30);
    let window = (base * 2f64.powi(exponent)).min(cap).max(floor);
    let delay = floor + unit_fraction(jitter) * (window - floor);
    // Bounded to [0, 900] above, so the conversion cannot truncate.
    delay.round().clamp(0.0, cap) as u32
}
