//! `scripts/bench`: 1,200 requests (600 grants, 600 revokes) through the simulated
//! Identity Center at its default quotas and provisioning time, time-scaled, with the
//! worker at its production defaults. Appends the figures to BENCHMARKS.md.
//!
//! `bench [--scale X] [--workers N] [--requests N] [--sim-rate R] [--set KEY=VALUE]...`
//! `--set` overrides a worker setting (e.g. `--set POLL_INITIAL_DELAY_SECONDS=2`).
//! `--sim-rate` sets the simulator's Identity Center rate (calls per simulated second,
//! default 20) without telling the worker: another tool taking the rest of it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use idc_sim::Knobs;
use local_stack::Error;
use local_stack::emf::EmfSummary;
use local_stack::requests::{self, assignment, request};
use local_stack::stack::{Options, Stack};
use local_stack::tally::{Intent, Tally, wrong_effects};

/// The worker's defaults (SPEC §6), in simulated seconds.
const DEFAULTS: [(&str, f64); 4] = [
    ("POLL_INITIAL_DELAY_SECONDS", 3.0),
    ("POLL_MAX_DELAY_SECONDS", 60.0),
    ("BACKOFF_BASE_SECONDS", 2.0),
    ("BUSY_BACKOFF_MIN_SECONDS", 15.0),
];

struct Args {
    scale: f64,
    workers: usize,
    requests: usize,
    sim_rate: Option<f64>,
    settings: Vec<(String, String)>,
}

