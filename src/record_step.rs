//! One record carried one step forward. The rules are the pure functions of
//! [`crate::lifecycle`] and [`crate::ledger`]; this module makes the calls they ask for
//! (ledger, then Identity Center, then ledger) and turns the resulting decision into the
//! messages the handler stores (SPEC §5).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::SqsMessage;
use time::OffsetDateTime;
use tracing::Span;

use crate::adapters::{LEDGER_OPERATION_TIMEOUT, SSO_OPERATION_TIMEOUT};
use crate::clock::WallClock;
use crate::config::Config;
use crate::handler::{Destination, Invocation, Worker};
use crate::identity_center::{CallResult, IdentityCenter, Pace, PacedCall};
use crate::ids::{CorrelationId, IamPrincipalArn};
use crate::ledger::{
    AccessDecision, ClaimAnswer, DecisionSummary, Intent, Ledger, LedgerKey, Presence,
    RecordAnswer, RecordedState,
};
use crate::lifecycle::{self, Completion, DeadLetter, Decision, ErrorClass, RedriveCaution};
use crate::messages::{self, Outcome, OutcomeContext};
use crate::metrics::{Answer, Api, InvocationMetrics};
use crate::portfolio::{self, AfterSubmit, Settled};
use crate::portfolio_access::ListedPrincipal;
use crate::progress::{DecisionStamp, Progress, Purpose, Resource, Stage, UndoReport};
use crate::queue::{OutgoingMessage, QueueSender};
use crate::request::{
    Assignment, AssignmentAction, InvalidRequest, Message, PortfolioChange, PortfolioPrincipal,
    Target,
};
use crate::service_catalog::ServiceCatalog;

/// No Identity Center call starts with less than this left before the invocation's
/// deadline: the call itself, the ledger call after a confirmed change, and the sends
/// that store the step: a batch call per queue, and when SQS refuses a whole batch, its
/// entries alone (the handler sends each wave at once), each at most
/// [`Config::sqs_operation_timeout`]; and a second to answer Lambda. 12 s with the
/// default SQS bounds. That is one queue's sends; the handler sends the queues one after
/// another (next steps, dead letters, outcome events), and the later ones run past the
/// reserve only when SQS is slow enough to use the bounds above in full, which leaves
/// their records for redelivery. Some steps make more than one ledger call after their
/// AWS call: a grant's poll answered `FAILED` two (the read of `unless_settled`, then
/// `record_failed`), and so does a confirm whose write the ledger refuses for good or
/// on the step's last attempt (the write, then that read), and an expiry of a grant
/// never recorded carried out (its mark refused, then `absent`); a portfolio step two reads
/// after its Service Catalog call, a confirm after its list or an associate of an `IAM`
/// principal the list already showed (an `IAM` grant's: the name's item, then the
/// record; a change not shown: the entry's item and the name's),
/// and an `IAM` grant about to be dead-lettered after its associate or list (the
/// entry's item and the name's); three when a change not shown reaches its poll
/// deadline, or a read fails on the step's last attempt (the dead letter reads the
/// entry's item, and the name's, again); four when an `IAM` grant's confirm (or such
/// an associate) has its record refused (the name's item, the record, then the entry's
/// item and the name's).
/// Two fit when the call takes at most 3 s of its 5 s (`SSO_OPERATION_TIMEOUT`, as the
/// Identity Center call the reserve counts), three at most 1 s; otherwise they may leave
/// the sends to be cut off, and the records to SQS's redelivery, like the later queues
/// above.
pub fn call_reserve(config: &Config) -> Duration {
    SSO_OPERATION_TIMEOUT
        + LEDGER_OPERATION_TIMEOUT
        + 2 * config.sqs_operation_timeout()
        + Duration::from_secs(1)
}

const NEAR_DEADLINE: &str = "invocation deadline near; no new AWS call";

/// The next step of one record, before it is sent.
#[derive(Debug)]
pub enum Plan {
    /// Leave the record on the work queue: SQS delivers it again after the
    /// visibility timeout.
    Redeliver(&'static str),
    /// Durable once these messages are stored (none: nothing to store).
    Store {
        messages: Vec<(Destination, OutgoingMessage)>,
        terminal: Option<Terminal>,
    },
}

/// A terminal outcome a plan reports, for the log and the metrics.
#[derive(Debug, Clone, Copy)]
pub struct Terminal {
    pub action: &'static str,
    pub outcome: &'static str,
    pub error_class: Option<ErrorClass>,
    /// Where its time to outcome counts from (the request's first receipt, an expiry's
    /// `notAfter`); none when it is not known: a restored-expiry's revoke came due at a
    /// later grant's end, which its step does not carry.
    pub received_at: Option<OffsetDateTime>,
    /// The outcome of a grant's expiry step.
    pub expiry: bool,
    /// A request's outcome; not for the end of a restored-expiry chain, whose request
    /// reported its outcome before.
    pub request_outcome: bool,
    /// A portfolio principal's removal whose outcome lists residual access.
    pub residual_access: bool,
}

impl Terminal {
    pub fn count(&self, metrics: &InvocationMetrics, now: OffsetDateTime) {
        if self.request_outcome {
            let elapsed_ms = self
                .received_at
                .map(|received_at| (now - received_at).as_seconds_f64() * 1000.0);
            metrics.outcome(self.action, self.outcome, self.error_class, elapsed_ms);
        }
        if self.expiry && matches!(self.outcome, "succeeded" | "already-satisfied") {
            metrics.expiry_revoke();
        }
        if self.residual_access {
            metrics.residual_access_report();
        }
    }
}

/// A lifecycle decision about `progress`, with the principals that keep access after
/// a portfolio principal's removal (SPEC §9), when a list was read, and the later grant
/// whose end a restored-expiry chain must watch ([`lifecycle::later_grant_to_watch`]).
struct Step {
    decision: Decision,
    progress: Progress,
    residual_access: Option<Vec<ListedPrincipal>>,
    watch: Option<DecisionSummary>,
    /// A dead letter after a change AWS confirmed, with no later decision recorded when
    /// the ledger was read: the change is in place, and landed before any later decision.
    in_place: bool,
    /// A grant refused before its call whose claim, made by an earlier attempt or
    /// delivery, the ledger holds (or could not be read within the step's budget): it is
    /// the latest decision, and keeps its expiry.
    claimed_before: bool,
}

/// Where a step ended: a decision, or no decision yet.
enum Stepped {
    Decided(Box<Step>),
    Redeliver(&'static str),
    /// Nothing to do or send: the record is acknowledged as it is.
    Ended(&'static str),
    /// The ledger holds this decision under another first delivery (a redrive): the
    /// step starts again as that delivery's, so that the ledger's checks see it as the
    /// same decision. The message id of that delivery.
    Restamp(String),
}

/// What a change Identity Center or Service Catalog confirmed (`completion`, with its
/// operation id) comes to, given what recording it found (`answer`; for an undo, the
/// latest decision read): [`lifecycle::after_change`].
fn after_confirmed(
    progress: Progress,
    completion: Completion,
    operation_request_id: Option<String>,
    answer: &RecordAnswer,
    now: OffsetDateTime,
) -> Stepped {
    let decision = match lifecycle::after_change(&progress, completion, answer, now) {
        Decision::Done {
            completion,
            operation_request_id: None,
        } => Decision::Done {
            completion,
            operation_request_id,
        },
        other => other,
    };
    decided(decision, progress)
}

fn decided(decision: Decision, progress: Progress) -> Stepped {
    Stepped::Decided(Box::new(Step {
        decision,
        progress,
        residual_access: None,
        watch: None,
        in_place: false,
        claimed_before: false,
    }))
}

/// One request's step: what it is about and the ports to carry it out.
struct RecordRun<'a, I, Q, L, S> {
    worker: &'a Worker<I, Q, L, S>,
    message: &'a Message,
    target: Target<'a>,
    key: LedgerKey,
    decision: AccessDecision,
    deadline: Option<SystemTime>,
    /// The invocation's whole time, from its start to its deadline, when known.
    timeout: Option<Duration>,
    clock: WallClock,
    /// The run is again under the first message id the ledger holds: this delivery is
    /// another one of the same decision (a redrive, a repeated send), not a copy of
    /// that first delivery's chain.
    restamped: bool,
    metrics: &'a InvocationMetrics,
    /// How many times SQS has delivered the record.
    receive_count: u32,
    /// When SQS took the record (its SentTimestamp).
    sent_at: Option<OffsetDateTime>,
    /// A pacer turn taken for this record and not yet used: set by [`Self::pace`], and
    /// carried into the run again under the recorded message id
    /// ([`Stepped::Restamp`]), which still has the one call to make. (Atomic only so
    /// that the run may be shared across its awaits.)
    paced: AtomicBool,
}

impl<I: IdentityCenter, Q: QueueSender, L: Ledger, S: ServiceCatalog> Worker<I, Q, L, S> {
    pub(crate) async fn run_record(
        &self,
        record: &SqsMessage,
        parsed: &Result<Message, InvalidRequest>,
        invocation: &Invocation,
    ) -> Plan {
        let now = invocation.clock.now();
        let received_at = first_receipt(record, now);
        let message = match parsed {
            Ok(message) => message,
            Err(invalid) => return self.invalid(record, invalid, received_at, now),
        };
        record_request_fields(message);

        let (action, target) = message.request.target();
        let mut progress = message.progress.clone().unwrap_or_else(|| {
            Progress::start_for(
                target.resource(),
                action,
                received_at,
                first_stamp(record, message, received_at),
            )
        });
        let mut restamped = false;
        let mut paced = false;
        loop {
            let decision = AccessDecision::of_request(&message.request, &progress.stamp);
            let run = RecordRun {
                worker: self,
                message,
                target,
                key: LedgerKey::of(target),
                decision,
                deadline: invocation.deadline,
                timeout: invocation.timeout,
                clock: invocation.clock,
                restamped,
                metrics: &invocation.metrics,
                receive_count: receive_count(record),
                sent_at: sent_at(record),
                paced: AtomicBool::new(paced),
            };
            return match run.step(progress.clone()).await {
                Stepped::Decided(step) => run.commit(*step),
                Stepped::Redeliver(reason) => Plan::Redeliver(reason),
                Stepped::Ended(reason) => {
                    tracing::info!(reason, "nothing left to do; acknowledged");
                    Plan::Store {
                        messages: Vec::new(),
                        terminal: None,
                    }
                }
                // Once: the second claim matches the recorded decision exactly.
                Stepped::Restamp(first_message_id) if !restamped => {
                    tracing::info!("the ledger holds this decision from an earlier delivery");
                    progress.stamp.first_message_id = first_message_id;
                    restamped = true;
                    paced = run.paced.load(Ordering::Relaxed);
                    continue;
                }
                Stepped::Restamp(_) => Plan::Redeliver("the ledger's claim did not settle"),
            };
        }
    }

