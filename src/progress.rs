//! Where a re-enqueued request stands (SPEC §4): the `progress` half of the envelope.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::request::AssignmentAction;

/// The step a message asks the worker to take next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Call CreateAccountAssignment or DeleteAccountAssignment.
    Submit,
    /// Call Describe*Status for an operation already submitted.
    Poll {
        operation_request_id: String,
        /// Polls already answered (IN_PROGRESS or not-yet-visible).
        polls: u32,
        submitted_at: OffsetDateTime,
    },
}

/// Validated progress. Built only through deserialization or the lifecycle, so a poll
/// always has the request id and submit time it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ProgressWire", into = "ProgressWire")]
pub struct Progress {
    operation: AssignmentAction,
    pub stage: Stage,
    /// The attempt the next call makes on this step, from 1.
    pub attempt: u32,
    pub first_received_at: OffsetDateTime,
}

impl Progress {
    /// A request seen for the first time: its submit is attempt 1.
    pub fn start(operation: AssignmentAction, now: OffsetDateTime) -> Self {
        Self {
            operation,
            stage: Stage::Submit,
            attempt: 1,
            first_received_at: now,
        }
    }

    pub(crate) fn with(
        operation: AssignmentAction,
        stage: Stage,
        attempt: u32,
        first: OffsetDateTime,
    ) -> Self {
        Self {
            operation,
            stage,
            attempt,
            first_received_at: first,
        }
    }

    pub fn operation(&self) -> AssignmentAction {
        self.operation
    }

    pub fn step_name(&self) -> &'static str {
        match self.stage {
            Stage::Submit => "submit",
            Stage::Poll { .. } => "poll",
        }
    }

    pub fn polls(&self) -> u32 {
        match self.stage {
            Stage::Submit => 0,
            Stage::Poll { polls, .. } => polls,
        }
    }

    pub fn operation_request_id(&self) -> Option<&str> {
        match &self.stage {
            Stage::Submit => None,
            Stage::Poll {
                operation_request_id,
                ..
            } => Some(operation_request_id),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StepName {
    Submit,
    Poll,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OperationName {
    Create,
    Delete,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProgressWire {
    step: StepName,
    operation: OperationName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    operation_request_id: Option<String>,
    attempt: u32,
    #[serde(default)]
    polls: u32,
    #[serde(with = "time::serde::rfc3339")]
    first_received_at: OffsetDateTime,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    submitted_at: Option<OffsetDateTime>,
}

impl TryFrom<ProgressWire> for Progress {
    type Error = String;

    fn try_from(wire: ProgressWire) -> Result<Self, Self::Error> {
        if wire.attempt == 0 {
            return Err("attempt starts at 1".into());
        }
        let stage = match wire.step {
            StepName::Submit
                if wire.operation_request_id.is_some() || wire.submitted_at.is_some() =>
            {
                return Err("operationRequestId and submittedAt belong to step poll only".into());
            }
            StepName::Submit => Stage::Submit,
            StepName::Poll => {
                let operation_request_id = wire
                    .operation_request_id
                    .filter(|id| is_request_id(id))
                    .ok_or("step poll needs an operationRequestId of 1..256 visible characters")?;
                let submitted_at = wire.submitted_at.ok_or("step poll needs submittedAt")?;
                Stage::Poll {
                    operation_request_id,
                    polls: wire.polls,
                    submitted_at,
                }
            }
        };
        let operation = match wire.operation {
            OperationName::Create => AssignmentAction::Create,
            OperationName::Delete => AssignmentAction::Delete,
        };
        Ok(Progress::with(
            operation,
            stage,
            wire.attempt,
            wire.first_received_at,
        ))
    }
}

fn is_request_id(id: &str) -> bool {
    (1..=256).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

impl From<Progress> for ProgressWire {
    fn from(progress: Progress) -> Self {
        let (step, operation_request_id, polls, submitted_at) = match progress.stage {
            Stage::Submit => (StepName::Submit, None, 0, None),
            Stage::Poll {
                operation_request_id,
                polls,
                submitted_at,
            } => (
                StepName::Poll,
                Some(operation_request_id),
                polls,
                Some(submitted_at),
            ),
        };
        ProgressWire {
            step,
            operation: match progress.operation {
                AssignmentAction::Create => OperationName::Create,
                AssignmentAction::Delete => OperationName::Delete,
            },
            operation_request_id,
            attempt: progress.attempt,
            polls,
            first_received_at: progress.first_received_at,
            submitted_at,
        }
    }
}
