//! `scripts/run-local`: the worker's release binary run as Lambda runs it, against
//! moto's SQS and the simulated Identity Center, on the requests in events/ plus a few
//! that show polling, a conflict retried and a dead letter. Prints every outcome, what
//! the simulated Identity Center saw, and the dead-letter queue.

use std::path::Path;
use std::time::Duration;

use idc_sim::Knobs;
use local_stack::Error;
use local_stack::requests::{self, assignment, request};
use local_stack::stack::{Options, Stack, fast_worker_env};
use serde_json::Value;

/// What events/ refers to, so that its requests can succeed in the simulator.
const EVENTS_PERMISSION_SETS: [&str; 2] = [
    "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b",
    "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-9f8e7d6c5b4a3f2e",
];
const EVENTS_PRINCIPALS: [&str; 2] = [
    "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10",
    "9067a1b2c3-7d1e2f3a-4b5c-4d6e-8f70-0a1b2c3d4e5f",
];
const MANAGEMENT_ACCOUNT: usize = 999;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut seed = requests::seed(2, 10);
    seed.permission_sets
        .extend(EVENTS_PERMISSION_SETS.map(str::to_owned));
    seed.principals.extend(EVENTS_PRINCIPALS.map(str::to_owned));
    let knobs = Knobs {
        // Real time, as AWS: operations take 1 to 6 s, so polling shows.
        provisioning_min_seconds: 2.0,
        provisioning_max_seconds: 6.0,
        denied_accounts: vec![requests::account(MANAGEMENT_ACCOUNT)],
        ..Knobs::default()
    };
    let stack = Stack::start(Options {
        workers: 2,
        knobs,
        seed,
        worker_env: fast_worker_env(),
        ..Options::default()
    })
    .await?;

    let mut bodies = event_bodies(&local_stack::workspace_root().join("events"))?;
    bodies.extend([
        // Two grants on one account and permission set: the second meets a conflict.
        request(true, &assignment(7, 0, 1), "DEMO-CONFLICT-A"),
        request(true, &assignment(7, 0, 2), "DEMO-CONFLICT-B"),
        // A user the directory does not know: FAILED, seen only by polling.
        request(true, &assignment(8, 1, 4242), "DEMO-UNKNOWN-USER"),
        // The management account, where the worker may not act: AccessDenied.
        request(
            true,
            &assignment(MANAGEMENT_ACCOUNT, 1, 3),
            "DEMO-MANAGEMENT",
        ),
    ]);
    println!(
        "local stack: moto SQS, simulated Identity Center at {}, 2 worker processes",
        stack.simulator_endpoint
    );
    println!(
        "sent {} requests ({} from events/)\n",
        bodies.len(),
        bodies.len() - 4
    );
    stack.send(&bodies).await?;
    let collected = stack
        .collect_outcomes(bodies.len(), Duration::from_secs(300))
        .await?;

    println!(
        "{:<18} {:<32} {:<18} {:>5} {:>8}  detail",
        "request", "action", "outcome", "polls", "attempts"
    );
    for event in &collected.outcomes {
        let text = |key: &str| event[key].as_str().unwrap_or("-").to_owned();
        let detail = match event["outcome"].as_str() {
            Some("dead-lettered") => format!(
                "{} {}: {}",
                text("errorClass"),
                text("errorCode"),
                text("errorMessage")
            ),
            _ => format!("operation {}", text("operationRequestId")),
        };
        println!(
            "{:<18} {:<32} {:<18} {:>5} {:>8}  {}",
            text("correlationId"),
            text("action"),
            text("outcome"),
            event["polls"],
            event["attempts"],
            shorten(&detail, 100)
        );
    }
    let counters = stack.simulator.with_model(|model| model.counters.clone());
    println!(
        "\nIdentity Center saw: {} calls {:?}; {} conflicts, {} throttled, {} access denied",
        counters.calls.values().sum::<u64>(),
        counters.calls,
        counters.conflicts,
        counters.throttled_rate + counters.throttled_busy,
        counters.access_denied
    );
    println!(
        "\ndead-letter queue: {} messages",
        collected.dead_letters.len()
    );
    for record in &collected.dead_letters {
        let attribute = |name: &str| {
            record
                .attributes
                .get(name)
                .map_or("-", String::as_str)
                .to_owned()
        };
        println!(
            "  {:<16} {:<26} {:<18} {}",
            attribute("ErrorClass"),
            attribute("ErrorCode"),
            attribute("CorrelationId"),
            shorten(&record.body, 70)
        );
    }
    println!(
        "\nworker logs: {}",
        local_stack::workspace_root()
            .join("target/local-stack")
            .display()
    );
    stack.shutdown().await;
    Ok(())
}

fn event_bodies(dir: &Path) -> Result<Vec<String>, Error> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.retain(|path| path.extension().is_some_and(|ext| ext == "json"));
    files.sort();
    let mut bodies = Vec::new();
    for file in files {
        let event: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
        for record in event["Records"].as_array().into_iter().flatten() {
            if let Some(body) = record["body"].as_str() {
                bodies.push(body.to_owned());
            }
        }
    }
    Ok(bodies)
}

fn shorten(text: &str, max: usize) -> String {
    let text = text.replace('\n', " ");
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}
