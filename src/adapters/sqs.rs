//! The queue port over aws-sdk-sqs.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

use super::call_error;
use crate::aws_call::{CallError, ErrorKind};
use crate::config::QueueUrl;
use crate::queue::{OutgoingMessage, QueueSender, SendError};

pub struct SqsQueues {
    client: Client,
}

impl SqsQueues {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn entry(id: usize, message: &OutgoingMessage) -> Result<SendMessageBatchRequestEntry, SendError> {
    let invalid = |e: aws_sdk_sqs::error::BuildError| SendError {
        kind: ErrorKind::Rejected,
        code: "InvalidEntry".to_owned(),
        message: e.to_string(),
    };
    let mut builder = SendMessageBatchRequestEntry::builder()
        .id(id.to_string())
        .message_body(&message.body)
        .delay_seconds(i32::try_from(message.delay_seconds).unwrap_or(900));
    for (name, value) in &message.attributes {
        let value = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .map_err(invalid)?;
        builder = builder.message_attributes(*name, value);
    }
    builder.build().map_err(invalid)
}

impl QueueSender for SqsQueues {
    #[tracing::instrument(skip(self, messages), fields(queue = queue.as_str(), count = messages.len()))]
    async fn send_batch(
        &self,
        queue: &QueueUrl,
        messages: &[OutgoingMessage],
    ) -> Vec<Result<(), SendError>> {
        let mut results: Vec<Result<(), SendError>> = vec![
            Err(SendError {
                kind: ErrorKind::ServerError,
                code: "NoResult".to_owned(),
                message: "SQS answered without this entry".to_owned(),
            });
            messages.len()
        ];
        let mut entries = Vec::with_capacity(messages.len());
        let mut sent = Vec::with_capacity(messages.len());
        for (id, message) in messages.iter().enumerate() {
            match entry(id, message) {
                Ok(entry) => {
                    entries.push(entry);
                    sent.push(id);
                }
                Err(error) => results[id] = Err(error),
            }
        }
        if entries.is_empty() {
            return results;
        }
        match self
            .client
            .send_message_batch()
            .queue_url(queue.as_str())
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(answer) => {
                for ok in answer.successful() {
                    if let Some(slot) = ok
                        .id()
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| results.get_mut(i))
                    {
                        *slot = Ok(());
                    }
                }
                for failed in answer.failed() {
                    if let Some(slot) = failed
                        .id()
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| results.get_mut(i))
                    {
                        // SQS says whose fault an entry's failure was; its own is a
                        // server error whatever the code.
                        let kind = if failed.sender_fault() {
                            ErrorKind::classify(Some(failed.code()), failed.message(), None)
                        } else {
                            ErrorKind::ServerError
                        };
                        *slot = Err(SendError {
                            kind,
                            code: failed.code().to_owned(),
                            message: failed.message().unwrap_or_default().to_owned(),
                        });
                    }
                }
            }
            Err(error) => {
                let CallError {
                    kind,
                    code,
                    message,
                } = call_error(error);
                let failure = SendError {
                    kind,
                    code,
                    message,
                };
                for id in sent {
                    results[id] = Err(failure.clone());
                }
            }
        }
        results
    }
}
