//! The batch handler: one SQS batch in, each record carried one step forward
//! ([`crate::record_step`]), the messages stored in as few SendMessageBatch calls as the
//! limits allow, and the list of records whose next step is not durably stored
//! (SPEC §5) out.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::{FutureExt, StreamExt, stream};
use tokio::time::Instant;
use tracing::{Instrument, Span, field};

use crate::aws_call::ErrorKind;
use crate::clock::WallClock;
use crate::config::{Config, QueueUrl};
use crate::identity_center::IdentityCenter;
use crate::ledger::Ledger;
use crate::metrics::{Answer, Api, InvocationMetrics};
use crate::queue::{OutgoingMessage, QueueSender, SendError, plan_batches};
use crate::record_step::Plan;
use crate::request::{InvalidRequest, Message, Target, parse_body};
use crate::service_catalog::ServiceCatalog;

/// Time kept after the last send for the handler to answer Lambda.
const ANSWER_MARGIN: Duration = Duration::from_millis(200);

/// The worker's dependencies, built once per cold start.
pub struct Worker<I, Q, L, S> {
    pub identity_center: I,
    pub queues: Q,
    pub ledger: L,
    pub service_catalog: S,
    pub config: Config,
}

/// One Lambda invocation: its deadline, the ids every log line about its records
/// carries, and its metrics.
#[derive(Debug, Default)]
pub struct Invocation {
    /// When the invocation is cut off (`None`: never).
    pub deadline: Option<SystemTime>,
    /// The invocation's whole time, from its start to its deadline (`None`: unknown).
    pub timeout: Option<Duration>,
    pub request_id: String,
    pub xray_trace_id: Option<String>,
    pub metrics: InvocationMetrics,
    /// The clock its records are decided by.
    pub clock: WallClock,
}

/// Which queue a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Destination {
    Work,
    DeadLetter,
    Outcome,
}

