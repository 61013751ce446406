//! The upgrade step for ledgers written before a portfolio `IAM` principal's key held
//! its name in lower case: carries every decision recorded under a key spelled with
//! capitals over to the key used now, so a stale grant spelled one way cannot outlive a
//! removal recorded under another spelling. It changes the ledger only, never access;
//! it claims and never deletes, so it may run again.
//!
//! `cargo run --release --example carry_over_ledger_keys -- <ledger table>`, with
//! credentials that may `dynamodb:Scan` and `dynamodb:UpdateItem` the table, while the
//! worker is paused (README, "Upgrading a ledger written by such a build").

use std::process::ExitCode;

use assignment_worker::adapters::aws_config_from_env;
use assignment_worker::adapters::dynamodb::DynamoDbLedger;
use assignment_worker::ledger::carry_over_all;
use time::OffsetDateTime;

#[tokio::main]
async fn main() -> ExitCode {
    let Some(table) = std::env::args().nth(1) else {
        eprintln!("usage: carry_over_ledger_keys <ledger table>");
        return ExitCode::from(2);
    };
    let ledger = DynamoDbLedger::new(
        aws_sdk_dynamodb::Client::new(&aws_config_from_env().await),
        &table,
    );
    let items = match ledger.items_keyed_as_before().await {
        Ok(items) => items,
        Err(error) => {
            eprintln!("could not scan {table}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let found = items.len();
    for item in &items {
        if let Err(error) = &item.recorded {
            eprintln!("unreadable: {}: {error}", item.stored_key);
        }
    }
    let recorded = items.into_iter().map(|item| (item.key_now, item.recorded));
    match carry_over_all(&ledger, recorded, OffsetDateTime::now_utc()).await {
        Ok(done) => {
            for key in &done.unreadable {
                eprintln!(
                    "not carried over, an item folding into it is unreadable: {}",
                    key.as_str()
                );
            }
            println!(
                "{found} items under earlier keys; keys now: {} hold a decision carried over, \
                 {} a later one, {} left for an unreadable item",
                done.claimed,
                done.later_there,
                done.unreadable.len()
            );
            if done.unreadable.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("stopped by the ledger, run again: {error}");
            ExitCode::FAILURE
        }
    }
}
