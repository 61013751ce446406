//! The simulator over HTTP: the SSO Admin JSON protocol (awsJson1_1, `X-Amz-Target:
//! SWBExternalService.<Operation>`) and the Service Catalog one (awsJson1_1,
//! `X-Amz-Target: AWS242ServiceCatalogService.<Operation>`) on `POST /`, and an admin
//! API under `/_sim/`:
//!
//! - `POST /_sim/seed`: a [`SeedDocument`] (instances, permission sets, principals,
//!   assignments, portfolios with their principals); answers `{"ok": true}`.
//! - `POST /_sim/knobs`: a partial [`crate::Knobs`] in camelCase; answers the knobs now in force.
//! - `GET /_sim/state`: `{"simSeconds", "epochAtStart", "outstandingCreates", "assignments", "counters",
//!   "knobs", "portfolios": {"<portfolioId>": [{"principalArn", "principalType"}]}}`,
//!   the portfolios' true principals (not the lagging list).
//! - `POST /_sim/advance`: `{"seconds": N}` moves simulated time forward by N (N >= 0);
//!   answers `{"simSeconds"}`.
//! - `GET /_sim/portfolios/<portfolioId>`: `{"portfolioId", "principals":
//!   [{"principalArn", "principalType"}]}`, the true principals in list order; 404
//!   `{"error"}` for a portfolio that does not exist.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::model::{ApiError, Fault, Knobs, Model, SeedDocument};

const TARGET_PREFIX: &str = "SWBExternalService.";
const CATALOG_TARGET_PREFIX: &str = "AWS242ServiceCatalogService.";
const PORTFOLIOS_ROUTE: &str = "/_sim/portfolios/";
const HTML_500: &str = "<html><body><h1>500 Internal Server Error</h1></body></html>";

/// The shared simulator: the model and its clock.
pub struct Simulator {
    model: Mutex<Model>,
    clock: Mutex<Clock>,
}

/// Simulated time: `scale` simulated seconds per real second, rebased when the scale
/// changes so that simulated time never jumps.
struct Clock {
    real_base: Instant,
    sim_base: f64,
    scale: f64,
}

impl Clock {
    fn now(&self) -> f64 {
        self.sim_base + self.real_base.elapsed().as_secs_f64() * self.scale
    }
}

/// Which API a call is addressed to, from its `X-Amz-Target` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    SsoAdmin,
    ServiceCatalog,
}

impl Service {
    /// The service and the operation named by an `X-Amz-Target` header.
    fn of_target(target: &str) -> Option<(Self, &str)> {
        if let Some(operation) = target.strip_prefix(TARGET_PREFIX) {
            Some((Self::SsoAdmin, operation))
        } else {
            target
                .strip_prefix(CATALOG_TARGET_PREFIX)
                .map(|operation| (Self::ServiceCatalog, operation))
        }
    }

    fn call(
        self,
        model: &mut Model,
        operation: &str,
        input: &Value,
        now: f64,
    ) -> Result<Value, ApiError> {
        match self {
            Self::SsoAdmin => model.call(operation, input, now),
            Self::ServiceCatalog => model.catalog_call(operation, input, now),
        }
    }

    fn error_body(self, error: &ApiError) -> Value {
        match self {
            Self::SsoAdmin => error.body(),
            Self::ServiceCatalog => error.catalog_body(),
        }
    }

    /// The JSON 500 of `fault_internal_error`: the error Identity Center's model lists,
    /// or, for Service Catalog (whose model lists none), AWS's common InternalFailure.
    fn internal_error(self) -> ApiError {
        let code = match self {
            Self::SsoAdmin => "InternalServerException",
            Self::ServiceCatalog => "InternalFailure",
        };
        ApiError::new(
            500,
            code,
            "The request processing has failed because of an unknown error (injected fault)",
        )
    }

    fn error_response(self, error: &ApiError) -> Response<Full<Bytes>> {
        let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = json_response(status, &self.error_body(error));
        if let Ok(value) = error.code.parse() {
            response.headers_mut().insert("x-amzn-errortype", value);
        }
        response
    }
}

