//! Test support: moto's server on a free loopback port, and AWS clients pointed at it.
#![allow(dead_code)] // each test binary uses part of this module

use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use local_stack::stack::DeadLetterRecord;

/// moto's server on a port it picks; killed when dropped.
pub struct Moto(local_stack::moto::Moto);

impl Moto {
    pub fn start() -> Moto {
        Moto(local_stack::moto::Moto::start().unwrap_or_else(|e| panic!("{e}")))
    }

    pub async fn sdk_config(&self) -> SdkConfig {
        self.0.sdk_config().await
    }
}

/// The ledger table as SPEC §11 describes it: a string partition key `pk`, no sort key.
pub async fn create_ledger_table(dynamodb: &aws_sdk_dynamodb::Client, name: &str) -> String {
    local_stack::moto::create_ledger_table(dynamodb, name)
        .await
        .unwrap_or_else(|e| panic!("creating table {name}: {e}"));
    name.to_owned()
}

pub async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .expect("queue url")
        .to_owned()
}

/// Every message visible in the queue now, deleted as it is read.
pub async fn drain(sqs: &aws_sdk_sqs::Client, queue: &str) -> Vec<DeadLetterRecord> {
    local_stack::stack::drain(sqs, queue)
        .await
        .unwrap_or_else(|e| panic!("draining {queue}: {e}"))
}

pub async fn queue_count(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    attribute: QueueAttributeName,
) -> u64 {
    let answer = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(attribute.clone())
        .send()
        .await
        .expect("queue attributes");
    answer
        .attributes()
        .and_then(|attributes| attributes.get(&attribute))
        .and_then(|value| value.parse().ok())
        .expect("a count")
}

pub fn attribute<'a>(message: &'a DeadLetterRecord, name: &str) -> Option<&'a str> {
    message.attributes.get(name).map(String::as_str)
}