    fn invalid(
        &self,
        record: &SqsMessage,
        invalid: &InvalidRequest,
        received_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Plan {
        let body = record.body.as_deref().unwrap_or_default();
        let correlation_id = salvaged_correlation_id(body);
        if let Some(id) = &correlation_id {
            Span::current().record("correlation_id", id.as_str());
        }
        // The reason may quote the request's principal, which SPEC §12 keeps out of what
        // INFO prints: the dead letter carries it.
        tracing::warn!(code = invalid.code, "invalid request");
        tracing::debug!(reason = %invalid.message, "invalid request's reason");
        let dead_letter = DeadLetter::before_any_call(
            ErrorClass::InvalidRequest,
            invalid.code,
            invalid.message.clone(),
        );
        let context = OutcomeContext {
            correlation_id: correlation_id.as_ref(),
            action: None,
            request: None,
            operation_request_id: None,
            attempts: 0,
            polls: 0,
            received_at,
            finished_at: now,
            requested_at: Some(sent_at(record).unwrap_or(received_at)),
            expires_at: None,
            trigger: None,
            residual_access: None,
        };
        self.store_dead_letter(body, &dead_letter, &context)
    }

    fn store_dead_letter(
        &self,
        body: &str,
        dead_letter: &DeadLetter,
        context: &OutcomeContext<'_>,
    ) -> Plan {
        // The reason may name principals (a refused pattern, an operation about another
        // principal), which SPEC §12 keeps out of what INFO prints: the dead letter's
        // ErrorMessage carries it.
        tracing::warn!(
            error_class = dead_letter.class.as_str(),
            error_code = %dead_letter.code,
            "dead-lettering"
        );
        tracing::debug!(
            reason = %messages::truncate(&dead_letter.message, messages::MAX_ERROR_MESSAGE_BYTES),
            "dead letter's reason"
        );
        let mut messages = vec![(
            Destination::DeadLetter,
            messages::dead_letter_message(body, dead_letter, context.correlation_id),
        )];
        if self.config.outcome_queue.is_some() {
            let context = OutcomeContext {
                attempts: dead_letter.attempts,
                ..*context
            };
            match messages::outcome_message(&context, Outcome::DeadLettered(dead_letter)) {
                Ok(event) => messages.push((Destination::Outcome, event)),
                Err(error) => {
                    tracing::error!(%error, "could not encode the outcome event");
                    return Plan::Redeliver("outcome event not encodable");
                }
            }
        }
        Plan::Store {
            messages,
            terminal: Some(Terminal {
                action: context.action.unwrap_or("unknown"),
                outcome: "dead-lettered",
                error_class: Some(dead_letter.class),
                received_at: Some(context.received_at),
                expiry: context.trigger.is_some(),
                request_outcome: true,
                residual_access: false,
            }),
        }
    }
}

impl<I: IdentityCenter, Q: QueueSender, L: Ledger, S: ServiceCatalog> RecordRun<'_, I, Q, L, S> {
    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    fn jitter() -> f64 {
        fastrand::f64()
    }

    fn policy(&self) -> &lifecycle::Policy {
        &self.worker.config.policy
    }

    /// Makes the calls of one step and decides what follows.
    async fn step(&self, mut progress: Progress) -> Stepped {
        let span = Span::current();
        span.record("step", progress.step_name());
        span.record("purpose", progress.purpose_name());
        span.record("attempt", progress.attempt);

        if progress.stage == Stage::ExpireWait && progress.purpose.is_restored_expiry() {
            match self.restored_expiry_due(progress).await {
                Ok(due) => progress = due,
                Err(stop) => return stop,
            }
        }
        // At every stage of an expiry, not only its wait: the worker writes expiry steps
        // only for grants with notAfter, and anyone who may send to the queue can write one.
        if progress.purpose == Purpose::Expiry || progress.stage == Stage::ExpireWait {
            let Some(not_after) = self.decision.not_after else {
                let dead_letter = DeadLetter::before_any_call(
                    ErrorClass::InvalidRequest,
                    "BadEnvelope",
                    "an expiry step belongs to a grant with notAfter",
                );
                return decided(Decision::DeadLetter(dead_letter), progress);
            };
            if progress.stage == Stage::ExpireWait {
                if let Some(wait) = lifecycle::expiry_wait(&progress, not_after, self.now()) {
                    return decided(wait, progress);
                }
                progress = progress.at(AssignmentAction::Delete, Stage::Submit, 1);
            }
        }

        if progress.stage == Stage::Submit {
            progress = match self.after_redelivery(progress).await {
                Ok(progress) => progress,
                Err(stop) => return stop,
            };
            let now = self.now();
            // An undo's operation is settled at its fence, which may turn it around: it
            // is judged after it (below), never as the operation its envelope wrote.
            let judged_now = !matches!(progress.purpose, Purpose::Undo { .. });
            let refusal = judged_now
                .then(|| {
                    self.worker
                        .config
                        .guardrails
                        .refuse_target(progress.operation(), self.target)
                })
                .flatten()
                .or_else(|| lifecycle::check_requested_at(&progress, now));
            if let Some(dead_letter) = refusal {
                return self
                    .refused(dead_letter.before_attempt(&progress), progress)
                    .await;
            }
            if self.out_of_time() {
                return self.stored_again(progress, NEAR_DEADLINE);
            }
            if let Some(expired) = lifecycle::check_expiry(&progress, self.decision.not_after, now)
            {
                return self.expired(expired, progress).await;
            }
            // Paced before the ledger's claim, so that a deferred submit costs no claim.
            // (An undo's fence may turn it around after its pacing: a delete into a create,
            // which the outstanding limit then answers as for any create; a create into a
            // revoke the worker owes, paced as the create, which may defer it. Both rare.)
            if let Some(deferred) = self.pace(&progress).await {
                return deferred;
            }
            match self.fence(progress, RecordedState::Pending).await {
                Ok(fenced) => progress = fenced,
                Err(stop) => return stop,
            }
            // The guardrails judge the operation actually carried out: for an undo, whose
            // fence may turn it around either way, this is the only check.
            let guardrails = &self.worker.config.guardrails;
            if let Some(dead_letter) = guardrails.refuse_target(progress.operation(), self.target) {
                return self
                    .refused(dead_letter.before_attempt(&progress), progress)
                    .await;
            }
            // The pacer's wait and the claim take time: a grant whose end came meanwhile
            // is not created after it.
            if let Some(expired) =
                lifecycle::check_expiry(&progress, self.decision.not_after, self.now())
            {
                return self.expired(expired, progress).await;
            }
        }
        if let Some(dead_letter) = lifecycle::check_envelope(&progress, self.now(), self.policy()) {
            return self.refused(dead_letter, progress).await;
        }
        // Before the pacer too: a step it deferred would go back as a new message, and
        // with no time for any call, round and round with no receive counted.
        if self.out_of_time() {
            return self.stored_again(progress, NEAR_DEADLINE);
        }
        if progress.stage != Stage::Submit
            && let Some(deferred) = self.pace(&progress).await
        {
            return deferred;
        }
        if self.out_of_time() {
            return self.stored_again(progress, NEAR_DEADLINE);
        }

        let settled = match self.target {
            Target::Assignment(assignment) => {
                let result = self.call_identity_center(assignment, &progress).await;
                match lifecycle::check_operation_subject(&progress, &result, assignment) {
                    Some(dead_letter) => Decision::DeadLetter(dead_letter).into(),
                    None => {
                        let decision = lifecycle::decide(
                            &progress,
                            &result,
                            self.now(),
                            self.policy(),
                            Self::jitter(),
                        );
                        log_resubmit_after_failure(&progress, &decision, &result);
                        decision.into()
                    }
                }
            }
            Target::Portfolio(change) => match self.call_service_catalog(change, &progress).await {
                Ok(settled) => settled,
                Err(reason) => return self.stored_again(progress, reason),
            },
        };
        progress.maybe_submitted |= settled.landed;
        match settled.decision {
            // Overtaken by a later decision: nothing of this request's to record.
            done @ Decision::Done {
                completion: Completion::Superseded(_),
                ..
            } => decided(done, progress),
            Decision::Done {
                completion,
                operation_request_id,
            } => {
                let mut stepped = self
                    .confirm(progress, completion, operation_request_id)
                    .await;
                // Residual access belongs to the request's own removal, not to an undo
                // the confirmation may have started.
                if let Stepped::Decided(step) = &mut stepped
                    && matches!(step.decision, Decision::Done { .. })
                    && !matches!(step.progress.purpose, Purpose::Undo { .. })
                {
                    step.residual_access = settled.residual_access;
                }
                stepped
            }
            // (An expiry's dead letter is checked only when its delete may have landed:
            // another delivery's success does not settle it.)
            Decision::DeadLetter(dead_letter)
                if dead_letter.after_a_call()
                    && (progress.purpose == Purpose::Decision
                        || progress.purpose == Purpose::Expiry
                            && lifecycle::may_have_taken_effect(&progress, &dead_letter)) =>
            {
                self.unless_settled(dead_letter, progress).await
            }
            other => decided(other, progress),
        }
    }

