//! The batch handler: one SQS batch in, each record carried one step forward, and the
//! list of records whose next step is not durably stored (SPEC §5) out.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::{FutureExt, StreamExt, stream};
use time::OffsetDateTime;
use tracing::{Instrument, Span, field};

use crate::config::{Config, QueueUrl};
use crate::identity_center::{CallResult, IdentityCenter};
use crate::lifecycle::{self, Completion, DeadLetter, Decision, ErrorClass};
use crate::messages::{self, Outcome, OutcomeContext};
use crate::progress::{Progress, Stage};
use crate::queue::{OutgoingMessage, QueueSender, plan_batches};
use crate::request::{AssignmentAction, InvalidRequest, Message, parse_body};

/// No Identity Center call starts with less than this left before the invocation's
/// deadline: one call (bounded by the client's 5 s operation timeout) plus the sends.
pub const CALL_RESERVE: Duration = Duration::from_secs(8);

/// The worker's dependencies, built once per cold start.
pub struct Worker<I, Q> {
    pub identity_center: I,
    pub queues: Q,
    pub config: Config,
}

/// Which queue a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Destination {
    Work,
    DeadLetter,
    Outcome,
}

/// The next step of one record, before it is sent.
#[derive(Debug)]
enum Plan {
    /// Leave the record on the work queue: SQS delivers it again after the
    /// visibility timeout.
    Redeliver(&'static str),
    /// Durable once these messages are stored (none: nothing to store).
    Store {
        messages: Vec<(Destination, OutgoingMessage)>,
        terminal: Option<String>,
    },
}

impl<I: IdentityCenter, Q: QueueSender> Worker<I, Q> {
    /// Handles one batch. `deadline` is when the invocation is cut off (`None`: never).
    pub async fn handle(&self, event: SqsEvent, deadline: Option<SystemTime>) -> SqsBatchResponse {
        let records = event.records;
        let parsed: Vec<Result<Message, InvalidRequest>> = records
            .iter()
            .map(|record| parse_body(record.body.as_deref().unwrap_or_default()))
            .collect();
        let groups = group_by_assignment(&parsed);
        let plans: Vec<(usize, Plan, Span)> = stream::iter(groups)
            .map(|group| self.run_group(&records, &parsed, group, deadline))
            .buffer_unordered(self.config.max_concurrency)
            .flat_map(stream::iter)
            .collect()
            .await;

        let mut failed = vec![false; records.len()];
        // Per queue: the messages, and the record each one belongs to.
        let mut outbox: HashMap<Destination, (Vec<usize>, Vec<OutgoingMessage>)> = HashMap::new();
        let mut finished = Vec::new();
        for (index, plan, span) in plans {
            match plan {
                Plan::Redeliver(reason) => {
                    failed[index] = true;
                    span.in_scope(|| tracing::info!(reason, "record left for redelivery"));
                }
                Plan::Store { messages, terminal } => {
                    for (destination, message) in messages {
                        let (records, queued) = outbox.entry(destination).or_default();
                        records.push(index);
                        queued.push(message);
                    }
                    if let Some(outcome) = terminal {
                        finished.push((index, outcome, span));
                    }
                }
            }
        }

        let sends = outbox
            .into_iter()
            .map(|(destination, (owners, messages))| async move {
                let failures = self.send_all(destination, &owners, &messages).await;
                (destination, failures)
            });
        for (destination, failures) in futures_util::future::join_all(sends).await {
            for (index, error) in failures {
                failed[index] = true;
                tracing::error!(
                    message_id = records[index].message_id.as_deref().unwrap_or_default(),
                    ?destination,
                    %error,
                    "send failed; the record will be delivered again"
                );
            }
        }
        for (index, outcome, span) in finished {
            span.in_scope(|| {
                tracing::info!(
                    outcome = outcome.as_str(),
                    durable = !failed[index],
                    "request finished"
                );
            });
        }

        let mut response = SqsBatchResponse::default();
        for (record, _) in records.iter().zip(&failed).filter(|(_, failed)| **failed) {
            // Lambda always sets the message id; without one the record cannot be named,
            // and listing an empty id would fail the whole batch.
            response.add_failure(record.message_id.clone().unwrap_or_default());
        }
        response
    }

