//! One function process: the real `assignment-worker` binary with its own Runtime API.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::Error;
use crate::runtime_api::{InvokeError, RuntimeApi};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The release binary, in `CARGO_TARGET_DIR` when that is set (as cargo reads it: a
/// relative one from the workspace, where the scripts run cargo); `WORKER_BIN`
/// overrides (scripts/test points it at the debug build).
pub fn binary() -> PathBuf {
    std::env::var_os("WORKER_BIN").map_or_else(
        || {
            let root = crate::workspace_root();
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .filter(|dir| !dir.is_empty())
                .map_or_else(|| root.join("target"), |dir| root.join(dir));
            target.join("release/assignment-worker")
        },
        PathBuf::from,
    )
}

pub struct WorkerProcess {
    api: Arc<RuntimeApi>,
    kill: Mutex<Option<oneshot::Sender<()>>>,
    exit: Arc<Mutex<Option<String>>>,
}

impl WorkerProcess {
    /// Starts the binary with the Lambda environment plus `env`; its JSON logs go to
    /// `log` (appended).
    pub async fn start(
        env: &[(String, String)],
        log: &std::path::Path,
    ) -> Result<WorkerProcess, Error> {
        let binary = binary();
        if !binary.exists() {
            return Err(format!(
                "{} not found: build it with `cargo build --release --bin assignment-worker`, \
                 or set WORKER_BIN",
                binary.display()
            )
            .into());
        }
        let api = Arc::new(RuntimeApi::start().await?);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut child: Child = Command::new(&binary)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "assignment-worker")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let (kill, killed) = oneshot::channel::<()>();
        let exit = Arc::new(Mutex::new(None));
        // Watches the process: when it exits, for whatever reason, its in-flight
        // invocation fails at once, as Lambda's does.
        let (watched_api, watched_exit) = (Arc::clone(&api), Arc::clone(&exit));
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = killed => { let _ = child.kill().await; child.wait().await }
            };
            let reason = match status {
                Ok(status) => format!("exited with {status}"),
                Err(e) => format!("lost: {e}"),
            };
            let init = watched_api
                .init_error()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            *lock(&watched_exit) = Some(format!("{reason}{init}"));
            watched_api.abandon_in_flight();
        });
        Ok(WorkerProcess {
            api,
            kill: Mutex::new(Some(kill)),
            exit,
        })
    }

    pub async fn invoke(&self, event: String, timeout: Duration) -> Result<String, InvokeError> {
        self.api.invoke(event, timeout).await
    }

    /// Kills the process whatever it is doing, as when an execution environment
    /// crashes or is recycled; its in-flight batch gets no answer.
    pub fn kill(&self) {
        if let Some(kill) = lock(&self.kill).take() {
            let _ = kill.send(());
        }
    }

    /// `Some(reason)` once the process has exited (with any init error it reported).
    pub fn exited(&self) -> Option<String> {
        lock(&self.exit).clone()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