impl<I: IdentityCenter, Q: QueueSender, L: Ledger, S: ServiceCatalog> Worker<I, Q, L, S> {
    /// Handles one batch.
    pub async fn handle(&self, event: SqsEvent, invocation: &Invocation) -> SqsBatchResponse {
        let records = event.records;
        let parsed: Vec<Result<Message, InvalidRequest>> = records
            .iter()
            .map(|record| parse_body(record.body.as_deref().unwrap_or_default()))
            .collect();
        let groups = group_by_assignment(&parsed);
        let started = Instant::now();
        let plans: Vec<(usize, Plan, Span, Instant)> = stream::iter(groups)
            .map(|group| self.run_group(&records, &parsed, group, invocation))
            .buffer_unordered(self.config.max_concurrency)
            .flat_map(stream::iter)
            .collect()
            .await;

        let mut failed = vec![false; records.len()];
        let mut spans = vec![Span::none(); records.len()];
        // Every record's plan comes back with its time; the invocation's start only
        // fills the vector.
        let mut planned_at = vec![started; records.len()];
        // Per queue: the messages, and the record each one belongs to.
        let mut outbox: HashMap<Destination, (Vec<usize>, Vec<OutgoingMessage>)> = HashMap::new();
        let mut finished = Vec::new();
        for (index, plan, span, planned) in plans {
            planned_at[index] = planned;
            match plan {
                Plan::Redeliver(reason) => {
                    failed[index] = true;
                    span.in_scope(|| tracing::info!(reason, "record left for redelivery"));
                    spans[index] = span;
                }
                Plan::Store { messages, terminal } => {
                    for (destination, message) in messages {
                        let (records, queued) = outbox.entry(destination).or_default();
                        records.push(index);
                        queued.push(message);
                    }
                    if let Some(outcome) = terminal {
                        finished.push((index, outcome));
                    }
                    spans[index] = span;
                }
            }
        }

        // One queue after another, each only for the records whose earlier messages are
        // stored. A record whose message is refused runs again and may end otherwise (the
        // operation finished meanwhile): its next step goes first, since a dead letter
        // stored beside a refused step could be contradicted by the rerun's outcome (and
        // replayed by a redrive), and its outcome event last, for the same reason. Once
        // its dead letter is stored, a record is done (SPEC §5): a refused `dead-lettered`
        // event is lost rather than rerun into that contradiction.
        let mut dead_letter_stored = vec![false; records.len()];
        for destination in [
            Destination::Work,
            Destination::DeadLetter,
            Destination::Outcome,
        ] {
            let Some((owners, messages)) = outbox.remove(&destination) else {
                continue;
            };
            let (owners, mut messages): (Vec<usize>, Vec<OutgoingMessage>) = owners
                .into_iter()
                .zip(messages)
                .filter(|(index, _)| !failed[*index])
                .unzip();
            if owners.is_empty() {
                continue;
            }
            let now = Instant::now();
            for (index, message) in owners.iter().zip(&mut messages) {
                message.count_delay_from_plan(now.saturating_duration_since(planned_at[*index]));
            }
            let failures = self
                .send_all(destination, &owners, &messages, invocation)
                .await;
            for (index, error) in failures {
                if destination == Destination::Outcome && dead_letter_stored[index] {
                    spans[index].in_scope(|| {
                        tracing::warn!(
                            %error,
                            "outcome event not sent; the dead letter is stored, so the \
                             record is done and its dead-lettered event is lost"
                        );
                    });
                    continue;
                }
                failed[index] = true;
                spans[index].in_scope(|| {
                    tracing::error!(
                        ?destination,
                        %error,
                        "send failed; the record will be delivered again"
                    );
                });
            }
            if destination == Destination::DeadLetter {
                for index in owners {
                    dead_letter_stored[index] = !failed[index];
                }
            }
        }
        let now = invocation.clock.now();
        for (index, terminal) in finished {
            let durable = !failed[index];
            spans[index].in_scope(|| {
                tracing::info!(
                    outcome = terminal.outcome,
                    error_class = terminal.error_class.map(|c| c.as_str()),
                    durable,
                    "request finished"
                );
            });
            // Counted once stored: a record that fails here runs again.
            if durable {
                terminal.count(&invocation.metrics, now);
            }
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
    /// as the limits allow, all at once; returns the records whose messages were not
    /// stored.
    async fn send_all(
        &self,
        destination: Destination,
        owners: &[usize],
        messages: &[OutgoingMessage],
        invocation: &Invocation,
    ) -> Vec<(usize, String)> {
        let Some(queue) = self.queue_url(destination) else {
            return owners
                .iter()
                .map(|index| (*index, format!("no queue configured for {destination:?}")))
                .collect();
        };
        let runs = plan_batches(messages).into_iter().map(|run| async move {
            let batch = &messages[run.clone()];
            let mut results = self.send_batch(queue, batch, invocation).await;
            if batch.len() > 1 && results.iter().all(Result::is_err) {
                // SQS refuses a whole batch for one bad entry (an oversized body, say):
                // sent alone, the others still go through. All at once, so that the
                // fallback costs one send's time, whatever the batch's size.
                let alone = batch.iter().map(|message| {
                    self.send_batch(queue, std::slice::from_ref(message), invocation)
                });
                results = futures_util::future::join_all(alone)
                    .await
                    .into_iter()
                    .flatten()
                    .collect();
            }
            (run, results)
        });
        let mut failures = Vec::new();
        for (run, results) in futures_util::future::join_all(runs).await {
            for (offset, index) in owners[run].iter().enumerate() {
                match results.get(offset) {
                    Some(Ok(())) => {}
                    Some(Err(error)) => failures.push((*index, error.to_string())),
                    None => failures.push((*index, "no result for this entry".to_owned())),
                }
            }
        }
        failures
    }

    /// One SendMessageBatch call, cut off before the invocation's deadline: an answer
    /// that comes too late is no answer, and the records stay listed for redelivery.
    async fn send_batch(
        &self,
        queue: &QueueUrl,
        messages: &[OutgoingMessage],
        invocation: &Invocation,
    ) -> Vec<Result<(), SendError>> {
        let refused = |message: &str| {
            vec![
                Err(SendError {
                    kind: ErrorKind::Timeout,
                    code: "DeadlineNear".to_owned(),
                    message: message.to_owned(),
                });
                messages.len()
            ]
        };
        let budget = match invocation.deadline {
            None => None,
            Some(deadline) => match deadline
                .duration_since(SystemTime::now())
                .ok()
                .and_then(|left| left.checked_sub(ANSWER_MARGIN))
            {
                Some(budget) if !budget.is_zero() => Some(budget),
                _ => return refused("the invocation's deadline is near; not sent"),
            },
        };
        let send = self.queues.send_batch(queue, messages);
        let mut results = match budget {
            None => send.await,
            Some(budget) => match tokio::time::timeout(budget, send).await {
                Ok(results) => results,
                Err(_) => refused("no answer before the invocation's deadline"),
            },
        };
        // One result per message, whatever the port answered: a missing one is no proof
        // of storage, and the answers of a batch sent again entry by entry are joined in
        // order, where a missing one would shift the next onto its record.
        results.resize_with(messages.len(), || {
            Err(SendError {
                kind: ErrorKind::ServerError,
                code: "NoResult".to_owned(),
                message: "no result for this entry".to_owned(),
            })
        });
        invocation
            .metrics
            .call(Api::SendMessageBatch, send_answer(&results));
        results
    }

    /// Runs a group of records one after another (they touch the same assignment): each
    /// record's plan, its span, and when the plan was made.
    async fn run_group(
        &self,
        records: &[SqsMessage],
        parsed: &[Result<Message, InvalidRequest>],
        group: Vec<usize>,
        invocation: &Invocation,
    ) -> Vec<(usize, Plan, Span, Instant)> {
        let mut plans = Vec::with_capacity(group.len());
        for index in group {
            let record = &records[index];
            // At ERROR, so that it is on at any level the function logs at: its fields name
            // the record on every line, the warnings and errors of a WARN deployment too.
            let span = tracing::error_span!(
                "record",
                request_id = invocation.request_id.as_str(),
                xray_trace_id = invocation.xray_trace_id.as_deref(),
                message_id = record.message_id.as_deref().unwrap_or_default(),
                correlation_id = field::Empty,
                action = field::Empty,
                account = field::Empty,
                permission_set = field::Empty,
                step = field::Empty,
                purpose = field::Empty,
                attempt = field::Empty,
            );
            let plan = AssertUnwindSafe(
                self.run_record(record, &parsed[index], invocation)
                    .instrument(span.clone()),
            )
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                span.in_scope(|| tracing::error!("record processing panicked"));
                Plan::Redeliver("panic")
            });
            // When the plan was made: its delays count from then, and the handler takes
            // the time until the send off them.
            plans.push((index, plan, span, Instant::now()));
        }
        plans
    }
}