    /// A step with too little of the invocation left for its AWS call, stored again to
    /// run at once in another. Left for SQS to deliver again, it would wait out the
    /// visibility timeout (an expiry come due would revoke minutes late) and count
    /// towards the receives that end in the dead-letter queue without a reason; and a
    /// redelivery takes its own claim for a submit that may have been made, which lets
    /// a grant be carried out past its `notAfter`.
    ///
    /// But an invocation whose whole time is within the reserve can make no call at all,
    /// and a step stored again would meet the same shortage forever, with no dead letter
    /// and no alarm: it is left for SQS, whose receive count ends it in the dead-letter
    /// queue.
    fn stored_again(&self, progress: Progress, reason: &'static str) -> Stepped {
        let reserve = call_reserve(&self.worker.config);
        if let Some(timeout) = self.timeout
            && timeout <= reserve
        {
            tracing::error!(
                timeout_ms = timeout.as_millis(),
                reserve_ms = reserve.as_millis(),
                "the invocation's whole time is within the reserve an AWS call needs: \
                 raise the function's timeout"
            );
            return Stepped::Redeliver(reason);
        }
        tracing::info!(reason, "stored again; no call made");
        decided(lifecycle::deferred(&progress, 0), progress)
    }

    /// A submit SQS delivers again may repeat one the earlier delivery made
    /// ([`lifecycle::redelivered_submit`]); for a decision, the ledger says whether that
    /// delivery got as far as its claim: yes if it records this decision, no if an
    /// earlier one or none, perhaps if a later one (which may have come after the
    /// claim). Then the change this request may have made is undone toward the later
    /// decision: a grant's create removed again, or a revoke's delete (which may have
    /// landed after a later grant's create, and whose undo the earlier delivery may have
    /// planned and lost) made good by creating the later grant's access, which a
    /// restored-expiry step ends at that grant's `notAfter`. A failed read counts as
    /// claimed: refusing a grant that may exist as `expired` would leave it without its
    /// expiry.
    ///
    /// A copy of a submit whose chain has since ended `failed`
    /// ([`lifecycle::copy_of_failed_chain`]) ends with no call and no second outcome.
    async fn after_redelivery(&self, mut progress: Progress) -> Result<Progress, Stepped> {
        if self.receive_count <= 1 {
            return Ok(progress);
        }
        let recorded = match progress.purpose {
            Purpose::Decision => {
                let recorded = self.worker.ledger.latest_with_state(&self.key).await;
                self.metrics.call(Api::GetItem, Answer::of(&recorded));
                if let Ok(recorded) = &recorded
                    && !self.restamped
                    && lifecycle::copy_of_failed_chain(
                        &progress,
                        self.receive_count,
                        &self.decision,
                        recorded.as_ref(),
                    )
                {
                    return Err(Stepped::Ended(
                        "delivered again after this grant's chain ended failed",
                    ));
                }
                Some(recorded)
            }
            Purpose::Expiry | Purpose::Undo { .. } => None,
        };
        if progress.maybe_submitted {
            return Ok(progress);
        }
        let claimed = match (&progress.purpose, recorded) {
            // No delivery of a grant's record sent after its notAfter made a call.
            (Purpose::Decision, _)
                if lifecycle::sent_after_not_after(self.sent_at, self.decision.not_after) =>
            {
                false
            }
            (Purpose::Decision, Some(recorded)) => {
                recorded.map_or(true, |latest| {
                    latest.is_some_and(|(latest, state)| {
                        let own = latest.is_same_decision_as(&self.decision);
                        // A grant of its own recorded absent was refused as `expired`
                        // (or has expired since; `revoked`: after it was carried out): no
                        // delivery is carrying it out. Another delivery's claim is its own
                        // too, whatever its message id: not a later decision.
                        let settled_absent = self.decision.order.intent == Intent::Grant
                            && matches!(state, RecordedState::Absent | RecordedState::Revoked);
                        if own {
                            !settled_absent
                        } else {
                            latest.order > self.decision.order
                        }
                    })
                })
            }
            // An expiry's or undo's own steps: no claim to read.
            (Purpose::Decision, None) | (Purpose::Expiry | Purpose::Undo { .. }, _) => true,
        };
        progress.maybe_submitted =
            lifecycle::redelivered_submit(&progress, self.receive_count, claimed);
        if progress.maybe_submitted {
            tracing::info!(
                receive_count = self.receive_count,
                "delivered again: an earlier delivery may have submitted this step"
            );
        }
        Ok(progress)
    }

    /// A refusal before this step's call. After an earlier call that may have carried
    /// the change out (a retry after an unanswered submit meeting a guardrail tightened
    /// meanwhile, a poll meeting a lowered poll deadline), the ledger is read as for any
    /// dead letter after such a call: behind a later decision the change is undone
    /// toward it rather than left standing.
    async fn refused(&self, mut dead_letter: DeadLetter, progress: Progress) -> Stepped {
        if lifecycle::may_have_taken_effect(&progress, &dead_letter) {
            // The refusal alone would read as "nothing was done". Put first, where the
            // 1 KiB cut of ErrorMessage cannot take it (a refusal may quote a long ARN).
            dead_letter.message = format!(
                "Refused after an earlier submit of this change, which may have carried it \
                 out all the same (check the access): {}",
                dead_letter.message
            );
            return self.unless_settled(dead_letter, progress).await;
        }
        // A grant with `notAfter` refused (by a guardrail tightened since): an earlier
        // attempt's claim, or an earlier delivery's, may have made it the latest decision.
        let may_be_claimed = progress.purpose == Purpose::Decision
            && progress.operation() == AssignmentAction::Create
            && self.decision.not_after.is_some();
        let claimed_before = if may_be_claimed {
            let recorded = self.worker.ledger.latest_with_state(&self.key).await;
            self.metrics.call(Api::GetItem, Answer::of(&recorded));
            match recorded {
                Ok(recorded) => {
                    recorded.is_some_and(|(latest, _)| latest.is_same_decision_as(&self.decision))
                }
                // The refusal made no call and would come again: within the step's
                // budget the read is made again rather than guessed (past it, the expiry
                // is kept: a grant that is the latest decision must not lose its end).
                // One the clock decides is not repeated into a call: only an earlier
                // attempt, or an earlier delivery, can have claimed; and a delivery
                // again whose read found that one's claim (or failed) says so in
                // `maybe_submitted` ([`Self::after_redelivery`]), which never reaches
                // here. One whose read found no claim has none to keep an expiry for.
                Err(error) if lifecycle::refusal_repeats(&dead_letter) => {
                    let again = lifecycle::on_ledger_error(
                        &progress,
                        &error,
                        self.policy(),
                        Self::jitter(),
                    );
                    if matches!(again, Decision::Continue { .. }) {
                        return decided(again, progress);
                    }
                    true
                }
                Err(_) => progress.attempt > 1 || progress.maybe_submitted,
            }
        } else {
            false
        };
        let mut stepped = decided(Decision::DeadLetter(dead_letter), progress);
        if let Stepped::Decided(step) = &mut stepped {
            step.claimed_before = claimed_before;
        }
        stepped
    }

    /// A dead letter is not sent for a decision another delivery already carried out
    /// ([`lifecycle::settled_elsewhere`]), nor for a change that may have landed behind
    /// a later decision, whose state is restored instead
    /// ([`lifecycle::behind_later_decision`]). A failed read leaves the dead letter, whose
    /// restart (an expiry's or undo's) then says the change may have landed, as does one
    /// whose change may still land behind a later decision found (`timed-out`); but a
    /// refusal that would come again repeats its step to read once more, within budget.
    async fn unless_settled(&self, dead_letter: DeadLetter, progress: Progress) -> Stepped {
        self.unless_settled_after(dead_letter, progress, None).await
    }

