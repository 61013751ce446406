//! The Lambda Runtime API (2018-06-01) a function process talks to: it long-polls
//! `invocation/next` for an event and posts the answer back.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};

/// How an invocation ended.
#[derive(Debug)]
pub enum InvokeError {
    /// The function reported an error (its body).
    Function(String),
    /// No answer within the timeout, or the process went away.
    NoAnswer,
}

struct Pending {
    id: String,
    deadline: SystemTime,
    event: String,
    reply: oneshot::Sender<Result<String, InvokeError>>,
}

#[derive(Default)]
struct Shared {
    /// Set once the process is gone: no invocation can be answered any more.
    closed: std::sync::atomic::AtomicBool,
    queue: Mutex<VecDeque<Pending>>,
    arrived: Notify,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Result<String, InvokeError>>>>,
    init_error: Mutex<Option<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct RuntimeApi {
    pub address: SocketAddr,
    shared: Arc<Shared>,
    counter: AtomicU64,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start() -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Ok(RuntimeApi {
            address,
            shared,
            counter: AtomicU64::new(0),
            server,
        })
    }

    /// Hands `event` to the function and waits for its answer.
    pub async fn invoke(&self, event: String, timeout: Duration) -> Result<String, InvokeError> {
        let id = format!(
            "invocation-{}",
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        let (reply, answer) = oneshot::channel();
        lock(&self.shared.queue).push_back(Pending {
            id,
            deadline: SystemTime::now() + timeout,
            event,
            reply,
        });
        if self.shared.closed.load(Ordering::SeqCst) {
            // The process died before or while this was queued: nobody will answer.
            self.abandon_in_flight();
        }
        self.shared.arrived.notify_one();
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(result)) => result,
            _ => Err(InvokeError::NoAnswer),
        }
    }

    /// Fails every invocation in flight or queued, now and from now on (the process
    /// is gone).
    pub fn abandon_in_flight(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        lock(&self.shared.in_flight).clear();
        lock(&self.shared.queue).clear();
    }

    pub fn init_error(&self) -> Option<String> {
        lock(&self.shared.init_error).clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, std::convert::Infallible>(route(&shared, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(body.into()))
        .unwrap_or_default()
}

async fn route(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).into_owned();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        (Method::GET, ["2018-06-01", "runtime", "invocation", "next"]) => {
            let pending = loop {
                let notified = shared.arrived.notified();
                if let Some(pending) = lock(&shared.queue).pop_front() {
                    break pending;
                }
                notified.await;
            };
            let deadline_ms = pending
                .deadline
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default();
            lock(&shared.in_flight).insert(pending.id.clone(), pending.reply);
            Response::builder()
                .status(StatusCode::OK)
                .header("lambda-runtime-aws-request-id", &pending.id)
                .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
                .header(
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:assignment-worker",
                )
                .header(
                    "lambda-runtime-trace-id",
                    "Root=1-00000000-000000000000000000000000",
                )
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(pending.event)))
                .unwrap_or_default()
        }
        (
            Method::POST,
            [
                "2018-06-01",
                "runtime",
                "invocation",
                id,
                kind @ ("response" | "error"),
            ],
        ) => {
            if let Some(reply) = lock(&shared.in_flight).remove(*id) {
                let _ = reply.send(if *kind == "response" {
                    Ok(text)
                } else {
                    Err(InvokeError::Function(text))
                });
            }
            respond(StatusCode::ACCEPTED, "")
        }
        (Method::POST, ["2018-06-01", "runtime", "init", "error"]) => {
            *lock(&shared.init_error) = Some(text);
            respond(StatusCode::ACCEPTED, "")
        }
        _ => respond(StatusCode::NOT_FOUND, format!("no route {path}")),
    }
}
