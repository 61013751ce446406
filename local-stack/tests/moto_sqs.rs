//! The moto the local stack runs (local-stack/moto_server.py) keeps every message SQS
//! acknowledged while other clients receive and delete on the same queue, as a
//! benchmark with 10 function processes does. moto 5.2.5's DeleteMessage rebuilds the
//! queue's message list without the lock SendMessage appends under, so a message sent
//! meanwhile can vanish: 8 of 1,200 requests of a benchmark run were lost that way.

use std::collections::HashSet;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, SendMessageBatchRequestEntry};
use local_stack::moto::Moto;

const SENDERS: usize = 4;
const BATCHES_PER_SENDER: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_acknowledged_message_is_lost_while_others_are_deleted() {
    let moto = Moto::start().expect("moto");
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let queue = sqs
        .create_queue()
        .queue_name("work")
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("url")
        .to_owned();
    // A backlog, so that each delete walks a long list.
    for batch in 0..200 {
        send(&sqs, &queue, &format!("backlog-{batch}")).await;
    }

    // Senders store new messages while deleters take the backlog away.
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let (sqs, queue) = (sqs.clone(), queue.clone());
        senders.push(tokio::spawn(async move {
            let mut bodies = Vec::new();
            for batch in 0..BATCHES_PER_SENDER {
                bodies.extend(send(&sqs, &queue, &format!("new-{sender}-{batch}")).await);
            }
            bodies
        }));
    }
    let mut deleters = Vec::new();
    for _ in 0..SENDERS {
        let (sqs, queue) = (sqs.clone(), queue.clone());
        deleters.push(tokio::spawn(async move {
            let (mut taken, mut seen) = (0, Vec::new());
            // Deletes backlog messages only, so that every new one must stay stored;
            // the new ones it receives count as stored.
            while taken < 400 {
                let messages = receive(&sqs, &queue).await;
                seen.extend(new_bodies(&messages));
                let entries: Vec<_> = messages
                    .iter()
                    .filter(|m| m.body().is_some_and(|b| b.starts_with("backlog-")))
                    .enumerate()
                    .map(|(i, m)| {
                        DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(m.receipt_handle().unwrap_or_default())
                            .build()
                            .expect("entry")
                    })
                    .collect();
                if entries.is_empty() {
                    break;
                }
                taken += entries.len();
                sqs.delete_message_batch()
                    .queue_url(&queue)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .expect("delete");
            }
            (taken, seen)
        }));
    }
    let mut sent = HashSet::new();
    for sender in senders {
        sent.extend(sender.await.expect("sender"));
    }
    let (mut deleted, mut stored) = (0, HashSet::new());
    for deleter in deleters {
        let (taken, seen) = deleter.await.expect("deleter");
        deleted += taken;
        stored.extend(seen);
    }
    assert!(deleted > 0, "no delete ran beside the sends");

    // Every new message is still there, or was received above.
    loop {
        let messages = receive(&sqs, &queue).await;
        if messages.is_empty() {
            break;
        }
        stored.extend(new_bodies(&messages));
    }
    let lost: Vec<_> = sent.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages lost, e.g. {:?}",
        lost.len(),
        sent.len(),
        lost.iter().take(3).collect::<Vec<_>>()
    );
}

/// Receives up to 10 messages, hidden from other receives for the rest of the test.
async fn receive(sqs: &aws_sdk_sqs::Client, queue: &str) -> Vec<Message> {
    sqs.receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .visibility_timeout(600)
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default()
}

/// The bodies of the messages the senders stored.
fn new_bodies(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| m.body())
        .filter(|b| b.starts_with("new-"))
        .map(str::to_owned)
        .collect()
}

/// Sends a batch of 10 and returns the bodies SQS acknowledged.
async fn send(sqs: &aws_sdk_sqs::Client, queue: &str, prefix: &str) -> Vec<String> {
    let entries: Vec<_> = (0..10)
        .map(|i| {
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(format!("{prefix}-{i}"))
                .build()
                .expect("entry")
        })
        .collect();
    let bodies: Vec<String> = entries
        .iter()
        .map(|e| e.message_body().to_owned())
        .collect();
    let answer = sqs
        .send_message_batch()
        .queue_url(queue)
        .set_entries(Some(entries))
        .send()
        .await
        .expect("send");
    answer
        .successful()
        .iter()
        .filter_map(|ok| ok.id().parse::<usize>().ok())
        .filter_map(|i| bodies.get(i).cloned())
        .collect()
}