    /// [`Self::unless_settled`], for a `dead_letter` that may come after a change AWS
    /// `confirmed` (its completion and operation id): the ledger refused the write that
    /// records it. The change is in place whatever the step's stage. When the ledger
    /// holds this decision in the change's state (that write landed with its answer
    /// lost, or another delivery's did), the change is done as if recorded: this
    /// delivery made it. An undo, which records nothing, goes on from the item read (and
    /// the name's) as its confirm would have.
    async fn unless_settled_after(
        &self,
        dead_letter: DeadLetter,
        progress: Progress,
        confirmed: Option<(Completion, Option<String>)>,
    ) -> Stepped {
        let in_place = confirmed.is_some();
        let recorded = self.worker.ledger.latest_with_state(&self.key).await;
        self.metrics.call(Api::GetItem, Answer::of(&recorded));
        // A refusal that made no call and would come again: repeating the step costs
        // only this read, which decides whether a change that may have landed is undone
        // toward a later decision. Within the step's budget it is asked again. So is a
        // refusal the clock decides after an earlier submit may have landed (an instance
        // whose clock is behind the one that submitted): going on is what that submit
        // began. A dead letter after this step's own call is not repeated: its call
        // would be made again.
        let refused_after_a_submit = !dead_letter.after_a_call()
            && lifecycle::may_have_taken_effect(&progress, &dead_letter);
        if let Err(error) = &recorded
            && confirmed.is_none()
            && (lifecycle::refusal_repeats(&dead_letter) || refused_after_a_submit)
        {
            let again = lifecycle::on_ledger_error(&progress, error, self.policy(), Self::jitter());
            if matches!(again, Decision::Continue { .. }) {
                return decided(again, progress);
            }
        }
        let Ok(recorded) = recorded else {
            // Whether a later decision came before the change landed is unknown: the
            // restart says the change may have landed, so that a redrive behind a later
            // decision restores that decision's state.
            let mut landed = progress;
            landed.maybe_submitted |=
                in_place || lifecycle::may_have_taken_effect(&landed, &dead_letter);
            let caution = RedriveCaution::of(&landed, RedriveCaution::LedgerUnread);
            let dead_letter = RedriveCaution::put_on(caution, dead_letter);
            return decided(Decision::DeadLetter(dead_letter), landed);
        };
        let own = &self.decision;
        let now = self.now();
        if let Some((completion, operation_request_id)) = confirmed.clone() {
            let answer = match &progress.purpose {
                // This read is the one the undo's confirm could not make. A failed read
                // of the name's item leaves the dead letter: the entry's own decision may
                // not be the latest about the role.
                Purpose::Undo { .. } => match &recorded {
                    Some((latest, _)) => self
                        .latest_for_the_entry(latest.clone(), now)
                        .await
                        .ok()
                        .map(|latest| RecordAnswer::NotLatest(Some(latest))),
                    None => Some(RecordAnswer::NotLatest(None)),
                },
                Purpose::Decision | Purpose::Expiry
                    if lifecycle::recorded_carried_out(&progress, own, recorded.as_ref()) =>
                {
                    tracing::info!(
                        error_code = %dead_letter.code,
                        "the ledger holds the change this step confirmed; not dead-lettered"
                    );
                    Some(RecordAnswer::Recorded)
                }
                Purpose::Decision | Purpose::Expiry => None,
            };
            if let Some(answer) = answer {
                return after_confirmed(progress, completion, operation_request_id, &answer, now);
            }
        }
        // Checked as a step whose change may have landed; planned from `progress`, so
        // that a dead letter's restart says so only as the end below decides.
        let mut checked = progress.clone();
        checked.maybe_submitted |= in_place;
        if let Some(done) =
            lifecycle::settled_elsewhere(&progress, &dead_letter, own, recorded.as_ref())
        {
            tracing::info!(
                error_code = %dead_letter.code,
                "another delivery of this request already carried it out; not dead-lettered"
            );
            return decided(done, progress);
        }
        // A grant yields to a later removal of its IAM name in any spelling, as at its
        // confirm; a failed read goes by the entry's own item.
        let mut name_unread = false;
        let recorded = match recorded {
            Some((latest, state))
                if portfolio::dead_letter_reads_the_name(&checked, &dead_letter) =>
            {
                let for_the_entry = self.latest_for_the_entry(latest.clone(), now).await;
                name_unread = for_the_entry.is_err();
                Some((for_the_entry.unwrap_or(latest), state))
            }
            recorded => recorded,
        };
        let recorded = recorded.as_ref();
        match lifecycle::behind_later_decision(&checked, &dead_letter, own, recorded, now) {
            Some(superseded) => {
                tracing::warn!(
                    error_class = dead_letter.class.as_str(),
                    error_code = %dead_letter.code,
                    "the change may have landed, and a later decision stands: superseded \
                     (its state restored first when it wants the opposite), not dead-lettered"
                );
                // Only an end with nothing undone leaves the access to a grant to watch.
                let watch = recorded
                    .filter(|_| matches!(superseded, Decision::Done { .. }))
                    .and_then(|(latest, state)| {
                        lifecycle::later_grant_to_watch(&checked, latest, *state)
                    });
                let mut stepped = decided(superseded, progress);
                if let Stepped::Decided(step) = &mut stepped {
                    step.watch = watch;
                }
                stepped
            }
            None => {
                if lifecycle::records_failed(&progress, &dead_letter, own.order.intent) {
                    self.record_failed(&dead_letter).await;
                }
                let later = recorded.filter(|(latest, _)| {
                    !latest.is_same_decision_as(own) && latest.order > own.order
                });
                // A change that may still land behind the later decision found (an
                // operation still running at its poll deadline): the restart says so, so
                // that a redrive restores that decision's state.
                let mut progress = progress;
                progress.maybe_submitted |=
                    later.is_some() && lifecycle::may_have_taken_effect(&progress, &dead_letter);
                let opposite = later.is_some_and(|(latest, _)| {
                    latest.desired(now) != Presence::after(progress.operation())
                });
                let caution = if name_unread {
                    let mut unread = checked.clone();
                    unread.maybe_submitted |=
                        lifecycle::may_have_taken_effect(&unread, &dead_letter);
                    RedriveCaution::of(&unread, RedriveCaution::LedgerUnread)
                } else if opposite {
                    RedriveCaution::of(&progress, RedriveCaution::BehindLaterDecision)
                } else {
                    None
                };
                let dead_letter = RedriveCaution::put_on(caution, dead_letter);
                let later = later.is_some();
                let mut stepped = decided(Decision::DeadLetter(dead_letter), progress);
                if let Stepped::Decided(step) = &mut stepped {
                    step.in_place = in_place && !later;
                }
                stepped
            }
        }
    }

    /// Records the decision `failed` while it is the latest ([`lifecycle::records_failed`]).
    /// A failed write leaves a copy of an earlier step to submit again, as before.
    async fn record_failed(&self, dead_letter: &DeadLetter) {
        let answer = self
            .worker
            .ledger
            .record(
                &self.key,
                &self.decision.order,
                RecordedState::Failed,
                dead_letter.operation_request_id.as_deref(),
                self.now(),
            )
            .await;
        self.metrics.call(Api::UpdateItem, Answer::of(&answer));
        if let Err(error) = answer {
            tracing::warn!(
                kind = ?error.kind,
                code = %error.code,
                "could not record the grant as failed in the ledger"
            );
            tracing::debug!(error = %error.message, "the ledger's answer");
        }
    }

    /// One Service Catalog step (SPEC §9): the list before an associate, the change,
    /// the list that settles an ambiguous ResourceNotFound, or the list that confirms.
    /// A step makes up to two calls; the second is not started near the deadline
    /// (`Err`: the step is stored again as it was, and repeats).
    async fn call_service_catalog(
        &self,
        change: &PortfolioChange,
        progress: &Progress,
    ) -> Result<Settled, &'static str> {
        let catalog = &self.worker.service_catalog;
        let principal = change.principal.listed();
        let policy = self.policy();
        if let Stage::Confirm { .. } = progress.stage {
            let listed = self.list(change).await;
            let shown = listed
                .as_ref()
                .map(|listed| portfolio::shows_change(progress, &principal, listed));
            if shown == Ok(true)
                && let Some(behind) = self.after_a_made_associate(progress).await
            {
                return Ok(behind);
            }
            if shown == Ok(false) {
                // A later decision may have changed the principal since, or removed its
                // name in another spelling (an undo toward that removal leaves this
                // entry's own item as it was): ask the ledger (an error here only means
                // one more list; without the name's item, the entry's own decision goes,
                // and an undo's fence checks it against the name again).
                let now = self.now();
                let latest = self.worker.ledger.latest(&self.key).await;
                self.metrics.call(Api::GetItem, Answer::of(&latest));
                let latest = match latest {
                    Ok(Some(latest)) => Some(
                        self.latest_for_the_entry(latest.clone(), now)
                            .await
                            .unwrap_or(latest),
                    ),
                    _ => None,
                };
                if let Some(decision) =
                    portfolio::overtaken(progress, &self.decision, latest.as_ref(), now)
                {
                    return Ok(decision.into());
                }
            }
            return Ok(portfolio::after_list(
                progress,
                &principal,
                &listed,
                self.now(),
                policy,
                Self::jitter(),
            ));
        }
        let mut listed_before = false;
        let result = match progress.operation() {
            AssignmentAction::Create => {
                if portfolio::lists_before_associate(progress) {
                    let listed = self.list(change).await;
                    match portfolio::before_associate(
                        progress,
                        &principal,
                        &listed,
                        policy,
                        Self::jitter(),
                    ) {
                        Ok(listed) => listed_before = listed,
                        Err(decision) => return Ok((*decision).into()),
                    }
                    if self.out_of_time() {
                        return Err(NEAR_DEADLINE);
                    }
                }
                let result = catalog.associate_principal(change).await;
                self.count_catalog(Api::AssociatePrincipalWithPortfolio, &result);
                result
            }
            AssignmentAction::Delete => {
                let result = catalog.disassociate_principal(change).await;
                self.count_catalog(Api::DisassociatePrincipalFromPortfolio, &result);
                result
            }
        };
        let now = self.now();
        if listed_before && result.is_ok() {
            // No confirm follows, and the list that showed the principal may lag a
            // removal of its name in another spelling made meanwhile. After a ledger
            // error the step goes on as one whose associate may have landed.
            let mut landed = progress.clone();
            landed.maybe_submitted = true;
            if let Some(behind) = self.after_a_made_associate(&landed).await {
                return Ok(Settled {
                    landed: true,
                    ..behind
                });
            }
        }
        match portfolio::after_submit(
            progress,
            &result,
            listed_before,
            now,
            policy,
            Self::jitter(),
        ) {
            AfterSubmit::Decided(decision) => Ok(decision.into()),
            AfterSubmit::SettleByListing => {
                if self.out_of_time() {
                    return Err(NEAR_DEADLINE);
                }
                let listed = self.list(change).await;
                let jitter = Self::jitter();
                let settle = |granted_later: &[&ListedPrincipal]| {
                    portfolio::settle_not_found(
                        progress,
                        &change.portfolio,
                        &principal,
                        &listed,
                        granted_later,
                        policy,
                        jitter,
                    )
                };
                // The entries' items are read only when the dead letter would name some
                // to remove: not for a list that lags, nor before another dead letter.
                let settled = settle(&[]);
                if !portfolio::names_entries_to_remove(&settled) {
                    return Ok(settled);
                }
                let Ok(principals) = &listed else {
                    return Ok(settled);
                };
                match self
                    .granted_later(progress, change, &principal, principals)
                    .await
                {
                    Ok(granted_later) => Ok(settle(&granted_later)),
                    Err(settled) => Ok(settled),
                }
            }
        }
    }

