//! Test support: moto's server on a free loopback port, and AWS clients pointed at it.
#![allow(dead_code)] // each test binary uses part of this module

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sqs::config::{Credentials, Region};
use aws_sdk_sqs::types::{Message, QueueAttributeName};

/// moto_server, as installed by scripts/bootstrap; `MOTO_SERVER` overrides the path.
fn moto_binary() -> PathBuf {
    std::env::var_os("MOTO_SERVER").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server"),
        PathBuf::from,
    )
}

/// A moto server process, killed when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Starts moto on a port the OS picks (`-p 0`) and reads the port back from its
    /// banner, so that parallel tests can never share a server.
    pub fn start() -> Moto {
        let binary = moto_binary();
        assert!(
            binary.exists(),
            "{} not found: run scripts/test (it creates .venv with the pinned moto)",
            binary.display()
        );
        let mut child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let stderr = child.stderr.take().expect("piped stderr");
        let (port_tx, port_rx) = mpsc::channel();
        // Reads the banner, then keeps draining moto's request log so it never blocks.
        std::thread::spawn(move || {
            let mut port_tx = Some(port_tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = line
                    .split_once("Running on http://127.0.0.1:")
                    .and_then(|(_, rest)| rest.trim().parse::<u16>().ok())
                    && let Some(tx) = port_tx.take()
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = match port_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                panic!("moto_server did not report its port within 60 s");
            }
        };
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// AWS configuration for every client pointed at this server.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .load()
            .await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
pub async fn drain(sqs: &aws_sdk_sqs::Client, queue: &str) -> Vec<Message> {
    let mut all = Vec::new();
    loop {
        let answer = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive");
        let messages = answer.messages().to_vec();
        if messages.is_empty() {
            return all;
        }
        for message in &messages {
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
        all.extend(messages);
    }
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

pub fn attribute<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message.message_attributes()?.get(name)?.string_value()
}
