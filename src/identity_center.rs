//! The Identity Center port: the four calls the lifecycle needs, and what they answer.

use std::future::Future;

pub use crate::aws_call::{CallError, ErrorKind};
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
    pub status: OperationStatus,
    pub request_id: Option<String>,
    pub failure_reason: Option<String>,
}

pub type CallResult = Result<StatusReport, CallError>;

/// The Identity Center admin API as the worker uses it.
pub trait IdentityCenter: Send + Sync {
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