    /// The listed entries naming a removal's IAM name otherwise
    /// ([`portfolio::named_otherwise`]) whose own latest decision is a grant decided
    /// after the removal that still asks for access: that grant asks for them (a later
    /// removal of the name, if any, removes or reports them itself), so the removal
    /// reports them rather than dead-letter naming them to remove (one `GetItem` each).
    /// Called only for a removal request's own step about to be dead-lettered so
    /// ([`portfolio::names_entries_to_remove`]). An entry whose ARN the worker does not
    /// take is not among them (the dead letter names it); a read that fails repeats the
    /// step, or dead-letters it as a ledger error ([`lifecycle::on_ledger_error`]), never
    /// naming an entry it could not read.
    async fn granted_later<'a>(
        &self,
        progress: &Progress,
        change: &PortfolioChange,
        principal: &ListedPrincipal,
        principals: &'a [ListedPrincipal],
    ) -> Result<Vec<&'a ListedPrincipal>, Settled> {
        let now = self.now();
        let mut later = Vec::new();
        for other in portfolio::named_otherwise(principal, principals) {
            let Ok(arn) = IamPrincipalArn::parse(&other.principal_arn) else {
                continue;
            };
            let entry = PortfolioChange {
                portfolio: change.portfolio.clone(),
                principal: PortfolioPrincipal::Iam(arn),
                accept_language: None,
            };
            let latest = self
                .worker
                .ledger
                .latest(&LedgerKey::portfolio(&entry))
                .await;
            self.metrics.call(Api::GetItem, Answer::of(&latest));
            let latest = latest.map_err(|error| {
                Settled::from(lifecycle::on_ledger_error(
                    progress,
                    &error,
                    self.policy(),
                    Self::jitter(),
                ))
            })?;
            if let Some(decision) = latest
                && decision.order.intent == Intent::Grant
                && decision.order > self.decision.order
                && decision.desired(now) == Presence::Present
            {
                later.push(other);
            }
        }
        Ok(later)
    }

    async fn list(&self, change: &PortfolioChange) -> portfolio::ListResult {
        let listed = self.worker.service_catalog.list_principals(change).await;
        self.count_catalog(Api::ListPrincipalsForPortfolio, &listed);
        listed
    }

    fn count_catalog<T>(&self, api: Api, result: &Result<T, crate::aws_call::CallError>) {
        self.metrics.call(api, Answer::of(result));
        if let Err(error) = result {
            log_call_error(Some(api), error);
        }
    }

    /// A grant whose `notAfter` passed before it was submitted is not carried out, but it
    /// is a decision all the same, and the latest one asks for no access: had it come in
    /// time, its expiry would have revoked at `notAfter` whatever gave the access (an
    /// earlier grant). So it claims like any decision (a later one recorded: it is only
    /// `superseded`), and once claimed it is dead-lettered `expired` with its expiry step
    /// at once ([`Self::expiry_after_dead_letter`]). The claim records `absent` in the
    /// same write (or settles a `pending` claim an earlier attempt made, which was
    /// answered and so made nothing): the decision is settled and made no call, so a
    /// redelivery of the record is refused alike instead of carried on as a grant its
    /// first delivery may have submitted ([`Self::after_redelivery`]).
    ///
    /// Unless the ledger says the grant was carried out ([`lifecycle::carried_out_before`]):
    /// this step is then a copy or a sibling of the chain that did it (a record delivered
    /// again, a retry come due after `notAfter`, a second send of the decision), and
    /// reports it `succeeded`, with no call; its expiry runs once more, at once, as an
    /// `expired` refusal's does. A read that fails transiently is made again, within the
    /// step's attempts.
    async fn expired(&self, dead_letter: DeadLetter, progress: Progress) -> Stepped {
        let recorded = self.worker.ledger.latest_with_state(&self.key).await;
        self.metrics.call(Api::GetItem, Answer::of(&recorded));
        match &recorded {
            Ok(Some(recorded))
                if lifecycle::carried_out_before(&progress, &self.decision, recorded) =>
            {
                tracing::info!(
                    "notAfter has passed, and the grant was carried out: reported again, with \
                     no call"
                );
                let done = Decision::Done {
                    completion: Completion::Succeeded,
                    operation_request_id: None,
                };
                return decided(done, progress);
            }
            Err(error) => {
                let again =
                    lifecycle::on_ledger_error(&progress, error, self.policy(), Self::jitter());
                if let Decision::Continue { .. } = again {
                    return decided(again, progress);
                }
            }
            Ok(_) => {}
        }
        let dead_letter = dead_letter.before_attempt(&progress);
        match self.fence(progress, RecordedState::Absent).await {
            Ok(claimed) => decided(Decision::DeadLetter(dead_letter), claimed),
            Err(stop) => stop,
        }
    }

    /// Records a removal as the latest of its IAM name ([`LedgerKey::iam_name`], and
    /// [`LedgerKey::iam_name_with_path`]) before its submit, unless a later one is
    /// there: a failure repeats the step, as any ledger error before a submit.
    async fn record_removal_of_the_name(
        &self,
        name_keys: &[LedgerKey],
        progress: Progress,
        now: OffsetDateTime,
    ) -> Result<Progress, Stepped> {
        for name_key in name_keys {
            let answer = self
                .worker
                .ledger
                .claim(name_key, &self.decision, RecordedState::Pending, now)
                .await;
            self.metrics.call(Api::UpdateItem, Answer::of(&answer));
            if let Err(error) = answer {
                return Err(self.after_ledger_error(progress, &error).await);
            }
        }
        Ok(progress)
    }

    /// The items of an `IAM` portfolio principal's name, for the removals of that name
    /// in any spelling ([`LedgerKey::iam_name`]), and the item with its path that older
    /// builds keep ([`LedgerKey::iam_name_with_path`]); none for any other principal.
    fn name_keys(&self) -> Vec<LedgerKey> {
        match self.target {
            Target::Portfolio(change) => LedgerKey::iam_name(change)
                .into_iter()
                .chain(LedgerKey::iam_name_with_path(change))
                .collect(),
            Target::Assignment(_) => Vec::new(),
        }
    }

    /// A grant's associate was made (its confirm sees the entry, or AWS answered the
    /// associate of a principal already listed): a later removal of its IAM name in
    /// another spelling may have run meanwhile and found nothing of this spelling.
    /// `Some`: the undo toward that removal, or the step again after a ledger error.
    async fn after_a_made_associate(&self, progress: &Progress) -> Option<Settled> {
        if progress.purpose != Purpose::Decision || self.decision.order.intent != Intent::Grant {
            return None;
        }
        let removal = match self.latest_removal_of_the_name().await {
            Ok(removal) => removal,
            Err(error) => {
                return Some(
                    lifecycle::on_ledger_error(progress, &error, self.policy(), Self::jitter())
                        .into(),
                );
            }
        };
        portfolio::behind_a_later_removal_of_the_name(
            progress,
            &self.decision,
            removal.as_ref(),
            true,
            self.now(),
        )
        .map(Into::into)
    }

    /// The latest removal of an `IAM` portfolio principal's name in any spelling, the
    /// later of its items' ([`Self::name_keys`]; none for any other principal, which
    /// makes no call).
    async fn latest_removal_of_the_name(
        &self,
    ) -> Result<Option<AccessDecision>, crate::aws_call::CallError> {
        let mut latest: Option<AccessDecision> = None;
        for name_key in self.name_keys() {
            let removal = self.worker.ledger.latest(&name_key).await;
            self.metrics.call(Api::GetItem, Answer::of(&removal));
            if let Some(removal) = removal?
                && latest
                    .as_ref()
                    .is_none_or(|kept| removal.order > kept.order)
            {
                latest = Some(removal);
            }
        }
        Ok(latest)
    }

    /// The decision that stands for this entry (what an undo carries out, what a confirm
    /// not shown or a grant's dead letter yields to), `latest` being its own item's latest
    /// decision ([`portfolio::latest_for_the_entry`]): the name's items are read only
    /// when `latest` asks for access, which only a removal of the name can override.
    async fn latest_for_the_entry(
        &self,
        latest: AccessDecision,
        now: OffsetDateTime,
    ) -> Result<AccessDecision, crate::aws_call::CallError> {
        if latest.desired(now) != Presence::Present {
            return Ok(latest);
        }
        let removal = self.latest_removal_of_the_name().await?;
        Ok(portfolio::latest_for_the_entry(&latest, removal.as_ref()).clone())
    }

    /// A ledger call failed before the step's AWS call: the step repeats after a
    /// backoff, or is dead-lettered when the error is not transient or the attempts are
    /// spent.
    async fn after_ledger_error(
        &self,
        progress: Progress,
        error: &crate::aws_call::CallError,
    ) -> Stepped {
        let decision = lifecycle::on_ledger_error(&progress, error, self.policy(), Self::jitter());
        self.unless_submitted_before(decision, progress).await
    }

    /// A dead letter before a step's AWS call, when an earlier submit of the step may
    /// have landed unanswered, reads the ledger as any dead letter after such a change
    /// ([`Self::unless_settled`]). Without one, nothing was changed: the ledger's own
    /// error (`exhausted`, `permanent`) tells of no call, whatever its class says.
    async fn unless_submitted_before(&self, decision: Decision, progress: Progress) -> Stepped {
        match decision {
            Decision::DeadLetter(dead_letter) if progress.maybe_submitted => {
                self.unless_settled(dead_letter, progress).await
            }
            decision => decided(decision, progress),
        }
    }

    /// A restored-expiry wait come due: the ledger says whether to wait on, end the
    /// chain, or revoke now (`Ok`: the submit of the revoke).
    async fn restored_expiry_due(&self, progress: Progress) -> Result<Progress, Stepped> {
        let latest = self.worker.ledger.latest_with_state(&self.key).await;
        self.metrics.call(Api::GetItem, Answer::of(&latest));
        let decision = match latest {
            Ok(latest) => lifecycle::restored_expiry(&progress, latest.as_ref(), self.now()),
            Err(error) => Some(lifecycle::on_ledger_error(
                &progress,
                &error,
                self.policy(),
                Self::jitter(),
            )),
        };
        match decision {
            Some(decision) => Err(decided(decision, progress)),
            None => Ok(progress.at(AssignmentAction::Delete, Stage::Submit, 1)),
        }
    }

    /// The re-check before a submit (SPEC §11, rules 1, 2 and 5): the decision's own
    /// submit claims (starting in `claim_as`; an `expired` grant claims with no submit
    /// after); an expiry goes on only while its grant is the latest decision; an undo
    /// carries out what the latest decision asks for now.
    async fn fence(
        &self,
        progress: Progress,
        claim_as: RecordedState,
    ) -> Result<Progress, Stepped> {
        let now = self.now();
        let stop = |decision, progress| Err(decided(decision, progress));
        match &progress.purpose {
            Purpose::Decision => {
                let name_keys = self.name_keys();
                if self.decision.order.intent == Intent::Grant {
                    let removal = match self.latest_removal_of_the_name().await {
                        Ok(removal) => removal,
                        Err(error) => return Err(self.after_ledger_error(progress, &error).await),
                    };
                    if let Some(behind) = portfolio::behind_a_later_removal_of_the_name(
                        &progress,
                        &self.decision,
                        removal.as_ref(),
                        false,
                        now,
                    ) {
                        return stop(behind, progress);
                    }
                }
                let answer = self
                    .worker
                    .ledger
                    .claim(&self.key, &self.decision, claim_as, now)
                    .await;
                self.metrics.call(Api::UpdateItem, Answer::of(&answer));
                if let Ok(ClaimAnswer::Superseded(recorded)) = &answer
                    && recorded.is_another_delivery_of(&self.decision)
                {
                    return Err(Stepped::Restamp(recorded.order.first_message_id.clone()));
                }
                match lifecycle::after_claim(&progress, &answer, now, self.policy(), Self::jitter())
                {
                    None if self.decision.order.intent == Intent::Revoke => {
                        self.record_removal_of_the_name(&name_keys, progress, now)
                            .await
                    }
                    None => Ok(progress),
                    Some(decision) => Err(self.unless_submitted_before(decision, progress).await),
                }
            }
            Purpose::Expiry | Purpose::Undo { .. } => {
                let latest = self.worker.ledger.latest_with_state(&self.key).await;
                self.metrics.call(Api::GetItem, Answer::of(&latest));
                let latest = match latest {
                    Ok(latest) => latest,
                    Err(error) => return Err(self.after_ledger_error(progress, &error).await),
                };
                match (&progress.purpose, latest) {
                    // A missing item is "no decision": the expiry still revokes.
                    (Purpose::Expiry, Some((latest, state)))
                        if latest.order != self.decision.order =>
                    {
                        match lifecycle::expiry_overtaken(&progress, &latest, state, now) {
                            Some(decision) => stop(decision, progress),
                            None => Ok(progress),
                        }
                    }
                    (Purpose::Undo { superseded_by, .. }, None) => {
                        let done = Decision::Done {
                            completion: Completion::Superseded(superseded_by.clone()),
                            operation_request_id: None,
                        };
                        stop(done, progress)
                    }
                    (Purpose::Undo { reports, .. }, Some((latest, _))) => {
                        let latest = match self.latest_for_the_entry(latest, now).await {
                            Ok(latest) => latest,
                            Err(error) => {
                                return Err(self.after_ledger_error(progress, &error).await);
                            }
                        };
                        let target = latest.desired(now).action();
                        let mut next = progress.at(target, Stage::Submit, progress.attempt);
                        // The one more submit after a FAILED was the other operation's.
                        next.resubmitted_after_failure &= target == progress.operation();
                        next.purpose = Purpose::Undo {
                            superseded_by: latest.summary(),
                            reports: *reports,
                        };
                        Ok(next)
                    }
                    _ => Ok(progress),
                }
            }
        }
    }

    /// Asks the Identity Center port whether an assignment's call may go now (it may
    /// wait for it, within the time the deadline leaves): `Some` when the step is
    /// deferred, stored again with the pacer's delay and no call made.
    /// Too close to the invocation's deadline to start an AWS call (see
    /// [`call_reserve`]).
    fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|deadline| {
            deadline
                .duration_since(SystemTime::now())
                .map_or(true, |left| left < call_reserve(&self.worker.config))
        })
    }

    async fn pace(&self, progress: &Progress) -> Option<Stepped> {
        let Target::Assignment(_) = self.target else {
            return None;
        };
        if self.paced.load(Ordering::Relaxed) {
            return None;
        }
        let call = match (&progress.stage, progress.operation()) {
            (Stage::Poll { .. }, _) => PacedCall::Poll,
            (_, AssignmentAction::Create) => PacedCall::Create,
            // The worker's own revokes end access it owes to end now; a requested one
            // waits with the rest.
            (_, AssignmentAction::Delete) if progress.is_owed_revoke() => PacedCall::Revoke,
            (_, AssignmentAction::Delete) => PacedCall::Delete,
        };
        let budget = self.deadline.map_or(Duration::MAX, |deadline| {
            deadline
                .duration_since(SystemTime::now())
                .map_or(Duration::ZERO, |left| {
                    left.saturating_sub(call_reserve(&self.worker.config))
                })
        });
        match self.worker.identity_center.pace(call, budget).await {
            Pace::Now => {
                self.paced.store(true, Ordering::Relaxed);
                None
            }
            Pace::Defer { delay_seconds } => {
                self.metrics.deferred(identity_center_api(progress));
                tracing::info!(delay_seconds, "deferred by the pacer; no call made");
                Some(decided(
                    lifecycle::deferred(progress, delay_seconds),
                    progress.clone(),
                ))
            }
        }
    }

    async fn call_identity_center(
        &self,
        assignment: &Assignment,
        progress: &Progress,
    ) -> CallResult {
        let identity_center = &self.worker.identity_center;
        let result = match (&progress.stage, progress.operation()) {
            (
                Stage::Submit | Stage::ExpireWait | Stage::Confirm { .. },
                AssignmentAction::Create,
            ) => identity_center.create_assignment(assignment).await,
            (
                Stage::Submit | Stage::ExpireWait | Stage::Confirm { .. },
                AssignmentAction::Delete,
            ) => identity_center.delete_assignment(assignment).await,
            (
                Stage::Poll {
                    operation_request_id,
                    ..
                },
                AssignmentAction::Create,
            ) => {
                identity_center
                    .describe_creation_status(assignment, operation_request_id)
                    .await
            }
            (
                Stage::Poll {
                    operation_request_id,
                    ..
                },
                AssignmentAction::Delete,
            ) => {
                identity_center
                    .describe_deletion_status(assignment, operation_request_id)
                    .await
            }
        };
        self.metrics
            .call(identity_center_api(progress), Answer::of(&result));
        if let Err(error) = &result {
            log_call_error(None, error);
        }
        result
    }

    /// Identity Center confirmed the change: record it while the decision is still
    /// this request's, and undo it if a later decision asks for the opposite
    /// (SPEC §11, rules 3 and 4).
    async fn confirm(
        &self,
        progress: Progress,
        completion: Completion,
        operation_request_id: Option<String>,
    ) -> Stepped {
        let ledger = &self.worker.ledger;
        let now = self.now();
        let answer = match &progress.purpose {
            Purpose::Decision | Purpose::Expiry => {
                let record = |state| {
                    ledger.record(
                        &self.key,
                        &self.decision.order,
                        state,
                        operation_request_id.as_deref(),
                        now,
                    )
                };
                let state = lifecycle::recorded_state_after(&progress);
                let mut answer = record(state).await;
                self.metrics.call(Api::UpdateItem, Answer::of(&answer));
                if state == RecordedState::Revoked
                    && matches!(&answer, Ok(RecordAnswer::NotLatest(Some(latest)))
                        if latest.order == self.decision.order)
                {
                    // The grant was never recorded carried out: plainly absent.
                    answer = record(RecordedState::Absent).await;
                    self.metrics.call(Api::UpdateItem, Answer::of(&answer));
                }
                answer
            }
            Purpose::Undo { .. } => {
                let latest = ledger.latest(&self.key).await;
                self.metrics.call(Api::GetItem, Answer::of(&latest));
                match latest {
                    Ok(Some(latest)) => self
                        .latest_for_the_entry(latest, now)
                        .await
                        .map(|latest| RecordAnswer::NotLatest(Some(latest))),
                    other => other.map(RecordAnswer::NotLatest),
                }
            }
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                return match lifecycle::on_ledger_error(
                    &progress,
                    &error,
                    self.policy(),
                    Self::jitter(),
                ) {
                    // Repeat the step: a poll answers again, a submit is safe to repeat
                    // (and has certainly reached AWS, so notAfter must not refuse it; a
                    // poll's landing is its stage's, and a dead letter's restart must not
                    // tell of a submit still to land).
                    Decision::Continue {
                        progress: mut next,
                        delay_seconds,
                    } => {
                        next.maybe_submitted |= progress.stage == Stage::Submit;
                        let repeat = Decision::Continue {
                            progress: next,
                            delay_seconds,
                        };
                        decided(repeat, progress)
                    }
                    // The change is in place: behind a later decision it is undone toward
                    // it, as any change that may have landed, not left behind a dead
                    // letter.
                    Decision::DeadLetter(dead_letter) => {
                        let confirmed = Some((completion, operation_request_id));
                        self.unless_settled_after(dead_letter, progress, confirmed)
                            .await
                    }
                    other => decided(other, progress),
                };
            }
        };
        after_confirmed(
            progress,
            completion,
            operation_request_id,
            &answer,
            self.now(),
        )
    }

    /// The messages that make the decision durable.
    fn commit(&self, step: Step) -> Plan {
        let Step {
            decision,
            progress,
            residual_access,
            watch,
            in_place,
            claimed_before,
        } = step;
        let progress = &progress;
        let worker = self.worker;
        let now = self.now();
        match decision {
            Decision::Continue {
                progress: next,
                delay_seconds,
            } => {
                // A retry is what spends an attempt; a deferral keeps the attempt.
                if next.attempt > progress.attempt {
                    self.metrics.retry();
                }
                if matches!(next.purpose, Purpose::Undo { .. })
                    && !matches!(progress.purpose, Purpose::Undo { .. })
                {
                    self.metrics.undo();
                }
                tracing::info!(
                    next_step = next.step_name(),
                    next_purpose = next.purpose_name(),
                    next_attempt = next.attempt,
                    delay_seconds,
                    "re-enqueued"
                );
                match self.progress_message(&next, delay_seconds) {
                    Some(message) => Plan::Store {
                        messages: vec![(Destination::Work, message)],
                        terminal: None,
                    },
                    None => Plan::Redeliver("progress envelope not encodable"),
                }
            }
            Decision::Done { completion, .. } if progress.purpose.is_restored_expiry() => {
                self.end_of_restored_access(progress, &completion)
            }
            Decision::Done {
                completion,
                operation_request_id,
            } => {
                let mut context = outcome_context(self.message, self.target, progress, now);
                context.operation_request_id = operation_request_id
                    .as_deref()
                    .or(context.operation_request_id);
                let removed_from_portfolio = progress.resource() == Resource::Portfolio
                    && progress.operation() == AssignmentAction::Delete
                    && !matches!(progress.purpose, Purpose::Undo { .. });
                let residual = residual_access
                    .as_deref()
                    .filter(|_| removed_from_portfolio);
                let left_access = residual.is_some_and(|r| !r.is_empty());
                if let Some(residual) = residual.filter(|_| left_access) {
                    // Counted at WARN, named at DEBUG (SPEC §12): the outcome names them.
                    tracing::warn!(
                        residual_principals = residual.len(),
                        "the removed principal's access is not gone: other principals of the \
                         portfolio still admit it"
                    );
                    tracing::debug!(residual_access = ?residual, "residual access");
                }
                context.residual_access = residual;
                let mut messages = Vec::new();
                // A grant found already in place expires too: the latest decision grants
                // only until `notAfter`, whatever put the access there (an earlier grant,
                // or this one's own submit whose answer was lost).
                let granted = progress.operation() == AssignmentAction::Create
                    && matches!(
                        completion,
                        Completion::Succeeded | Completion::AlreadySatisfied
                    );
                let expiry = self
                    .decision
                    .not_after
                    .filter(|_| progress.purpose == Purpose::Decision && granted);
                if let Some(not_after) = expiry {
                    context.expires_at = Some(not_after);
                    // Stored with the outcome, before the record is acknowledged.
                    match self.expiry_step(progress, not_after, now) {
                        Ok(step) => messages.push(step),
                        Err(plan) => return plan,
                    }
                }
                // The chain that ends, at a later grant's end, the access an undo made or a
                // superseded create may have left for it (never both).
                let restored = self.restored_expiry_step(progress).or_else(|| {
                    watch.map(|later_grant| {
                        self.work_step(lifecycle::start_restored_expiry(progress, later_grant))
                    })
                });
                if let Some(step) = restored {
                    match step {
                        Ok(step) => messages.push(step),
                        Err(plan) => return plan,
                    }
                }
                if worker.config.outcome_queue.is_some() {
                    match messages::outcome_message(&context, Outcome::Completed(&completion)) {
                        Ok(event) => messages.push((Destination::Outcome, event)),
                        Err(error) => {
                            tracing::error!(%error, "could not encode the outcome event");
                            return Plan::Redeliver("outcome event not encodable");
                        }
                    }
                }
                self.lateness_of_expiry(Plan::Store {
                    messages,
                    terminal: Some(Terminal {
                        action: context.action.unwrap_or("unknown"),
                        outcome: completion.as_str(),
                        error_class: None,
                        received_at: Some(context.received_at),
                        expiry: context.trigger.is_some(),
                        request_outcome: true,
                        residual_access: left_access,
                    }),
                })
            }
            Decision::DeadLetter(dead_letter) => {
                let mut context = outcome_context(self.message, self.target, progress, now);
                context.operation_request_id = dead_letter
                    .operation_request_id
                    .as_deref()
                    .or(context.operation_request_id);
                // A change AWS confirmed is in place (what follows the dead letter goes by
                // that), and came before any later decision (its restart does not say it
                // may have landed behind one).
                let mut landed = progress.clone();
                landed.maybe_submitted |= in_place;
                let mut restart_from = progress.clone();
                // A restored-expiry's restart reads the ledger at its wait, not at a fence
                // that goes toward the latest decision as an undo's does: it must say
                // that its delete may have removed a later grant's access (not when it
                // stopped at that wait, before any delete, unless an earlier delivery of
                // the wait may have gone on to delete).
                restart_from.maybe_submitted |= progress.purpose.is_restored_expiry()
                    && (progress.stage != Stage::ExpireWait || self.receive_count > 1)
                    && lifecycle::may_have_taken_effect(progress, &dead_letter);
                restart_from.maybe_submitted &= !in_place;
                // A redrive of a decision replays the request from the start. An expiry or
                // undo replays its own step instead: replaying the grant would grant again.
                let body = match &progress.purpose {
                    Purpose::Decision => self.message.request.raw.get().to_owned(),
                    Purpose::Expiry | Purpose::Undo { .. } => {
                        let restart = if progress.purpose == Purpose::Expiry
                            || progress.purpose.is_restored_expiry()
                        {
                            restart_from.restarted_at(AssignmentAction::Delete, Stage::ExpireWait)
                        } else {
                            restart_from.restarted_at(progress.operation(), Stage::Submit)
                        };
                        match self.progress_message(&restart, 0) {
                            Some(message) => message.body,
                            None => return Plan::Redeliver("progress envelope not encodable"),
                        }
                    }
                };
                let mut plan = worker.store_dead_letter(&body, &dead_letter, &context);
                // The end of a restored-expiry chain is no request's outcome: the undone
                // request sent its one outcome when the undo ended (as the chain's other
                // ends send none). Its dead letter still counts, untimed, for the class
                // alarms.
                if let Plan::Store {
                    messages,
                    terminal: Some(terminal),
                } = &mut plan
                    && progress.purpose.is_restored_expiry()
                {
                    terminal.received_at = None;
                    messages.retain(|(destination, _)| *destination != Destination::Outcome);
                }
                if let Plan::Store { messages, .. } = &mut plan {
                    match self.after_dead_letter(&landed, &dead_letter, claimed_before, now) {
                        Some(Ok(step)) => messages.push(step),
                        Some(Err(plan)) => return plan,
                        None => {}
                    }
                }
                self.lateness_of_expiry(plan)
            }
        }
    }

    /// The end of a restored-expiry chain: no outcome event (the request sent its own
    /// when the undo ended); a revoke counts as an expiry's. Access made present again
    /// (a later decision asked for it meanwhile) is watched again.
    fn end_of_restored_access(&self, progress: &Progress, completion: &Completion) -> Plan {
        let revoked = progress.operation() == AssignmentAction::Delete
            && matches!(
                completion,
                Completion::Succeeded | Completion::AlreadySatisfied
            );
        if revoked {
            tracing::info!(
                "access an undo restored for a later grant ended at that grant's notAfter"
            );
        }
        let mut messages = Vec::new();
        if let Some(step) = self.restored_expiry_step(progress) {
            match step {
                Ok(step) => messages.push(step),
                Err(plan) => return plan,
            }
        }
        Plan::Store {
            messages,
            terminal: Some(Terminal {
                action: self.target.operation_name(progress.operation()),
                outcome: completion.as_str(),
                error_class: None,
                received_at: None,
                expiry: revoked,
                request_outcome: false,
                residual_access: false,
            }),
        }
    }

    /// After an undo that made the access present: the chain that ends it at the
    /// `notAfter` of the later grant it was restored for, when that grant may have no
    /// expiry of its own (it is not recorded as carried out: still under way, or its
    /// expiry step was lost). The undo's create would otherwise stand for good. The chain
    /// reads the ledger first, so it costs one read when the grant has no end or an
    /// expiry of its own.
    fn restored_expiry_step(
        &self,
        progress: &Progress,
    ) -> Option<Result<(Destination, OutgoingMessage), Plan>> {
        let superseded_by = progress.purpose.superseded_by()?;
        if progress.operation() != AssignmentAction::Create {
            return None;
        }
        let watch = lifecycle::start_restored_expiry(progress, superseded_by.clone());
        Some(self.work_step(watch))
    }

    /// The message that waits on the work queue for the grant's `notAfter`.
    fn expiry_step(
        &self,
        progress: &Progress,
        not_after: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(Destination, OutgoingMessage), Plan> {
        self.work_step(lifecycle::start_expiry(progress, not_after, now))
    }

    /// A step stored on the work queue beside an outcome or a dead letter.
    fn work_step(&self, next: Decision) -> Result<(Destination, OutgoingMessage), Plan> {
        let Decision::Continue {
            progress,
            delay_seconds,
        } = next
        else {
            return Err(Plan::Redeliver("next step not planned"));
        };
        self.progress_message(&progress, delay_seconds)
            .map(|message| (Destination::Work, message))
            .ok_or(Plan::Redeliver("progress envelope not encodable"))
    }

    /// The step that goes on after a dead letter, if any: the grant's expiry
    /// ([`Self::expiry_after_dead_letter`]), or the restored-expiry chain of an undo whose
    /// create may have landed all the same (a poll deadline, attempts spent): the access
    /// it may have restored for a later grant must still end at that grant's `notAfter`.
    fn after_dead_letter(
        &self,
        progress: &Progress,
        dead_letter: &DeadLetter,
        claimed_before: bool,
        now: OffsetDateTime,
    ) -> Option<Result<(Destination, OutgoingMessage), Plan>> {
        if let Some(not_after) =
            self.expiry_after_dead_letter(progress, dead_letter, claimed_before)
        {
            if progress.purpose.superseded_by().is_some() {
                tracing::warn!(
                    not_after = %messages::rfc3339(not_after),
                    "the undo of the grant was not carried out; the grant's expiry ends what \
                     it may have left at notAfter"
                );
            } else if lifecycle::may_have_taken_effect(progress, dead_letter) {
                tracing::warn!(
                    not_after = %messages::rfc3339(not_after),
                    "the grant may have been carried out all the same; its expiry stays \
                     scheduled"
                );
            } else {
                tracing::info!(
                    not_after = %messages::rfc3339(not_after),
                    "the grant was not carried out, but it is the latest decision: its expiry \
                     ends any access at notAfter"
                );
            }
            return Some(self.expiry_step(progress, not_after, now));
        }
        if lifecycle::may_have_taken_effect(progress, dead_letter) {
            return self.restored_expiry_step(progress);
        }
        None
    }

    /// The `notAfter` of a grant dead-lettered after its claim: after a call (that may
    /// have carried it out all the same, or was refused), as `expired`, or refused before
    /// its call (a guardrail tightened meanwhile) with the ledger holding an earlier
    /// attempt's or delivery's claim (`claimed_before`). Its expiry is scheduled as
    /// for a success. The grant is the ledger's latest decision, and it asks
    /// for access only until `notAfter` (for `expired`, for none): access that stands
    /// (an earlier grant's) or comes later (a create that landed unanswered) must end
    /// there, as it would have had the grant succeeded. The expiry's own check of the
    /// ledger leaves a later decision alone. A dead-lettered undo of such a grant's own
    /// change keeps it too: toward a later removal of its IAM name in another spelling,
    /// nothing else removes the entry the grant may have left.
    fn expiry_after_dead_letter(
        &self,
        progress: &Progress,
        dead_letter: &DeadLetter,
        claimed_before: bool,
    ) -> Option<OffsetDateTime> {
        self.decision.not_after.filter(|_| match progress.purpose {
            Purpose::Decision => {
                progress.operation() == AssignmentAction::Create
                    && (dead_letter.after_a_call()
                        || dead_letter.class == ErrorClass::Expired
                        || claimed_before
                        || lifecycle::may_have_taken_effect(progress, dead_letter))
            }
            Purpose::Undo {
                reports: UndoReport::Request,
                ..
            } => progress.operation() == AssignmentAction::Delete,
            Purpose::Expiry | Purpose::Undo { .. } => false,
        })
    }

    /// An expiry's time to outcome counts from `notAfter`, not from the grant's first
    /// receipt hours before: how late the revoke came is what an operator watches. A
    /// grant that arrived after its `notAfter` counts from its arrival: the worker could
    /// not revoke before it.
    fn lateness_of_expiry(&self, mut plan: Plan) -> Plan {
        if let Plan::Store {
            terminal: Some(terminal),
            ..
        } = &mut plan
            && terminal.expiry
            && let Some(not_after) = self.decision.not_after
        {
            terminal.received_at = terminal.received_at.map(|at| at.max(not_after));
        }
        plan
    }

    fn progress_message(&self, progress: &Progress, delay_seconds: u32) -> Option<OutgoingMessage> {
        messages::progress_message(&self.message.request.raw, progress, delay_seconds)
            .inspect_err(|error| tracing::error!(%error, "could not encode the progress envelope"))
            .ok()
    }
}

