//! Runs the worker over the requests in events/ against local stand-ins for AWS (the
//! endpoint in AWS_ENDPOINT_URL), the way Lambda's SQS event source would: receive up
//! to 10 messages, hand them to the handler, delete those not listed as failures. Stops
//! when every request has an outcome, then prints the outcomes and the dead letters.
//!
//! Started by scripts/run-local, which brings up the local endpoint first.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use assignment_worker::adapters::{aws_config_from_env, aws_worker};
use assignment_worker::config::Config;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{MessageSystemAttributeName, SendMessageBatchRequestEntry};
use serde_json::Value;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Settings that make a local run take seconds: short polls and backoffs.
const LOCAL_DEFAULTS: [(&str, &str); 4] = [
    ("POLL_INITIAL_DELAY_SECONDS", "1"),
    ("POLL_MAX_DELAY_SECONDS", "2"),
    ("BACKOFF_BASE_SECONDS", "1"),
    ("BUSY_BACKOFF_MIN_SECONDS", "2"),
];
const GIVE_UP_AFTER: Duration = Duration::from_secs(180);

#[tokio::main]
async fn main() -> Result<(), Error> {
    let shared = aws_config_from_env().await;
    let sqs = aws_sdk_sqs::Client::new(&shared);
    let mut queue_urls = HashMap::new();
    for (variable, name) in [
        ("WORK_QUEUE_URL", "assignment-work"),
        ("DEAD_LETTER_QUEUE_URL", "assignment-dlq"),
        ("OUTCOME_QUEUE_URL", "assignment-outcomes"),
    ] {
        let url = sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await?
            .queue_url()
            .unwrap_or_default()
            .to_owned();
        queue_urls.insert(variable, url);
    }
    let config = Config::from_lookup(|name| {
        queue_urls
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
            .or_else(|| {
                LOCAL_DEFAULTS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            })
    })?;
    let work = config.work_queue.as_str().to_owned();
    let dlq = config.dead_letter_queue.as_str().to_owned();
    let outcomes_queue = queue_urls["OUTCOME_QUEUE_URL"].clone();
    let worker = aws_worker(&shared, config);

    let bodies = request_bodies(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/events")))?;
    for (chunk_index, chunk) in bodies.chunks(10).enumerate() {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("{chunk_index}-{i}"))
                    .message_body(body)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        sqs.send_message_batch()
            .queue_url(&work)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    println!("sent {} requests from events/ to {work}\n", bodies.len());

    let started = Instant::now();
    let mut outcomes: Vec<Value> = Vec::new();
    let mut invocations = 0;
    while outcomes.len() < bodies.len() {
        if started.elapsed() > GIVE_UP_AFTER {
            return Err(format!(
                "only {} of {} requests reached an outcome in {GIVE_UP_AFTER:?}",
                outcomes.len(),
                bodies.len()
            )
            .into());
        }
        let received = sqs
            .receive_message()
            .queue_url(&work)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await?;
        let messages = received.messages();
        if !messages.is_empty() {
            invocations += 1;
            let event = sqs_event(messages);
            let response = worker
                .handle(event, Some(SystemTime::now() + Duration::from_secs(60)))
                .await;
            let failed: Vec<&str> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            for message in messages {
                if !failed.contains(&message.message_id().unwrap_or_default()) {
                    sqs.delete_message()
                        .queue_url(&work)
                        .receipt_handle(message.receipt_handle().unwrap_or_default())
                        .send()
                        .await?;
                }
            }
        }
        for message in drain(&sqs, &outcomes_queue).await? {
            outcomes.push(serde_json::from_str(message.body().unwrap_or_default())?);
        }
    }

    println!(
        "{:<10} {:<33} {:<18} {:>5} {:>8}  detail",
        "request", "action", "outcome", "polls", "attempts"
    );
    for event in &outcomes {
        let text = |key: &str| event[key].as_str().unwrap_or("-").to_owned();
        let detail = match event["outcome"].as_str() {
            Some("dead-lettered") => format!(
                "{} {}: {}",
                text("errorClass"),
                text("errorCode"),
                text("errorMessage")
            ),
            _ => text("operationRequestId"),
        };
        println!(
            "{:<10} {:<33} {:<18} {:>5} {:>8}  {}",
            text("correlationId"),
            text("action"),
            text("outcome"),
            event["polls"],
            event["attempts"],
            shorten(&detail, 110)
        );
    }
    println!(
        "\n{} requests, {} outcomes, {invocations} handler invocations",
        bodies.len(),
        outcomes.len()
    );

    let dead = drain(&sqs, &dlq).await?;
    println!("\ndead-letter queue: {} messages", dead.len());
    for message in &dead {
        let attribute = |name: &str| {
            message
                .message_attributes()
                .and_then(|a| a.get(name))
                .and_then(|v| v.string_value())
                .unwrap_or("-")
                .to_owned()
        };
        println!(
            "  {:<16} {:<22} {:<10} {}",
            attribute("ErrorClass"),
            attribute("ErrorCode"),
            attribute("CorrelationId"),
            shorten(message.body().unwrap_or_default(), 80)
        );
    }
    Ok(())
}

/// Every record body in every events/*.json file, in file order.
fn request_bodies(dir: &Path) -> Result<Vec<String>, Error> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.retain(|path| path.extension().is_some_and(|ext| ext == "json"));
    files.sort();
    let mut bodies = Vec::new();
    for file in files {
        let event: SqsEvent = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
        bodies.extend(event.records.into_iter().filter_map(|r| r.body));
    }
    Ok(bodies)
}

/// The event Lambda's SQS event source would build from these messages.
fn sqs_event(messages: &[aws_sdk_sqs::types::Message]) -> SqsEvent {
    let mut event = SqsEvent::default();
    for message in messages {
        let mut record = SqsMessage::default();
        record.message_id = message.message_id().map(str::to_owned);
        record.receipt_handle = message.receipt_handle().map(str::to_owned);
        record.body = message.body().map(str::to_owned);
        record.md5_of_body = message.md5_of_body().map(str::to_owned);
        record.event_source = Some("aws:sqs".to_owned());
        record.attributes = message
            .attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        event.records.push(record);
    }
    event
}

async fn drain(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
) -> Result<Vec<aws_sdk_sqs::types::Message>, Error> {
    let mut all = Vec::new();
    loop {
        let answer = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await?;
        let messages = answer.messages().to_vec();
        if messages.is_empty() {
            return Ok(all);
        }
        for message in &messages {
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await?;
        }
        all.extend(messages);
    }
}

fn shorten(text: &str, max: usize) -> String {
    let text = text.replace('\n', " ");
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}
