//! Lambda's SQS event source mapping, as far as the worker can tell: long-poll up to 10
//! messages, invoke the function with them, delete those not listed in
//! `batchItemFailures`, and leave the rest (or everything, when the invocation fails)
//! to reappear after the visibility timeout.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use serde_json::{Value, json};

use crate::Error;
use crate::worker::WorkerProcess;

/// Calls made by the event source itself, for the benchmark.
#[derive(Debug, Default)]
pub struct EventSourceCounts {
    pub receives: AtomicU64,
    pub deletes: AtomicU64,
    pub invocations: AtomicU64,
    pub failed_invocations: AtomicU64,
    pub records: AtomicU64,
    pub records_left: AtomicU64,
}

pub struct EventSourceMapping {
    pub sqs: Client,
    pub queue_url: String,
    pub queue_arn: String,
    pub visibility_timeout_seconds: i32,
    pub function_timeout: Duration,
    pub counts: EventSourceCounts,
}

/// What one poll did.
#[derive(Debug, PartialEq, Eq)]
pub enum Poll {
    Empty,
    Invoked { records: usize, left: usize },
    NoAnswer { records: usize },
}

impl EventSourceMapping {
    /// One poll. `invoking` is set while the function holds the batch.
    pub async fn poll(&self, worker: &WorkerProcess, invoking: &AtomicBool) -> Result<Poll, Error> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(self.visibility_timeout_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await?;
        self.counts.receives.fetch_add(1, Ordering::Relaxed);
        let messages = received.messages();
        if messages.is_empty() {
            return Ok(Poll::Empty);
        }
        self.counts.invocations.fetch_add(1, Ordering::Relaxed);
        self.counts
            .records
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        invoking.store(true, Ordering::SeqCst);
        let answer = worker
            .invoke(self.event(messages).to_string(), self.function_timeout)
            .await;
        invoking.store(false, Ordering::SeqCst);
        let answer = match answer {
            Ok(answer) => answer,
            Err(_) => {
                self.counts
                    .failed_invocations
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(Poll::NoAnswer {
                    records: messages.len(),
                });
            }
        };
        let failed: Vec<String> = serde_json::from_str::<Value>(&answer)
            .ok()
            .and_then(|v| {
                v.get("batchItemFailures")
                    .and_then(Value::as_array)
                    .cloned()
            })
            .unwrap_or_default()
            .iter()
            .filter_map(|f| {
                f.get("itemIdentifier")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect();
        let done: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .filter(|m| !failed.iter().any(|f| Some(f.as_str()) == m.message_id()))
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        let left = messages.len() - done.len();
        self.counts
            .records_left
            .fetch_add(left as u64, Ordering::Relaxed);
        if !done.is_empty() {
            self.sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(done))
                .send()
                .await?;
            self.counts.deletes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Poll::Invoked {
            records: messages.len(),
            left,
        })
    }

    /// The SQS event Lambda would pass for these messages.
    fn event(&self, messages: &[Message]) -> Value {
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<String, Value> = m
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body(),
                    "attributes": attributes,
                    "messageAttributes": {},
                    "md5OfBody": m.md5_of_body(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": "us-east-1",
                })
            })
            .collect();
        json!({ "Records": records })
    }
}