/// The Identity Center API an assignment's step at `progress` calls.
fn identity_center_api(progress: &Progress) -> Api {
    match (&progress.stage, progress.operation()) {
        (Stage::Poll { .. }, AssignmentAction::Create) => {
            Api::DescribeAccountAssignmentCreationStatus
        }
        (Stage::Poll { .. }, AssignmentAction::Delete) => {
            Api::DescribeAccountAssignmentDeletionStatus
        }
        (_, AssignmentAction::Create) => Api::CreateAccountAssignment,
        (_, AssignmentAction::Delete) => Api::DeleteAccountAssignment,
    }
}

/// The outcome event's view of the request at `progress`.
fn outcome_context<'a>(
    message: &'a Message,
    target: Target<'_>,
    progress: &'a Progress,
    now: OffsetDateTime,
) -> OutcomeContext<'a> {
    // An expiry (or its undo) reports the grant's revoke; a restored-expiry chain, the
    // operation it makes.
    let expiry = progress.purpose.reports_as_expiry();
    let restored_expiry = progress.purpose.is_restored_expiry();
    OutcomeContext {
        correlation_id: message.request.correlation_id.as_ref(),
        action: Some(if expiry {
            target.operation_name(AssignmentAction::Delete)
        } else if restored_expiry {
            target.operation_name(progress.operation())
        } else {
            message.request.action_name()
        }),
        request: Some(&message.request.raw),
        operation_request_id: progress.operation_request_id(),
        attempts: progress.attempt,
        polls: progress.polls(),
        received_at: progress.first_received_at,
        finished_at: now,
        requested_at: Some(progress.stamp.requested_at),
        expires_at: None,
        trigger: (expiry || restored_expiry).then_some("expiry"),
        residual_access: None,
    }
}