fn args() -> Result<Args, Error> {
    let mut args = Args {
        scale: 3.0,
        workers: 3,
        requests: 1200,
        sim_rate: None,
        settings: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--scale" => args.scale = value.parse()?,
            "--workers" => args.workers = value.parse()?,
            "--requests" => args.requests = value.parse()?,
            "--sim-rate" => args.sim_rate = Some(value.parse()?),
            "--set" => {
                let (key, value) = value.split_once('=').ok_or("--set takes KEY=VALUE")?;
                args.settings.push((key.to_owned(), value.to_owned()));
            }
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = args()?;
    // Worker delays are real seconds; divided by the scale they keep their simulated length.
    let mut worker_env: Vec<(String, String)> = DEFAULTS
        .iter()
        .map(|(key, seconds)| {
            (
                (*key).to_owned(),
                ((seconds / args.scale).round().max(1.0) as u64).to_string(),
            )
        })
        .collect();
    worker_env.retain(|(key, _)| !args.settings.iter().any(|(k, _)| k == key));
    worker_env.extend(args.settings.iter().cloned());

    let half = args.requests / 2;
    let grants: Vec<_> = (0..half).map(|i| assignment(i, i % 8, i)).collect();
    let revokes: Vec<_> = (0..args.requests - half)
        .map(|i| assignment(5000 + i, i % 8, i))
        .collect();
    let mut seed = requests::seed(8, half.max(args.requests - half));
    seed.assignments = revokes.clone();
    let defaults = Knobs::default();
    let knobs = Knobs {
        time_scale: args.scale,
        rate_per_second: args.sim_rate.unwrap_or(defaults.rate_per_second),
        ..defaults
    };
    // The stack gives the worker its pacing settings (stack::pacing_env) and SQS bounds
    // (stack::moto_sqs_env); shown in the report with the rest.
    let mut settings_shown = local_stack::stack::pacing_env(&knobs, args.workers);
    settings_shown.extend(local_stack::stack::moto_sqs_env());
    settings_shown.retain(|(key, _)| !worker_env.iter().any(|(k, _)| k == key));
    settings_shown.extend(worker_env.iter().cloned());
    // The EMF figures are read from every worker log in this directory: a run with
    // fewer processes than the last must not read the last run's logs too.
    let log_dir = local_stack::workspace_root().join("target/local-stack/bench");
    if log_dir.exists() {
        std::fs::remove_dir_all(&log_dir)?;
    }
    let stack = Stack::start(Options {
        workers: args.workers,
        knobs: knobs.clone(),
        seed,
        worker_env: worker_env.clone(),
        log_dir,
        ..Options::default()
    })
    .await?;

    let mut intents = Vec::new();
    let mut bodies = Vec::new();
    for (create, targets, prefix) in [(true, &grants, "GRANT"), (false, &revokes, "REVOKE")] {
        for (i, target) in targets.iter().enumerate() {
            let id = format!("{prefix}-{i:05}");
            bodies.push(request(create, target, &id));
            intents.push(Intent {
                correlation_id: id,
                assignment: target.clone(),
                create,
            });
        }
    }
    // Interleave grants and revokes, as real traffic would.
    let order: Vec<usize> = (0..half)
        .flat_map(|i| [i, half + i])
        .chain(2 * half..bodies.len())
        .collect();
    let bodies: Vec<String> = order.iter().map(|&i| bodies[i].clone()).collect();
    let ids: Vec<String> = intents.iter().map(|i| i.correlation_id.clone()).collect();

    let load_before = load_average();
    let started_sim = stack.simulator.now();
    let started = Instant::now();
    stack.send(&bodies).await?;
    let collected = stack.collect(&ids, Duration::from_secs(3600)).await?;
    let wall = started.elapsed();
    let load_after = load_average();
    let simulated = stack.simulator.now() - started_sim;

    let mut tally = Tally::of(&ids, &collected);
    let finals = {
        let now = stack.simulator.now();
        stack.simulator.with_model(|m| m.assignments(now))
    };
    tally.wrong_effects = wrong_effects(&intents, &revokes, &collected, &finals);
    let counters = stack.simulator.with_model(|m| m.counters.clone());
    // The proxies count the worker's SQS and DynamoDB calls, keyed by X-Amz-Target.
    let worker_sqs = stack.proxy.counts();
    let ledger_calls = stack.ledger_proxy.counts();
    let ledger_total: u64 = ledger_calls.values().sum();
    let source = &stack.event_source.counts;
    let source_calls =
        source.receives.load(Ordering::Relaxed) + source.deletes.load(Ordering::Relaxed);
    let n = ids.len() as f64;
    let sso_calls: u64 = counters.calls.values().sum();
    let worker_sqs_calls: u64 = worker_sqs.values().sum();
    // Lower bounds from the quotas: every grant holds one of 15 outstanding slots for its
    // provisioning time (mean of the uniform draw), and every request needs at least a
    // submit and one status call under the shared 20-per-second rate.
    let mean_provisioning = (knobs.provisioning_min_seconds + knobs.provisioning_max_seconds) / 2.0;
    let outstanding_bound = half as f64 * mean_provisioning / knobs.max_outstanding_creates as f64;
    let rate_bound = 2.0 * n / knobs.rate_per_second;
    let minimum = outstanding_bound.max(rate_bound);

    let mut report = String::new();
    writeln!(
        report,
        "### {} requests, {} worker processes, time scale {}{}",
        ids.len(),
        args.workers,
        args.scale,
        args.sim_rate.map_or_else(String::new, |rate| format!(
            ", Identity Center rate {rate}/s (another tool takes the rest)"
        ))
    )?;
    writeln!(report)?;
    writeln!(
        report,
        "Worker settings (real seconds): {}",
        settings_shown
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    if let Some(binary) = std::env::var_os("WORKER_BIN") {
        // A run of another build (an earlier commit's, say) for comparison.
        writeln!(report)?;
        writeln!(report, "Worker binary: `{}` (WORKER_BIN)", binary.display())?;
    }
    writeln!(report)?;
    writeln!(report, "| figure | value |")?;
    writeln!(report, "|---|---|")?;
    writeln!(
        report,
        "| machine | {}; load average (1 min) before / after the run: {load_before} / {load_after} |",
        machine()
    )?;
    writeln!(report, "| outcomes | {tally} |")?;
    writeln!(
        report,
        "| simulated time | {simulated:.1} s ({:.1} s wall) |",
        wall.as_secs_f64()
    )?;
    writeln!(
        report,
        "| minimum the quotas allow | {minimum:.0} s (15 outstanding grants: {outstanding_bound:.0} s; {} calls/s: {rate_bound:.0} s) |",
        knobs.rate_per_second
    )?;
    writeln!(
        report,
        "| simulated time / minimum | {:.3} |",
        simulated / minimum
    )?;
    writeln!(
        report,
        "| Identity Center calls per request | {:.2} ({sso_calls} calls: {:?}) |",
        sso_calls as f64 / n,
        counters.calls
    )?;
    writeln!(
        report,
        "| DynamoDB (ledger) calls per request | {:.2} ({ledger_total} calls: {ledger_calls:?}) |",
        ledger_total as f64 / n
    )?;
    writeln!(
        report,
        "| SQS calls per request | {:.2} (worker {:.2}: {:?}; event source {:.2}: {} receives, {} deletes) |",
        (worker_sqs_calls + source_calls) as f64 / n,
        worker_sqs_calls as f64 / n,
        worker_sqs,
        source_calls as f64 / n,
        source.receives.load(Ordering::Relaxed),
        source.deletes.load(Ordering::Relaxed)
    )?;
    writeln!(
        report,
        "| invocations | {} ({} records, {:.1} per invocation) |",
        source.invocations.load(Ordering::Relaxed),
        source.records.load(Ordering::Relaxed),
        source.records.load(Ordering::Relaxed) as f64
            / source.invocations.load(Ordering::Relaxed).max(1) as f64
    )?;
    writeln!(
        report,
        "| throttled: rate / outstanding | {} / {} ({:.1}% of Identity Center calls) |",
        counters.throttled_rate,
        counters.throttled_busy,
        100.0 * (counters.throttled_rate + counters.throttled_busy) as f64
            / sso_calls.max(1) as f64
    )?;
    writeln!(report, "| conflicts | {} |", counters.conflicts)?;
    writeln!(
        report,
        "| most grants outstanding at once | {} |",
        counters.max_outstanding_creates_seen
    )?;
    writeln!(report, "| dead-lettered | {} |", tally.dead_lettered)?;

    // The workers' own metrics, as CloudWatch would read them, against this run's counts.
    stack.wait_idle(Duration::from_secs(60)).await?;
    let emf = EmfSummary::from_logs(stack.log_dir())?;
    // Every terminal record sent until now, repeats after a failed send included.
    let collected = stack.collect(&ids, Duration::ZERO).await?;
    let quantile = |q| {
        emf.time_to_outcome_quantile(q)
            .map_or_else(|| "-".to_owned(), |ms| format!("{:.0} ms", ms))
    };
    writeln!(
        report,
        "| time to outcome (EMF), p50 / p99 | {} / {} |",
        quantile(0.5),
        quantile(0.99)
    )?;
    let answers = [
        "Succeeded",
        "ThrottledRate",
        "ThrottledBusy",
        "Conflicts",
        "ServerErrors",
        "Timeouts",
        "ConnectionErrors",
        "OtherErrors",
    ];
    for (api, metrics) in &emf.calls {
        let by_answer: Vec<String> = answers
            .iter()
            .filter(|answer| metrics.get(**answer).copied().unwrap_or(0) > 0)
            .map(|answer| format!("{answer} {}", metrics[*answer]))
            .collect();
        // Steps the pacer stored again before their call: not calls.
        let deferred = match metrics.get("Deferred").copied().unwrap_or(0) {
            0 => String::new(),
            n => format!("; {n} steps deferred by the pacer"),
        };
        writeln!(
            report,
            "| {api} calls (EMF) | {} ({}){deferred} |",
            metrics.get("Calls").copied().unwrap_or(0),
            by_answer.join(", ")
        )?;
    }
    let mut proxied = worker_sqs.clone();
    proxied.extend(ledger_calls.clone());
    // A build from before the metrics (WORKER_BIN) prints none: nothing to compare.
    let earlier_build = std::env::var_os("WORKER_BIN").is_some() && emf.documents == 0;
    let disagreements = if earlier_build {
        Vec::new()
    } else {
        emf_disagreements(&emf, &collected, &counters, &proxied)
    };
    writeln!(
        report,
        "| EMF agrees with the run's own counts | {} |",
        if earlier_build {
            "no EMF documents (a build from before the metrics)".to_owned()
        } else if disagreements.is_empty() {
            format!("yes ({} documents)", emf.documents)
        } else {
            format!("NO: {}", disagreements.join("; "))
        }
    )?;
    writeln!(report)?;
    print!("{report}");

    let path = local_stack::workspace_root().join("BENCHMARKS.md");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    if file.metadata()?.len() == 0 {
        writeln!(
            file,
            "# Benchmarks\n\nWritten by `scripts/bench` (the local stack: moto SQS, idc-sim at its default quotas and \
             provisioning time of 1 to 6 s, the release worker binary). Each run appends a section.\n"
        )?;
    }
    file.write_all(report.as_bytes())?;
    stack.shutdown().await;
    if tally.lost > 0 || tally.dead_lettered > 0 || tally.wrong_effects > 0 {
        return Err(format!("benchmark run not clean: {tally}").into());
    }
    if !disagreements.is_empty() {
        return Err(
            format!("the worker's metrics disagree with the run: {disagreements:?}").into(),
        );
    }
    Ok(())
}

/// The 1-minute load average (`/proc/loadavg`): the machine may be shared.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "-".to_owned())
}

/// Cores and CPU model, from `/proc/cpuinfo`.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cores} cores, {model}")
}