    fn queue_url(&self, destination: Destination) -> Option<&QueueUrl> {
        match destination {
            Destination::Work => Some(&self.config.work_queue),
            Destination::DeadLetter => Some(&self.config.dead_letter_queue),
            Destination::Outcome => self.config.outcome_queue.as_ref(),
        }
    }

    /// Sends `messages` (`owners[i]` is the record of message `i`) in as few batch calls
    /// as the limits allow; returns the records whose messages were not stored.
    async fn send_all(
        &self,
        destination: Destination,
        owners: &[usize],
        messages: &[OutgoingMessage],
    ) -> Vec<(usize, String)> {
        let Some(queue) = self.queue_url(destination) else {
            return owners
                .iter()
                .map(|index| (*index, format!("no queue configured for {destination:?}")))
                .collect();
        };
        let mut failures = Vec::new();
        for run in plan_batches(messages) {
            let mut results = self.queues.send_batch(queue, &messages[run.clone()]).await;
            if run.len() > 1 && results.iter().all(Result::is_err) {
                // SQS refuses a whole batch for one bad entry (an oversized body, say):
                // sent alone, the others still go through.
                results = Vec::with_capacity(run.len());
                for message in &messages[run.clone()] {
                    results.extend(
                        self.queues
                            .send_batch(queue, std::slice::from_ref(message))
                            .await,
                    );
                }
            }
            for (offset, index) in owners[run.clone()].iter().enumerate() {
                match results.get(offset) {
                    Some(Ok(())) => {}
                    Some(Err(error)) => failures.push((*index, error.to_string())),
                    None => failures.push((*index, "no result for this entry".to_owned())),
                }
            }
        }
        failures
    }

