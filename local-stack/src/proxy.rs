//! A pass-through HTTP proxy that counts the SQS API calls made through it, by
//! `X-Amz-Target` (`AmazonSQS.SendMessageBatch`, ...): how the benchmark counts the
//! worker's own SQS calls. It can also hold answers back: a slow SQS, for tests.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

pub struct CountingProxy {
    pub endpoint: String,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    delays: Arc<Mutex<Delays>>,
    server: tokio::task::JoinHandle<()>,
}

/// How long the proxy holds answers back, after upstream has answered (so the call
/// took effect, and the caller may not learn it in time).
#[derive(Debug, Default)]
struct Delays {
    /// Only calls whose `X-Amz-Target` starts with this wait.
    target_prefix: String,
    /// For the next calls, one each, in order.
    next: VecDeque<Duration>,
    /// For every call after those.
    otherwise: Duration,
}

impl CountingProxy {
    pub async fn start(upstream: &str) -> std::io::Result<CountingProxy> {
        Self::start_with(upstream, None).await
    }

    /// Forwards one call at a time. DynamoDB writes an item atomically; moto's server
    /// does not (a concurrent read can see an item its creator has not finished), so
    /// the ledger's moto is reached through this, as DynamoDB would answer.
    pub async fn start_one_at_a_time(upstream: &str) -> std::io::Result<CountingProxy> {
        Self::start_with(upstream, Some(Arc::new(tokio::sync::Semaphore::new(1)))).await
    }

    async fn start_with(
        upstream: &str,
        serial: Option<Arc<tokio::sync::Semaphore>>,
    ) -> std::io::Result<CountingProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let counts = Arc::new(Mutex::new(BTreeMap::new()));
        let delays = Arc::new(Mutex::new(Delays::default()));
        let upstream: Uri = upstream.parse().map_err(std::io::Error::other)?;
        let client: Client<HttpConnector, Incoming> =
            Client::builder(TokioExecutor::new()).build_http();
        let shared = Arc::clone(&counts);
        let shared_delays = Arc::clone(&delays);
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (client, counts, delays, upstream, serial) = (
                    client.clone(),
                    Arc::clone(&shared),
                    Arc::clone(&shared_delays),
                    upstream.clone(),
                    serial.clone(),
                );
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (client, counts, delays, upstream, serial) = (
                            client.clone(),
                            Arc::clone(&counts),
                            Arc::clone(&delays),
                            upstream.clone(),
                            serial.clone(),
                        );
                        async move {
                            let target = target(&request);
                            let permit = match &serial {
                                Some(serial) => serial.acquire().await.ok(),
                                None => None,
                            };
                            let answer = forward(&client, &counts, &upstream, request).await;
                            drop(permit);
                            let delay = {
                                let mut delays =
                                    delays.lock().unwrap_or_else(PoisonError::into_inner);
                                if target.starts_with(&delays.target_prefix) {
                                    let otherwise = delays.otherwise;
                                    delays.next.pop_front().unwrap_or(otherwise)
                                } else {
                                    Duration::ZERO
                                }
                            };
                            tokio::time::sleep(delay).await;
                            Ok::<_, std::convert::Infallible>(answer)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(CountingProxy {
            endpoint,
            counts,
            delays,
            server,
        })
    }

    /// Holds the answers to the next calls whose `X-Amz-Target` starts with
    /// `target_prefix` (`AmazonSQS.`, say) back by `next`, one each, and every later
    /// answer to such calls by `otherwise`. The calls reach upstream at once: only their
    /// answers wait.
    pub fn delay_answers(
        &self,
        target_prefix: &str,
        next: impl IntoIterator<Item = Duration>,
        otherwise: Duration,
    ) {
        let mut delays = self.delays.lock().unwrap_or_else(PoisonError::into_inner);
        delays.target_prefix = target_prefix.to_owned();
        delays.next = next.into_iter().collect();
        delays.otherwise = otherwise;
    }

    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn target(request: &Request<Incoming>) -> String {
    request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_owned()
}

async fn forward(
    client: &Client<HttpConnector, Incoming>,
    counts: &Mutex<BTreeMap<String, u64>>,
    upstream: &Uri,
    mut request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let target = target(&request);
    *counts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(target)
        .or_default() += 1;
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    match format!("{}{}", upstream.to_string().trim_end_matches('/'), path).parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Full::default())
                .unwrap_or_default();
        }
    }
    match client.request(request).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Response::from_parts(parts, Full::new(bytes))
        }
        Err(_) => Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Full::default())
            .unwrap_or_default(),
    }
}
