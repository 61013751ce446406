//! The whole local stack: moto (SQS), a second moto (the DynamoDB ledger), idc-sim
//! (Identity Center), the work, dead-letter and outcome queues, the ledger table, and N
//! worker processes each fed by its own event source loop.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, QueueAttributeName, SendMessageBatchRequestEntry,
};
use idc_sim::{Knobs, PortfolioSeed, Seed, Simulator};
use serde_json::Value;

use crate::Error;
use crate::event_source::{EventSourceMapping, Poll};
use crate::moto::Moto;
use crate::proxy::CountingProxy;
use crate::worker::WorkerProcess;

/// More restarts than this means the worker cannot run at all (a bad setting, say).
const MAX_RESTARTS: u64 = 20;

pub struct Options {
    /// Worker processes running at once (Lambda's concurrency).
    pub workers: usize,
    pub knobs: Knobs,
    pub sim_seed: u64,
    pub seed: Seed,
    /// Service Catalog portfolios and their principals (listed at once).
    pub portfolios: Vec<PortfolioSeed>,
    /// Extra environment for the worker (SPEC §6 settings); queue URLs and endpoints
    /// are set by the stack.
    pub worker_env: Vec<(String, String)>,
    pub visibility_timeout_seconds: i32,
    pub max_receive_count: u32,
    pub function_timeout: Duration,
    /// Where worker logs go (one file per slot).
    pub log_dir: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            workers: 2,
            knobs: Knobs::default(),
            sim_seed: 1,
            seed: Seed::default(),
            portfolios: Vec::new(),
            worker_env: Vec::new(),
            // Longer than the function timeout, so a batch never reappears while a
            // live invocation still holds it (the template uses 6x).
            visibility_timeout_seconds: 30,
            max_receive_count: 5,
            // Above the worker's call reserve (record_step::call_reserve: 16 s with
            // the SQS bounds of `moto_sqs_env`), so it has time to work, and below the
            // visibility timeout.
            function_timeout: Duration::from_secs(24),
            log_dir: crate::workspace_root().join("target/local-stack"),
        }
    }
}

