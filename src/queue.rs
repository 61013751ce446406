//! The queue port: everything the worker stores goes out through SendMessageBatch.

use std::future::Future;
use std::ops::Range;
use std::time::Duration;

use crate::aws_call::ErrorKind;
use crate::config::QueueUrl;

/// SendMessageBatch takes at most this many entries.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// SendMessageBatch refuses a request whose bodies and attributes add up to more than
/// this (the per-message limit for queues created before 2025 is the same 256 KiB).
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub body: String,
    pub delay_seconds: u32,
    /// String message attributes, name and value.
    pub attributes: Vec<(&'static str, String)>,
}

impl OutgoingMessage {
    /// Bytes this message counts against the batch limit.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(name, value)| name.len() + "String".len() + value.len())
                .sum::<usize>()
    }

    /// Takes the whole seconds of `elapsed`, the time since the step was planned, off
    /// the delay. The delay counts from the planning, but a batch is sent only once its
    /// slowest record is done: counted from the send, a step came back later by the rest
    /// of the invocation. The part of a second left over stays, so a message never comes
    /// back before its time.
    pub fn count_delay_from_plan(&mut self, elapsed: Duration) {
        let whole = u32::try_from(elapsed.as_secs()).unwrap_or(u32::MAX);
        self.delay_seconds = self.delay_seconds.saturating_sub(whole);
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An entry SQS did not store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SendError {
    /// What kind of failure it was, as for any AWS call: the metrics count it so (SPEC
    /// §12); the record is redelivered whatever the kind.
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
}

pub trait QueueSender: Send + Sync {
    /// Sends at most [`MAX_BATCH_ENTRIES`] messages in one call. Returns one result per
    /// message, in order; a call that fails as a whole fails every entry.
    fn send_batch(
        &self,
        queue: &QueueUrl,
        messages: &[OutgoingMessage],
    ) -> impl Future<Output = Vec<Result<(), SendError>>> + Send;
}

/// Splits messages into consecutive runs that each fit one SendMessageBatch call: at
/// most 10 entries and 256 KiB. A message too large on its own gets a run of its own,
/// so SQS refuses that entry alone and not its neighbours.
pub fn plan_batches(messages: &[OutgoingMessage]) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (index, message) in messages.iter().enumerate() {
        let size = message.size();
        let full =
            index - start == MAX_BATCH_ENTRIES || (index > start && bytes + size > MAX_BATCH_BYTES);
        if full {
            runs.push(start..index);
            start = index;
            bytes = 0;
        }
        bytes += size;
    }
    if start < messages.len() {
        runs.push(start..messages.len());
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(bytes: usize) -> OutgoingMessage {
        OutgoingMessage {
            body: "x".repeat(bytes),
            delay_seconds: 0,
            attributes: Vec::new(),
        }
    }

    #[test]
    fn batches_hold_at_most_ten_entries() {
        let messages: Vec<_> = (0..23).map(|_| message(10)).collect();
        assert_eq!(plan_batches(&messages), vec![0..10, 10..20, 20..23]);
        assert!(plan_batches(&[]).is_empty());
    }

    #[test]
    fn batches_stay_under_the_byte_limit() {
        let messages = vec![
            message(100_000),
            message(100_000),
            message(100_000),
            message(300_000),
            message(1),
        ];
        assert_eq!(plan_batches(&messages), vec![0..2, 2..3, 3..4, 4..5]);
    }
}