/// A call that ends without an answer: hyper closes the connection.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Simulator {
    pub fn new(knobs: Knobs, seed: u64) -> Arc<Self> {
        let scale = knobs.time_scale;
        Arc::new(Self {
            model: Mutex::new(Model::new(knobs, seed)),
            clock: Mutex::new(Clock {
                real_base: Instant::now(),
                sim_base: 0.0,
                scale,
            }),
        })
    }

    /// Simulated seconds since start.
    pub fn now(&self) -> f64 {
        lock(&self.clock).now()
    }

    /// Runs `f` on the model.
    pub fn with_model<T>(&self, f: impl FnOnce(&mut Model) -> T) -> T {
        f(&mut lock(&self.model))
    }

    pub fn set_knobs(&self, knobs: Knobs) {
        let mut clock = lock(&self.clock);
        let now = clock.now();
        *clock = Clock {
            real_base: Instant::now(),
            sim_base: now,
            scale: knobs.time_scale,
        };
        lock(&self.model).knobs = knobs;
    }

    /// Moves simulated time forward by `seconds` at once (tests that must see time pass
    /// without waiting for it, e.g. with the clock frozen by `time_scale` 0).
    pub fn advance(&self, seconds: f64) -> f64 {
        let mut clock = lock(&self.clock);
        clock.sim_base += seconds.max(0.0);
        clock.now()
    }

    /// Serves on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let simulator = Arc::clone(&self);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let simulator = Arc::clone(&simulator);
                    async move { simulator.handle(request).await }
                });
                // Errors here are dropped connections, injected or from the client.
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn handle(&self, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let target = request
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = match request.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return Err(Dropped),
        };
        if path.starts_with("/_sim/") {
            return Ok(self.admin(&method, &path, &body));
        }
        let Some((service, operation)) = target.as_deref().and_then(Service::of_target) else {
            return Ok(json_response(
                StatusCode::BAD_REQUEST,
                &json!({"__type": "UnknownOperationException", "Message": "missing or unknown X-Amz-Target"}),
            ));
        };
        let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let now = self.now();
        let mut model = lock(&self.model);
        match model.draw_fault() {
            Fault::Http500 => {
                return Ok(Response::builder()
                    .status(StatusCode::INTERNAL_SERVER_ERROR)
                    .header("content-type", "text/html")
                    .body(Full::new(Bytes::from_static(HTML_500.as_bytes())))
                    .unwrap_or_default());
            }
            Fault::DropBefore => return Err(Dropped),
            Fault::DropAfter => {
                let _ = service.call(&mut model, operation, &input, now);
                return Err(Dropped);
            }
            Fault::InternalError => {
                return Ok(service.error_response(&service.internal_error()));
            }
            Fault::None => {}
        }
        Ok(match service.call(&mut model, operation, &input, now) {
            Ok(answer) => json_response(StatusCode::OK, &answer),
            Err(error) => service.error_response(&error),
        })
    }

    fn admin(&self, method: &Method, path: &str, body: &[u8]) -> Response<Full<Bytes>> {
        let bad =
            |message: String| json_response(StatusCode::BAD_REQUEST, &json!({"error": message}));
        match (method, path) {
            (&Method::POST, "/_sim/seed") => match serde_json::from_slice::<SeedDocument>(body) {
                Ok(seed) => {
                    lock(&self.model).seed_document(seed);
                    json_response(StatusCode::OK, &json!({"ok": true}))
                }
                Err(e) => bad(format!("seed: {e}")),
            },
            (&Method::POST, "/_sim/knobs") => {
                let current = serde_json::to_value(&lock(&self.model).knobs).unwrap_or(Value::Null);
                let mut merged = current;
                // A patch that is not a JSON object is refused, not silently ignored.
                let patch = match serde_json::from_slice::<Value>(body) {
                    Ok(Value::Object(patch)) => patch,
                    Ok(_) => return bad("knobs: the patch must be a JSON object".to_owned()),
                    Err(e) => return bad(format!("knobs: {e}")),
                };
                if let Value::Object(base) = &mut merged {
                    base.extend(patch);
                }
                match serde_json::from_value::<Knobs>(merged) {
                    Ok(knobs) => {
                        self.set_knobs(knobs.clone());
                        json_response(StatusCode::OK, &json!(knobs))
                    }
                    Err(e) => bad(format!("knobs: {e}")),
                }
            }
            (&Method::POST, "/_sim/advance") => {
                #[derive(serde::Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Advance {
                    seconds: f64,
                }
                match serde_json::from_slice::<Advance>(body) {
                    Ok(Advance { seconds }) if seconds >= 0.0 && seconds.is_finite() => {
                        let now = self.advance(seconds);
                        json_response(StatusCode::OK, &json!({"simSeconds": now}))
                    }
                    Ok(_) => bad("advance: seconds must be a finite number >= 0".to_owned()),
                    Err(e) => bad(format!("advance: {e}")),
                }
            }
            (&Method::GET, "/_sim/state") => {
                let now = self.now();
                let mut model = lock(&self.model);
                let assignments = model.assignments(now);
                json_response(
                    StatusCode::OK,
                    &json!({
                        "simSeconds": now,
                        "epochAtStart": model.epoch_at_start,
                        "outstandingCreates": model.outstanding_creates(),
                        "assignments": assignments,
                        "counters": model.counters,
                        "knobs": model.knobs,
                        "portfolios": model.portfolios(),
                    }),
                )
            }
            (&Method::GET, _) if path.starts_with(PORTFOLIOS_ROUTE) => {
                let id = &path[PORTFOLIOS_ROUTE.len()..];
                match lock(&self.model).portfolio_principals(id) {
                    Some(principals) => json_response(
                        StatusCode::OK,
                        &json!({"portfolioId": id, "principals": principals}),
                    ),
                    None => json_response(
                        StatusCode::NOT_FOUND,
                        &json!({"error": format!("no portfolio {id}")}),
                    ),
                }
            }
            _ => json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": format!("no admin route {method} {path}")}),
            ),
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", "00000000-0000-4000-8000-000000000000")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

/// Binds 127.0.0.1 on `port` (0: any free port) and serves in the background.
pub async fn start(simulator: Arc<Simulator>, port: u16) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let address = listener.local_addr()?;
    tokio::spawn(simulator.serve(listener));
    Ok(address)
}