/// Where the EMF figures differ from what the simulator, the proxy and the outcome
/// queue counted.
fn emf_disagreements(
    emf: &EmfSummary,
    collected: &local_stack::stack::Collected,
    counters: &idc_sim::Counters,
    proxy: &BTreeMap<String, u64>,
) -> Vec<String> {
    let mut found = Vec::new();
    let mut check = |what: String, emf: u64, counted: u64| {
        if emf != counted {
            found.push(format!("{what}: EMF {emf}, counted {counted}"));
        }
    };
    check(
        "terminal outcomes".to_owned(),
        emf.requests.values().sum(),
        collected.outcomes.len() as u64,
    );
    let mut throttled = 0;
    for (api, calls) in &counters.calls {
        check(
            format!("{api} calls"),
            emf.call_metric(api, "Calls"),
            *calls,
        );
        throttled += emf.call_metric(api, "Throttled");
    }
    check(
        "Identity Center throttles".to_owned(),
        throttled,
        counters.throttled_rate + counters.throttled_busy,
    );
    // The ledger's client makes one attempt a call; its retries go through the queue.
    for (api, target) in [
        ("UpdateItem", "DynamoDB_20120810.UpdateItem"),
        ("GetItem", "DynamoDB_20120810.GetItem"),
    ] {
        check(
            format!("{api} calls"),
            emf.call_metric(api, "Calls"),
            proxy.get(target).copied().unwrap_or(0),
        );
    }
    // The SQS client keeps the SDK's own retries: the proxy sees every attempt, the
    // metrics every call, so there may be more attempts than calls, never fewer.
    let sends = emf.call_metric("SendMessageBatch", "Calls");
    let attempts = proxy
        .get("AmazonSQS.SendMessageBatch")
        .copied()
        .unwrap_or(0);
    if sends > attempts || (sends == 0) != (attempts == 0) {
        found.push(format!(
            "SendMessageBatch: EMF {sends} calls, proxy {attempts} attempts"
        ));
    }
    found
}