    /// Runs a group of records one after another (they touch the same assignment).
    async fn run_group(
        &self,
        records: &[SqsMessage],
        parsed: &[Result<Message, InvalidRequest>],
        group: Vec<usize>,
        deadline: Option<SystemTime>,
    ) -> Vec<(usize, Plan, Span)> {
        let mut plans = Vec::with_capacity(group.len());
        for index in group {
            let record = &records[index];
            let span = tracing::info_span!(
                "record",
                message_id = record.message_id.as_deref().unwrap_or_default(),
                correlation_id = field::Empty,
                action = field::Empty,
                account = field::Empty,
                permission_set = field::Empty,
                step = field::Empty,
                attempt = field::Empty,
            );
            let plan = AssertUnwindSafe(
                self.run_record(record, &parsed[index], deadline)
                    .instrument(span.clone()),
            )
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                span.in_scope(|| tracing::error!("record processing panicked"));
                Plan::Redeliver("panic")
            });
            plans.push((index, plan, span));
        }
        plans
    }

    async fn run_record(
        &self,
        record: &SqsMessage,
        parsed: &Result<Message, InvalidRequest>,
        deadline: Option<SystemTime>,
    ) -> Plan {
        let received_at = OffsetDateTime::now_utc();
        let message = match parsed {
            Ok(message) => message,
            Err(invalid) => {
                let body = record.body.as_deref().unwrap_or_default();
                tracing::warn!(code = invalid.code, reason = %invalid.message, "invalid request");
                let dead_letter = DeadLetter::before_any_call(
                    ErrorClass::InvalidRequest,
                    invalid.code,
                    invalid.message.clone(),
                );
                let context = OutcomeContext {
                    correlation_id: None,
                    action: None,
                    request: None,
                    operation_request_id: None,
                    attempts: 0,
                    polls: 0,
                    received_at,
                    finished_at: received_at,
                };
                return self.dead_letter(body, &dead_letter, &context);
            }
        };
        record_request_fields(message);

        let Some((action, assignment)) = message.request.assignment() else {
            let dead_letter = DeadLetter::before_any_call(
                ErrorClass::Permanent,
                "UnsupportedAction",
                format!(
                    "action `{}` is valid but this version of the worker does not carry out \
                     Service Catalog portfolio changes; redrive once it does",
                    message.request.action_name()
                ),
            );
            return self.dead_letter(
                message.request.raw.get(),
                &dead_letter,
                &context_for(message, None, received_at),
            );
        };
        let progress = message
            .progress
            .clone()
            .unwrap_or_else(|| Progress::start(action, received_at));
        let span = Span::current();
        span.record("step", progress.step_name());
        span.record("attempt", progress.attempt);
        let context = context_for(message, Some(&progress), received_at);

        if progress.stage == Stage::Submit {
            let refusal = self
                .config
                .guardrails
                .refuse(action, assignment)
                .or_else(|| {
                    lifecycle::check_expiry(&progress, message.request.not_after, received_at)
                });
            if let Some(dead_letter) = refusal {
                return self.dead_letter(message.request.raw.get(), &dead_letter, &context);
            }
        }
        if out_of_time(deadline) {
            return Plan::Redeliver("invocation deadline near; no new AWS call");
        }

        let result: CallResult = match (&progress.stage, action) {
            (Stage::Submit, AssignmentAction::Create) => {
                self.identity_center.create_assignment(assignment).await
            }
            (Stage::Submit, AssignmentAction::Delete) => {
                self.identity_center.delete_assignment(assignment).await
            }
            (
                Stage::Poll {
                    operation_request_id,
                    ..
                },
                AssignmentAction::Create,
            ) => {
                self.identity_center
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
                self.identity_center
                    .describe_deletion_status(assignment, operation_request_id)
                    .await
            }
        };
        if let Err(error) = &result {
            tracing::info!(
                kind = ?error.kind,
                code = %error.code,
                // An error page can be large; the first KiB says what it is.
                error = messages::truncate(&error.message, messages::MAX_ERROR_MESSAGE_BYTES),
                "call failed"
            );
        }

        let decision = lifecycle::decide(
            &progress,
            &result,
            OffsetDateTime::now_utc(),
            &self.config.policy,
            fastrand::f64(),
        );
        match decision {
            Decision::Continue {
                progress: next,
                delay_seconds,
            } => {
                tracing::info!(
                    next_step = next.step_name(),
                    next_attempt = next.attempt,
                    delay_seconds,
                    "re-enqueued"
                );
                match messages::progress_message(&message.request.raw, &next, delay_seconds) {
                    Ok(outgoing) => Plan::Store {
                        messages: vec![(Destination::Work, outgoing)],
                        terminal: None,
                    },
                    Err(error) => {
                        tracing::error!(%error, "could not encode the progress envelope");
                        Plan::Redeliver("progress envelope not encodable")
                    }
                }
            }
            Decision::Done {
                completion,
                operation_request_id,
            } => {
                let context = OutcomeContext {
                    operation_request_id: operation_request_id
                        .as_deref()
                        .or(context.operation_request_id),
                    finished_at: OffsetDateTime::now_utc(),
                    ..context
                };
                self.complete(&context, completion)
            }
            Decision::DeadLetter(dead_letter) => {
                let context = OutcomeContext {
                    operation_request_id: dead_letter.operation_request_id.as_deref(),
                    finished_at: OffsetDateTime::now_utc(),
                    ..context
                };
                self.dead_letter(message.request.raw.get(), &dead_letter, &context)
            }
        }
    }

    fn complete(&self, context: &OutcomeContext<'_>, completion: Completion) -> Plan {
        let mut messages = Vec::new();
        if self.config.outcome_queue.is_some() {
            match messages::outcome_message(context, Outcome::Completed(completion)) {
                Ok(event) => messages.push((Destination::Outcome, event)),
                Err(error) => {
                    tracing::error!(%error, "could not encode the outcome event");
                    return Plan::Redeliver("outcome event not encodable");
                }
            }
        }
        Plan::Store {
            messages,
            terminal: Some(completion.as_str().to_owned()),
        }
    }

    fn dead_letter(
        &self,
        body: &str,
        dead_letter: &DeadLetter,
        context: &OutcomeContext<'_>,
    ) -> Plan {
        tracing::warn!(
            error_class = dead_letter.class.as_str(),
            error_code = %dead_letter.code,
            reason = %messages::truncate(&dead_letter.message, messages::MAX_ERROR_MESSAGE_BYTES),
            "dead-lettering"
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
            terminal: Some(format!("dead-lettered ({})", dead_letter.class.as_str())),
        }
    }
}

