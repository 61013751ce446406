//! moto's server, on a port it picks itself and reports, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::Error;

/// The command that starts moto: `MOTO_SERVER` when set (a moto_server executable), else
/// local-stack/moto_server.py on the project's .venv (scripts/bootstrap), which is moto's
/// server with a race in its SQS closed and two linear costs made constant (see that
/// file).
pub fn command() -> (PathBuf, Vec<String>) {
    match std::env::var_os("MOTO_SERVER") {
        Some(binary) => (PathBuf::from(binary), Vec::new()),
        None => {
            let root = crate::workspace_root();
            (
                root.join(".venv/bin/python"),
                vec![
                    root.join("local-stack/moto_server.py")
                        .display()
                        .to_string(),
                ],
            )
        }
    }
}

pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Starts moto with `-p 0` and reads the port from its banner, so that parallel
    /// runs never share a server.
    pub fn start() -> Result<Moto, Error> {
        let (binary, script) = command();
        if !binary.exists() {
            return Err(format!(
                "{} not found: run scripts/bootstrap (or scripts/test)",
                binary.display()
            )
            .into());
        }
        let mut child = Command::new(&binary)
            .args(script)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let stderr = child
            .stderr
            .take()
            .ok_or("moto's stderr was not captured")?;
        let (port_tx, port_rx) = mpsc::channel();
        // Reads the banner, then keeps draining moto's request log so that it never blocks.
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
        match port_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(port) => Ok(Moto {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
            }),
            Err(_) => {
                let _ = child.kill();
                Err("moto_server did not report its port within 60 s".into())
            }
        }
    }
}

impl Moto {
    /// AWS configuration for clients pointed at this server: fixed region and dummy
    /// credentials, nothing read from profiles.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "local", "local", None, None, "moto",
            ))
            .load()
            .await
    }
}

/// Creates the ledger table (SPEC §11: string partition key `pk`, no sort key,
/// on-demand) as an operator would for a cargo-lambda deploy.
pub async fn create_ledger_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), Error> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    dynamodb
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()?,
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await?;
    Ok(())
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
