//! The Identity Center port over aws-sdk-ssoadmin.

use aws_sdk_ssoadmin::Client;
use aws_sdk_ssoadmin::types::{
    AccountAssignmentOperationStatus, PrincipalType, StatusValues, TargetType,
};
use time::OffsetDateTime;

use crate::identity_center::{
    CallError, CallResult, ErrorKind, IdentityCenter, OperationStatus, OperationSubject,
    StatusReport,
};
use crate::request::{self, Assignment};

/// Build the client with retries off (the lifecycle retries through the queue, so an
/// invocation never sleeps in the SDK's backoff) and a short operation timeout.
pub struct SsoAdminIdentityCenter {
    client: Client,
}

impl SsoAdminIdentityCenter {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn principal_type(value: request::PrincipalType) -> PrincipalType {
    match value {
        request::PrincipalType::User => PrincipalType::User,
        request::PrincipalType::Group => PrincipalType::Group,
    }
}

fn report(status: Option<&AccountAssignmentOperationStatus>) -> CallResult {
    let Some(status) = status else {
        return Err(CallError {
            kind: ErrorKind::ServerError,
            code: "MissingStatus".to_owned(),
            message: "the answer carried no operation status".to_owned(),
        });
    };
    let value = match status.status() {
        Some(StatusValues::InProgress) => OperationStatus::InProgress,
        Some(StatusValues::Succeeded) => OperationStatus::Succeeded,
        Some(StatusValues::Failed) => OperationStatus::Failed,
        other => {
            return Err(CallError {
                kind: ErrorKind::ServerError,
                code: "UnknownStatus".to_owned(),
                message: format!("unrecognised operation status {other:?}"),
            });
        }
    };
    Ok(StatusReport {
        created_at: status
            .created_date()
            .and_then(|date| OffsetDateTime::from_unix_timestamp(date.secs()).ok()),
        status: value,
        request_id: status.request_id().map(str::to_owned),
        failure_reason: status.failure_reason().map(str::to_owned),
        subject: OperationSubject {
            target_id: status.target_id().map(str::to_owned),
            target_type: status.target_type().map(|t| t.as_str().to_owned()),
            permission_set_arn: status.permission_set_arn().map(str::to_owned),
            principal_type: status.principal_type().map(|p| p.as_str().to_owned()),
            principal_id: status.principal_id().map(str::to_owned),
        },
    })
}

pub use super::call_error;

impl IdentityCenter for SsoAdminIdentityCenter {
    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn create_assignment(&self, assignment: &Assignment) -> CallResult {
        let answer = self
            .client
            .create_account_assignment()
            .instance_arn(assignment.instance.as_str())
            .target_id(assignment.account.as_str())
            .target_type(TargetType::AwsAccount)
            .permission_set_arn(assignment.permission_set.as_str())
            .principal_type(principal_type(assignment.principal_type))
            .principal_id(assignment.principal_id.as_str())
            .send()
            .await
            .map_err(call_error)?;
        report(answer.account_assignment_creation_status())
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn delete_assignment(&self, assignment: &Assignment) -> CallResult {
        let answer = self
            .client
            .delete_account_assignment()
            .instance_arn(assignment.instance.as_str())
            .target_id(assignment.account.as_str())
            .target_type(TargetType::AwsAccount)
            .permission_set_arn(assignment.permission_set.as_str())
            .principal_type(principal_type(assignment.principal_type))
            .principal_id(assignment.principal_id.as_str())
            .send()
            .await
            .map_err(call_error)?;
        report(answer.account_assignment_deletion_status())
    }

    #[tracing::instrument(skip(self, assignment), err(level = "debug"))]
    async fn describe_creation_status(
        &self,
        assignment: &Assignment,
        request_id: &str,
    ) -> CallResult {
        let answer = self
            .client
            .describe_account_assignment_creation_status()
            .instance_arn(assignment.instance.as_str())
            .account_assignment_creation_request_id(request_id)
            .send()
            .await
            .map_err(call_error)?;
        report(answer.account_assignment_creation_status())
    }

    #[tracing::instrument(skip(self, assignment), err(level = "debug"))]
    async fn describe_deletion_status(
        &self,
        assignment: &Assignment,
        request_id: &str,
    ) -> CallResult {
        let answer = self
            .client
            .describe_account_assignment_deletion_status()
            .instance_arn(assignment.instance.as_str())
            .account_assignment_deletion_request_id(request_id)
            .send()
            .await
            .map_err(call_error)?;
        report(answer.account_assignment_deletion_status())
    }
}