fn context_for<'a>(
    message: &'a Message,
    progress: Option<&'a Progress>,
    received_at: OffsetDateTime,
) -> OutcomeContext<'a> {
    OutcomeContext {
        correlation_id: message.request.correlation_id.as_ref(),
        action: Some(message.request.action_name()),
        request: Some(&message.request.raw),
        operation_request_id: progress.and_then(Progress::operation_request_id),
        attempts: progress.map_or(0, |p| p.attempt),
        polls: progress.map_or(0, Progress::polls),
        received_at: progress.map_or(received_at, |p| p.first_received_at),
        finished_at: received_at,
    }
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

fn out_of_time(deadline: Option<SystemTime>) -> bool {
    deadline.is_some_and(|deadline| {
        deadline
            .duration_since(SystemTime::now())
            .map_or(true, |left| left < CALL_RESERVE)
    })
}

/// Groups record indexes so that records for the same (instance, account, permission
/// set) share a group, in arrival order; every other record is a group of its own.
fn group_by_assignment(parsed: &[Result<Message, InvalidRequest>]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_key: HashMap<(&str, &str, &str), usize> = HashMap::new();
    for (index, message) in parsed.iter().enumerate() {
        let key = message
            .as_ref()
            .ok()
            .and_then(|m| m.request.assignment())
            .map(|(_, a)| {
                (
                    a.instance.as_str(),
                    a.account.as_str(),
                    a.permission_set.as_str(),
                )
            });
        match key.map(|key| (key, by_key.get(&key).copied())) {
            Some((_, Some(group))) => groups[group].push(index),
            Some((key, None)) => {
                by_key.insert(key, groups.len());
                groups.push(vec![index]);
            }
            None => groups.push(vec![index]),
        }
    }
    groups
}

/// When the invocation is cut off, from the context's deadline in epoch milliseconds.
/// Zero (as in `Context::default()`) means none. A deadline already past when the
/// invocation starts cannot be real (local emulators have sent a relative one): it is
/// ignored with a warning rather than leaving every record unprocessed.
pub fn invocation_deadline(deadline_ms: u64, now: SystemTime) -> Option<SystemTime> {
    if deadline_ms == 0 {
        return None;
    }
    let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms);
    if deadline <= now {
        tracing::warn!(
            deadline_ms,
            "the invocation's deadline is already past; ignoring it"
        );
        return None;
    }
    Some(deadline)
}

/// The Lambda entry point.
pub async fn function_handler<I: IdentityCenter, Q: QueueSender>(
    worker: &Worker<I, Q>,
    event: lambda_runtime::LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let deadline = invocation_deadline(event.context.deadline, SystemTime::now());
    let response = worker.handle(event.payload, deadline).await;
    if response
        .batch_item_failures
        .iter()
        .any(|f| f.item_identifier.is_empty())
    {
        // An empty identifier would fail the batch anyway; say why.
        return Err("a record without a message id could not be stored; failing the batch".into());
    }
    Ok(response)
}