/// The correlation id of a body that is not a request, when it is a JSON object whose
/// `correlationId` (or `CorrelationId`) is itself valid (SPEC §7): the requester can
/// still match the refusal to its ticket. An object wrapped in an envelope the worker
/// unwraps (an SNS `Message`, an EventBridge `detail`, its own `request`) counts too.
fn salvaged_correlation_id(body: &str) -> Option<CorrelationId> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    // `get` finds nothing in what is not an object.
    let own_id = |object: &serde_json::Value| {
        let id = object
            .get("correlationId")
            .or_else(|| object.get("CorrelationId"))?
            .as_str()?;
        CorrelationId::parse(id).ok()
    };
    own_id(&value).or_else(|| {
        // One level only: the unwrapped object's own id.
        let wrapped = match value.get("Message") {
            Some(serde_json::Value::String(message)) => serde_json::from_str(message).ok()?,
            _ => value
                .get("detail")
                .or_else(|| value.get("request"))?
                .clone(),
        };
        own_id(&wrapped)
    })
}

/// The decision's stamp at its first delivery: `requestedAt`, else the publish time of
/// the SNS notification that carried it ([`Message::published_order_time`]), else the
/// SQS SentTimestamp, else (a record without one, as in hand-made events) the receipt.
fn first_stamp(
    record: &SqsMessage,
    message: &Message,
    received_at: OffsetDateTime,
) -> DecisionStamp {
    DecisionStamp {
        requested_at: message
            .request
            .requested_at
            .or_else(|| message.published_order_time())
            .or_else(|| sent_at(record))
            .unwrap_or(received_at),
        first_message_id: record.message_id.clone().unwrap_or_default(),
    }
}

