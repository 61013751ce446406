//! A pass-through HTTP proxy that counts the SQS API calls made through it, by
//! `X-Amz-Target` (`AmazonSQS.SendMessageBatch`, ...): how the benchmark counts the
//! worker's own SQS calls.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

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
    server: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    pub async fn start(upstream: &str) -> std::io::Result<CountingProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let counts = Arc::new(Mutex::new(BTreeMap::new()));
        let upstream: Uri = upstream.parse().map_err(std::io::Error::other)?;
        let client: Client<HttpConnector, Incoming> =
            Client::builder(TokioExecutor::new()).build_http();
        let shared = Arc::clone(&counts);
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (client, counts, upstream) =
                    (client.clone(), Arc::clone(&shared), upstream.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (client, counts, upstream) =
                            (client.clone(), Arc::clone(&counts), upstream.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                forward(&client, &counts, &upstream, request).await,
                            )
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
            server,
        })
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

async fn forward(
    client: &Client<HttpConnector, Incoming>,
    counts: &Mutex<BTreeMap<String, u64>>,
    upstream: &Uri,
    mut request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_owned();
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
