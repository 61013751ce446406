//! One real adapter per port, and in-memory fakes for tests and local runs.

pub mod dynamodb;
pub mod memory;
pub mod paced;
pub mod service_catalog;
pub mod sqs;
pub mod sso_admin;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::aws_call::{CallError, ErrorKind};

use crate::config::{Config, SQS_MAX_ATTEMPTS};
use crate::handler::Worker;

/// Longest an Identity Center call may take; [`crate::record_step::call_reserve`]
/// leaves room for it before the invocation's deadline.
pub const SSO_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a ledger call may take. The reserve ([`crate::record_step::call_reserve`])
/// counts one ledger call after a step's AWS call; the steps that make more after it are
/// listed there.
pub const LEDGER_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

/// The shared AWS configuration from the standard environment (region, credentials,
/// `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_SSO_ADMIN`,
/// `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SERVICE_CATALOG`).
pub async fn aws_config_from_env() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// The HTTPS client every AWS client of the worker shares: hyper and rustls, with ring
/// for the cryptography. The SDK's default uses aws-lc, which adds about a megabyte to
/// the binary for nothing the worker needs (TLS 1.2/1.3 to AWS endpoints either way).
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// The worker over real AWS clients built from `shared`.
pub fn aws_worker(
    shared: &SdkConfig,
    config: Config,
) -> Worker<
    paced::PacedIdentityCenter<sso_admin::SsoAdminIdentityCenter>,
    sqs::SqsQueues,
    dynamodb::DynamoDbLedger,
    service_catalog::ServiceCatalogClient,
> {
    // Identity Center errors are retried through the queue with the lifecycle's own
    // backoff and budget, never by sleeping inside the invocation.
    let sso_config = aws_sdk_ssoadmin::config::Builder::from(shared)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_timeout(SSO_OPERATION_TIMEOUT)
                .build(),
        )
        .build();
    let catalog_config = aws_sdk_servicecatalog::config::Builder::from(shared)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_timeout(SSO_OPERATION_TIMEOUT)
                .build(),
        )
        .build();
    // Ledger errors, like Identity Center's, are retried through the queue.
    let dynamodb_config = aws_sdk_dynamodb::config::Builder::from(shared)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_timeout(LEDGER_OPERATION_TIMEOUT)
                .build(),
        )
        .build();
    Worker {
        ledger: dynamodb::DynamoDbLedger::new(
            aws_sdk_dynamodb::Client::from_conf(dynamodb_config),
            config.ledger_table.as_str(),
        ),
        // One pacer for the process's life: it outlives every invocation.
        identity_center: paced::PacedIdentityCenter::new(
            sso_admin::SsoAdminIdentityCenter::new(aws_sdk_ssoadmin::Client::from_conf(sso_config)),
            &config.pacing.settings(),
            fastrand::f64(),
        ),
        queues: sqs::SqsQueues::new(sqs_client(shared, &config)),
        service_catalog: service_catalog::ServiceCatalogClient::new(
            aws_sdk_servicecatalog::Client::from_conf(catalog_config),
        ),
        config,
    }
}

/// The SQS client the worker sends with: every send bounded by
/// [`Config::sqs_operation_timeout`], so [`crate::record_step::call_reserve`] can cover
/// them.
/// Sends keep the SDK's standard retries, bounded to [`SQS_MAX_ATTEMPTS`]: a send that
/// fails for good makes the record reappear after the visibility timeout, which is
/// slow; a quick retry is not.
pub fn sqs_client(shared: &SdkConfig, config: &Config) -> aws_sdk_sqs::Client {
    let sqs_config = aws_sdk_sqs::config::Builder::from(shared)
        .retry_config(RetryConfig::standard().with_max_attempts(SQS_MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(config.sqs_attempt_timeout)
                .operation_attempt_timeout(config.sqs_attempt_timeout)
                .operation_timeout(config.sqs_operation_timeout())
                .build(),
        )
        .build();
    aws_sdk_sqs::Client::from_conf(sqs_config)
}

/// An answer whose error could not be read (cut off, or a front end's page rather than
/// AWS's JSON): a 4xx may be a throttle or a conflict, which Identity Center answers with
/// a 400 too, and it proves nothing about the call, so it is retried as a dropped
/// connection is, not dead-lettered as a rejection.
fn unreadable(status: u16) -> ErrorKind {
    match ErrorKind::classify(None, None, Some(status)) {
        ErrorKind::Rejected => ErrorKind::Connection,
        kind => kind,
    }
}

/// Maps any SDK error (every AWS SDK shares these types) onto the kinds the lifecycle
/// knows.
pub fn call_error<E>(error: SdkError<E, HttpResponse>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let context = DisplayErrorContext(&error).to_string();
    match &error {
        SdkError::TimeoutError(_) => CallError {
            kind: ErrorKind::Timeout,
            code: "Timeout".to_owned(),
            message: context,
        },
        SdkError::DispatchFailure(failure) => CallError {
            kind: if failure.is_timeout() {
                ErrorKind::Timeout
            } else {
                ErrorKind::Connection
            },
            code: if failure.is_timeout() {
                "Timeout"
            } else {
                "ConnectionError"
            }
            .to_owned(),
            message: context,
        },
        SdkError::ResponseError(response) => {
            let status = response.raw().status().as_u16();
            CallError {
                kind: unreadable(status),
                code: format!("HTTP {status}"),
                message: context,
            }
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = error.code();
            let message = error.message();
            CallError {
                kind: match code {
                    Some(_) => ErrorKind::classify(code, message, Some(status)),
                    None => unreadable(status),
                },
                code: code.map_or_else(|| format!("HTTP {status}"), str::to_owned),
                message: message.map_or(context, str::to_owned),
            }
        }
        _ => CallError {
            kind: ErrorKind::Rejected,
            code: "RequestNotSent".to_owned(),
            message: context,
        },
    }
}
