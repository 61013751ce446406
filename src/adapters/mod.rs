//! One real adapter per port, and in-memory fakes for tests and local runs.

pub mod memory;
pub mod sqs;
pub mod sso_admin;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::config::Config;
use crate::handler::Worker;

/// Longest an Identity Center call may take; [`crate::handler::CALL_RESERVE`] leaves
/// room for it before the invocation's deadline.
pub const SSO_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The shared AWS configuration from the standard environment (region, credentials,
/// `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_SSO_ADMIN`).
pub async fn aws_config_from_env() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// The worker over real AWS clients built from `shared`.
pub fn aws_worker(
    shared: &SdkConfig,
    config: Config,
) -> Worker<sso_admin::SsoAdminIdentityCenter, sqs::SqsQueues> {
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
    // SQS sends keep the SDK's standard retries: a send that fails for good makes the
    // record reappear after the visibility timeout, which is slow; a quick retry is not.
    let sqs_config = aws_sdk_sqs::config::Builder::from(shared)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(3))
                .build(),
        )
        .build();
    Worker {
        identity_center: sso_admin::SsoAdminIdentityCenter::new(
            aws_sdk_ssoadmin::Client::from_conf(sso_config),
        ),
        queues: sqs::SqsQueues::new(aws_sdk_sqs::Client::from_conf(sqs_config)),
        config,
    }
}
