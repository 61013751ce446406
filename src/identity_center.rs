//! The Identity Center port: the four calls the lifecycle needs, and what they answer.

use std::future::Future;
use std::time::Duration;

use time::OffsetDateTime;

pub use crate::aws_call::{CallError, ErrorKind};
pub use crate::pacer::PacedCall;
use crate::request::Assignment;

/// Status of an asynchronous account-assignment operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationStatus {
    InProgress,
    Succeeded,
    Failed,
}

/// What Create/Delete or Describe*Status answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// When AWS created the operation (`CreatedDate`), if it said.
    pub created_at: Option<OffsetDateTime>,
    pub status: OperationStatus,
    pub request_id: Option<String>,
    pub failure_reason: Option<String>,
    /// The assignment the operation changes, as AWS reported it.
    pub subject: OperationSubject,
}

/// The assignment an operation changes, as the AccountAssignmentOperationStatus shape
/// reports it. Every field is optional in the API model; a poll's answer is only
/// believed when all of them name the request's assignment (SPEC §4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationSubject {
    pub target_id: Option<String>,
    pub target_type: Option<String>,
    pub permission_set_arn: Option<String>,
    pub principal_type: Option<String>,
    pub principal_id: Option<String>,
}

impl OperationSubject {
    /// What AWS would report for an operation on `assignment`.
    pub fn of(assignment: &Assignment) -> Self {
        Self {
            target_id: Some(assignment.account.as_str().to_owned()),
            target_type: Some("AWS_ACCOUNT".to_owned()),
            permission_set_arn: Some(assignment.permission_set.as_str().to_owned()),
            principal_type: Some(assignment.principal_type.as_str().to_owned()),
            principal_id: Some(assignment.principal_id.as_str().to_owned()),
        }
    }
}

pub type CallResult = Result<StatusReport, CallError>;

/// Whether a call may be made now (SPEC §10's limits, [`crate::pacer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Make it now (any wait is over).
    Now,
    /// Make no call: store the step again with this delay.
    Defer { delay_seconds: u32 },
}

/// The Identity Center admin API as the worker uses it.
pub trait IdentityCenter: Send + Sync {
    /// Asked before every call: waits, at most `budget`, until `call` may be made, or
    /// says to defer it. Unpaced ports make every call at once.
    fn pace(&self, call: PacedCall, budget: Duration) -> impl Future<Output = Pace> + Send {
        let _ = (call, budget);
        std::future::ready(Pace::Now)
    }
    fn create_assignment(&self, assignment: &Assignment)
    -> impl Future<Output = CallResult> + Send;
    fn delete_assignment(&self, assignment: &Assignment)
    -> impl Future<Output = CallResult> + Send;
    fn describe_creation_status(
        &self,
        assignment: &Assignment,
        request_id: &str,
    ) -> impl Future<Output = CallResult> + Send;
    fn describe_deletion_status(
        &self,
        assignment: &Assignment,
        request_id: &str,
    ) -> impl Future<Output = CallResult> + Send;
}