/// A SendMessageBatch call's answer: a success when every entry was stored, else the
/// kind of its first failure.
fn send_answer(results: &[Result<(), SendError>]) -> Answer {
    results
        .iter()
        .find_map(|result| result.as_ref().err())
        .map_or(Answer::Success, |error| Answer::of_kind(error.kind))
}

/// Groups record indexes so that records for the same (instance, account, permission
/// set) share a group, in arrival order; every other record is a group of its own.
fn group_by_assignment(parsed: &[Result<Message, InvalidRequest>]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_key: HashMap<(&str, &str, &str), usize> = HashMap::new();
    for (index, message) in parsed.iter().enumerate() {
        let key = message.as_ref().ok().map(|m| match m.request.target().1 {
            Target::Assignment(a) => (
                a.instance.as_str(),
                a.account.as_str(),
                a.permission_set.as_str(),
            ),
            // One portfolio's changes one after another: a list confirms each, and
            // the pattern limit is the portfolio's.
            Target::Portfolio(change) => ("portfolio", change.portfolio.as_str(), ""),
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
pub async fn function_handler<I: IdentityCenter, Q: QueueSender, L: Ledger, S: ServiceCatalog>(
    worker: &Worker<I, Q, L, S>,
    event: lambda_runtime::LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let now = SystemTime::now();
    let deadline = invocation_deadline(event.context.deadline, now);
    let invocation = Invocation {
        deadline,
        timeout: deadline.and_then(|deadline| deadline.duration_since(now).ok()),
        request_id: event.context.request_id.clone(),
        xray_trace_id: event.context.xray_trace_id.clone(),
        metrics: InvocationMetrics::default(),
        clock: WallClock::system(),
    };
    let response = worker.handle(event.payload, &invocation).await;
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let written = invocation.metrics.write(
        &worker.config.metrics_namespace,
        i64::try_from(now_ms).unwrap_or(i64::MAX),
        &mut std::io::stdout().lock(),
    );
    if let Err(error) = written {
        tracing::warn!(%error, "could not write the invocation's metrics");
    }
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