/// The first FAILED of an operation submitted once more is in no dead letter (the
/// second one's reason is): the log keeps it.
fn log_resubmit_after_failure(progress: &Progress, decision: &Decision, result: &CallResult) {
    let Decision::Continue { progress: next, .. } = decision else {
        return;
    };
    if !next.resubmitted_after_failure || progress.resubmitted_after_failure {
        return;
    }
    let failure_reason = result
        .as_ref()
        .ok()
        .and_then(|report| report.failure_reason.as_deref())
        .unwrap_or(lifecycle::FAILED_WITHOUT_A_REASON);
    if progress.is_owed_revoke() {
        tracing::warn!(
            failure_reason,
            "a revoke the worker owes FAILED: submitting it once more"
        );
    } else {
        tracing::warn!(
            failure_reason,
            "the operation FAILED, but an earlier submit may have taken effect unanswered: \
             submitting it once more"
        );
    }
}

/// How many times SQS has delivered the record; 1 when it does not say (hand-made
/// events).
fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
        .unwrap_or(1)
}

/// A failed call at INFO by its kind and code; AWS's message at DEBUG, since it may quote
/// the principal (SPEC §12 keeps principal ids out of what INFO prints).
fn log_call_error(api: Option<Api>, error: &crate::aws_call::CallError) {
    tracing::info!(
        api = api.map(Api::as_str),
        kind = ?error.kind,
        code = %error.code,
        "call failed"
    );
    tracing::debug!(
        // An error page can be large; the first KiB says what it is.
        error = messages::truncate(&error.message, messages::MAX_ERROR_MESSAGE_BYTES),
        "call failed: AWS's message"
    );
}

/// When SQS first handed out the record (its ApproximateFirstReceiveTimestamp), so that a
/// request delivered again is timed from its first receipt (SPEC §12); `now` when the
/// attribute is missing or could not be SQS's: later than now, or older than the 14
/// days a queue keeps a message (hand-made events).
fn first_receipt(record: &SqsMessage, now: OffsetDateTime) -> OffsetDateTime {
    epoch_millis(record, "ApproximateFirstReceiveTimestamp")
        .filter(|&at| at <= now && now - at <= time::Duration::days(14))
        .unwrap_or(now)
}

/// The record's SentTimestamp (epoch milliseconds); none before 1970, which SQS never
/// writes (a hand-made event could, and year -1 has no RFC 3339 form for the envelope).
fn sent_at(record: &SqsMessage) -> Option<OffsetDateTime> {
    epoch_millis(record, "SentTimestamp")
}

fn epoch_millis(record: &SqsMessage, attribute: &str) -> Option<OffsetDateTime> {
    let millis: i128 = record.attributes.get(attribute)?.parse().ok()?;
    if millis < 0 {
        return None;
    }
    OffsetDateTime::from_unix_timestamp_nanos(millis.checked_mul(1_000_000)?).ok()
}

fn record_request_fields(message: &Message) {
    let span = Span::current();
    span.record("action", message.request.action_name());
    if let Some(id) = &message.request.correlation_id {
        span.record("correlation_id", id.as_str());
    }
    if let Some((_, assignment)) = message.request.assignment() {
        span.record("account", assignment.account.as_str());
        span.record("permission_set", assignment.permission_set.as_str());
    }
}