/// The settings that make a local run take seconds rather than minutes.
pub fn fast_worker_env() -> Vec<(String, String)> {
    [
        ("POLL_INITIAL_DELAY_SECONDS", "1"),
        ("POLL_MAX_DELAY_SECONDS", "2"),
        ("BACKOFF_BASE_SECONDS", "1"),
        ("BUSY_BACKOFF_MIN_SECONDS", "1"),
        ("MAX_ATTEMPTS", "10"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// SQS bounds for moto's SQS. The default attempt timeout (1 s) suits SQS, which
/// answers in milliseconds; moto's single Python process, shared with every other
/// process of a loaded machine, can take longer while it stores the message. The
/// worker would then count a stored send as failed and its record would run twice.
pub fn moto_sqs_env() -> Vec<(String, String)> {
    vec![(
        "SQS_ATTEMPT_TIMEOUT_MILLISECONDS".to_owned(),
        "2000".to_owned(),
    )]
}

/// The worker's pacing settings as a deployment would give them (README
/// "Pacing"), in real time: the processes that share the quotas (the event source's
/// maximum concurrency), Identity Center's documented rate and the simulator's mean
/// provisioning time. The simulator's own rate may be lower (as when another tool
/// takes part of it): the worker is not told.
pub fn pacing_env(knobs: &Knobs, workers: usize) -> Vec<(String, String)> {
    let documented_rate = Knobs::default().rate_per_second;
    let mean_provisioning = (knobs.provisioning_min_seconds + knobs.provisioning_max_seconds) / 2.0;
    vec![
        (
            "FUNCTION_CONCURRENCY".to_owned(),
            workers.max(1).to_string(),
        ),
        (
            "IDENTITY_CENTER_RATE_PER_SECOND".to_owned(),
            ((documented_rate * knobs.time_scale).round().max(1.0) as u64).to_string(),
        ),
        (
            "PROVISIONING_MILLISECONDS".to_owned(),
            ((mean_provisioning * 1000.0 / knobs.time_scale)
                .round()
                .max(10.0) as u64)
                .to_string(),
        ),
    ]
}

pub struct Queues {
    pub work: String,
    pub dead_letter: String,
    pub outcomes: String,
}

/// The ledger table's name in every local stack.
pub const LEDGER_TABLE: &str = "assignment-ledger";

/// A message read from the dead-letter queue.
#[derive(Debug, Clone)]
pub struct DeadLetterRecord {
    pub body: String,
    pub attributes: HashMap<String, String>,
}

impl DeadLetterRecord {
    /// The request's correlation id: the attribute, or (for a message the redrive
    /// policy moved, which has none) read from the body or its progress envelope.
    pub fn correlation_id(&self) -> Option<String> {
        self.attributes.get("CorrelationId").cloned().or_else(|| {
            let body: Value = serde_json::from_str(&self.body).ok()?;
            body.get("correlationId")
                .or_else(|| body.get("request")?.get("correlationId"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
    }

    /// Whether it is a grant's expiry step (its body is the worker's progress envelope of
    /// that step), not the grant's own dead letter.
    pub fn is_expiry(&self) -> bool {
        serde_json::from_str::<Value>(&self.body)
            .is_ok_and(|body| body["progress"]["purpose"] == "expiry")
    }
}

/// Every terminal record read so far.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    pub outcomes: Vec<Value>,
    pub dead_letters: Vec<DeadLetterRecord>,
}

struct Slot {
    process: RwLock<Arc<WorkerProcess>>,
    busy: AtomicBool,
}

impl Slot {
    /// The process this slot runs now.
    fn current(&self) -> Arc<WorkerProcess> {
        Arc::clone(&self.process.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn replace(&self, fresh: WorkerProcess) {
        *self.process.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(fresh);
    }
}

pub struct Stack {
    _moto: Moto,
    /// A second moto server for the ledger: one Python process serving both SQS and
    /// DynamoDB runs at 100% of a core and, not the worker, sets the pace.
    _moto_ledger: Moto,
    pub simulator: Arc<Simulator>,
    pub simulator_endpoint: String,
    pub sqs: Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub queues: Queues,
    pub proxy: CountingProxy,
    /// Counts the worker's DynamoDB calls, as `proxy` counts its SQS calls.
    pub ledger_proxy: CountingProxy,
    pub event_source: Arc<EventSourceMapping>,
    slots: Vec<Arc<Slot>>,
    stop: Arc<AtomicBool>,
    loops: Vec<tokio::task::JoinHandle<()>>,
    pub restarts: Arc<AtomicU64>,
    pub collected: tokio::sync::Mutex<Collected>,
    log_dir: PathBuf,
}

impl Stack {
    pub async fn start(options: Options) -> Result<Stack, Error> {
        let moto = Moto::start()?;
        let moto_ledger = Moto::start()?;
        let simulator = Simulator::new(options.knobs.clone(), options.sim_seed);
        simulator.with_model(|model| {
            model.seed(options.seed.clone());
            model.seed_portfolios(options.portfolios.clone());
        });
        let simulator_address = idc_sim::start(Arc::clone(&simulator), 0).await?;
        let simulator_endpoint = format!("http://{simulator_address}");
        let proxy = CountingProxy::start(&moto.endpoint).await?;
        let ledger_proxy = CountingProxy::start_one_at_a_time(&moto_ledger.endpoint).await?;

        let shared = moto.sdk_config().await;
        let sqs = Client::new(&shared);
        let dead_letter = create_queue(&sqs, "assignment-dlq", &[]).await?;
        let dlq_arn = queue_arn(&sqs, &dead_letter).await?;
        let redrive = format!(
            r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{}"}}"#,
            options.max_receive_count
        );
        let work = create_queue(
            &sqs,
            "assignment-work",
            &[(QueueAttributeName::RedrivePolicy, redrive)],
        )
        .await?;
        let work_arn = queue_arn(&sqs, &work).await?;
        let outcomes = create_queue(&sqs, "assignment-outcomes", &[]).await?;
        let dynamodb = aws_sdk_dynamodb::Client::new(&moto_ledger.sdk_config().await);
        crate::moto::create_ledger_table(&dynamodb, LEDGER_TABLE).await?;

        let mut env = vec![
            ("WORK_QUEUE_URL".to_owned(), work.clone()),
            ("DEAD_LETTER_QUEUE_URL".to_owned(), dead_letter.clone()),
            ("OUTCOME_QUEUE_URL".to_owned(), outcomes.clone()),
            ("LEDGER_TABLE".to_owned(), LEDGER_TABLE.to_owned()),
            ("AWS_ENDPOINT_URL_SQS".to_owned(), proxy.endpoint.clone()),
            (
                "AWS_ENDPOINT_URL_DYNAMODB".to_owned(),
                ledger_proxy.endpoint.clone(),
            ),
            (
                "AWS_ENDPOINT_URL_SSO_ADMIN".to_owned(),
                simulator_endpoint.clone(),
            ),
            (
                "AWS_ENDPOINT_URL_SERVICE_CATALOG".to_owned(),
                simulator_endpoint.clone(),
            ),
            ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID".to_owned(), "local".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "local".to_owned()),
            ("AWS_CONFIG_FILE".to_owned(), "/dev/null".to_owned()),
            (
                "AWS_SHARED_CREDENTIALS_FILE".to_owned(),
                "/dev/null".to_owned(),
            ),
            ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
            (
                "RUST_LOG".to_owned(),
                std::env::var("WORKER_LOG").unwrap_or_else(|_| "info".to_owned()),
            ),
        ];
        env.extend(pacing_env(&options.knobs, options.workers));
        env.extend(moto_sqs_env());
        env.extend(options.worker_env.iter().cloned());
        let env = Arc::new(env);

        let event_source = Arc::new(EventSourceMapping {
            sqs: sqs.clone(),
            queue_url: work.clone(),
            queue_arn: work_arn,
            visibility_timeout_seconds: options.visibility_timeout_seconds,
            function_timeout: options.function_timeout,
            counts: Default::default(),
        });
        std::fs::create_dir_all(&options.log_dir)?;
        let stop = Arc::new(AtomicBool::new(false));
        let restarts = Arc::new(AtomicU64::new(0));
        let mut slots = Vec::new();
        let mut loops = Vec::new();
        for index in 0..options.workers {
            let log = options.log_dir.join(format!("worker-{index}.log"));
            let _ = std::fs::remove_file(&log);
            let slot = Arc::new(Slot {
                process: RwLock::new(Arc::new(WorkerProcess::start(&env, &log).await?)),
                busy: AtomicBool::new(false),
            });
            slots.push(Arc::clone(&slot));
            loops.push(tokio::spawn(run_slot(
                slot,
                Arc::clone(&event_source),
                Arc::clone(&env),
                log,
                Arc::clone(&stop),
                Arc::clone(&restarts),
            )));
        }
        Ok(Stack {
            _moto: moto,
            _moto_ledger: moto_ledger,
            simulator,
            simulator_endpoint,
            sqs,
            dynamodb,
            queues: Queues {
                work,
                dead_letter,
                outcomes,
            },
            proxy,
            ledger_proxy,
            event_source,
            slots,
            stop,
            loops,
            restarts,
            collected: tokio::sync::Mutex::new(Collected::default()),
            log_dir: options.log_dir.clone(),
        })
    }

    /// Sends request bodies to the work queue, 10 per call.
    pub async fn send(&self, bodies: &[String]) -> Result<(), Error> {
        send_batch(&self.sqs, &self.queues.work, bodies).await
    }

    /// Sends dead letters back to the work queue, as a redrive
    /// (`start-message-move-task`) does once the cause is fixed.
    pub async fn redrive(&self, dead_letters: &[DeadLetterRecord]) -> Result<(), Error> {
        let bodies: Vec<String> = dead_letters.iter().map(|r| r.body.clone()).collect();
        send_batch(&self.sqs, &self.queues.work, &bodies).await
    }

    /// Reads the outcome and dead-letter queues until every id in `ids` has a terminal
    /// record, or `timeout` passes. Returns everything read so far (cumulative): the
    /// tally reports what is missing.
    pub async fn collect(&self, ids: &[String], timeout: Duration) -> Result<Collected, Error> {
        self.collect_until(timeout, |collected| {
            let finished = crate::tally::finished_ids(collected);
            ids.iter().all(|id| finished.contains(id.as_str()))
        })
        .await
    }

    /// Reads the outcome and dead-letter queues until at least `count` outcome events
    /// arrived (every request sends one, whatever its end).
    pub async fn collect_outcomes(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Collected, Error> {
        let collected = self
            .collect_until(timeout, |c| c.outcomes.len() >= count)
            .await?;
        if collected.outcomes.len() < count {
            return Err(format!(
                "{} of {count} outcomes after {timeout:?}",
                collected.outcomes.len()
            )
            .into());
        }
        Ok(collected)
    }

    async fn collect_until(
        &self,
        timeout: Duration,
        done: impl Fn(&Collected) -> bool,
    ) -> Result<Collected, Error> {
        let started = Instant::now();
        loop {
            let collected = {
                let mut collected = self.collected.lock().await;
                for record in drain(&self.sqs, &self.queues.outcomes).await? {
                    collected.outcomes.push(serde_json::from_str(&record.body)?);
                }
                collected
                    .dead_letters
                    .extend(drain(&self.sqs, &self.queues.dead_letter).await?);
                collected.clone()
            };
            if done(&collected) || started.elapsed() > timeout {
                return Ok(collected);
            }
            let restarts = self.restarts.load(Ordering::Relaxed);
            if restarts > MAX_RESTARTS {
                return Err(format!(
                    "worker processes exited {restarts} times; see {}",
                    self.log_dir.display()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until no worker holds a batch (`timeout` at most): an invocation writes
    /// its metrics after its last send, so they are complete only once it has answered.
    pub async fn wait_idle(&self, timeout: Duration) -> Result<(), Error> {
        let started = Instant::now();
        while self
            .slots
            .iter()
            .any(|slot| slot.busy.load(Ordering::SeqCst))
        {
            if started.elapsed() > timeout {
                return Err(format!("workers still busy after {timeout:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Where the worker processes' logs (and their EMF metrics) are written.
    pub fn log_dir(&self) -> &std::path::Path {
        &self.log_dir
    }

    /// Forgets what was collected (between phases of a scenario).
    pub async fn forget_collected(&self) {
        *self.collected.lock().await = Collected::default();
    }

    /// Kills worker `index` while an invocation holds a batch (waits up to 20 s for one);
    /// its loop starts a fresh process, as Lambda would.
    pub async fn kill_worker_mid_batch(&self, index: usize) -> bool {
        let Some(slot) = self.slots.get(index) else {
            return false;
        };
        let started = Instant::now();
        while !slot.busy.load(Ordering::SeqCst) {
            if started.elapsed() > Duration::from_secs(20) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        slot.current().kill();
        true
    }

    pub async fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in &self.loops {
            task.abort();
        }
        for slot in &self.slots {
            slot.current().kill();
        }
    }
}

async fn run_slot(
    slot: Arc<Slot>,
    event_source: Arc<EventSourceMapping>,
    env: Arc<Vec<(String, String)>>,
    log: PathBuf,
    stop: Arc<AtomicBool>,
    restarts: Arc<AtomicU64>,
) {
    while !stop.load(Ordering::Relaxed) {
        let process = slot.current();
        if process.exited().is_some() {
            // A new execution environment, as Lambda starts after a crash.
            match WorkerProcess::start(&env, &log).await {
                Ok(fresh) => {
                    slot.replace(fresh);
                    restarts.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
            continue;
        }
        match event_source.poll(&process, &slot.busy).await {
            Ok(Poll::Empty | Poll::Invoked { .. }) => {}
            // Lambda ends an execution environment whose invocation timed out; a
            // killed one is already gone. Either way the loop starts a fresh one.
            Ok(Poll::NoAnswer { .. }) => process.kill(),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn create_queue(
    sqs: &Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> Result<String, Error> {
    let mut request = sqs.create_queue().queue_name(name);
    for (name, value) in attributes {
        request = request.attributes(name.clone(), value);
    }
    Ok(request
        .send()
        .await?
        .queue_url()
        .ok_or("no queue url")?
        .to_owned())
}

async fn queue_arn(sqs: &Client, url: &str) -> Result<String, Error> {
    let answer = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?;
    Ok(answer
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .ok_or("no queue arn")?
        .clone())
}

async fn send_batch(sqs: &Client, queue: &str, bodies: &[String]) -> Result<(), Error> {
    for chunk in bodies.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let answer = sqs
            .send_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await?;
        if !answer.failed().is_empty() {
            return Err(format!(
                "SQS refused {} requests: {:?}",
                answer.failed().len(),
                answer.failed()
            )
            .into());
        }
    }
    Ok(())
}

/// Reads and deletes every message visible in `queue` now (10 per call each way).
pub async fn drain(sqs: &Client, queue: &str) -> Result<Vec<DeadLetterRecord>, Error> {
    let mut all = Vec::new();
    loop {
        let answer = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await?;
        let messages = answer.messages();
        if messages.is_empty() {
            return Ok(all);
        }
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        sqs.delete_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await?;
        all.extend(messages.iter().map(|message| {
            DeadLetterRecord {
                body: message.body().unwrap_or_default().to_owned(),
                attributes: message
                    .message_attributes()
                    .map(|a| {
                        a.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.string_value()?.to_owned())))
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        }));
    }
}
