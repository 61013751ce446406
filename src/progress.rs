//! Where a re-enqueued request stands (SPEC §4): the `progress` half of the envelope.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use time::format_description::well_known::Rfc3339;

use crate::ids::CorrelationId;
use crate::ledger::DecisionSummary;
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
    /// Wait on the work queue until the grant's `notAfter` (SPEC §11, expiry).
    ExpireWait,
    /// List a portfolio's principals until the list shows the change made at
    /// `submitted_at` (SPEC §9): the list lags the calls.
    Confirm {
        /// Lists already answered without the change.
        polls: u32,
        submitted_at: OffsetDateTime,
    },
}

/// What a request changes: an account assignment (Identity Center) or a portfolio's
/// principals (Service Catalog). The ledger, the order of decisions and expiry are the
/// same for both; the calls differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Assignment,
    Portfolio,
}

/// Why the worker carries out the step: the request's own decision, the expiry of a
/// grant it carried out, or undoing its change after a later decision (SPEC §11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    Decision,
    Expiry,
    Undo {
        superseded_by: DecisionSummary,
        /// The outcome the chain sends when it ends.
        reports: UndoReport,
    },
}

/// What an undo chain reports when it ends, by what it undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UndoReport {
    /// The request's own change (purpose `undo`): the request's outcome, `superseded`.
    Request,
    /// A grant's expiry's revoke (purpose `expiry-undo`): the expiry's outcome,
    /// `superseded` with `trigger` `expiry`.
    Expiry,
    /// Nothing (purpose `restored-expiry`): the request's outcome is out; the undo
    /// restored the access of a later grant with `notAfter` that may have no expiry of
    /// its own (or a superseded create that may have landed left it in place for that
    /// grant), and the chain goes on only to end that access there.
    Nothing,
}

impl Purpose {
    /// The later decision an undo's outcome names.
    pub fn superseded_by(&self) -> Option<&DecisionSummary> {
        match self {
            Purpose::Undo { superseded_by, .. } => Some(superseded_by),
            Purpose::Decision | Purpose::Expiry => None,
        }
    }

    /// The chain that ends, at a later grant's `notAfter`, the access an undo restored
    /// for it.
    pub fn is_restored_expiry(&self) -> bool {
        self.undo_report() == Some(UndoReport::Nothing)
    }

    /// Whether the step reports, when it ends, as a grant's expiry (`trigger` `expiry`).
    pub fn reports_as_expiry(&self) -> bool {
        *self == Purpose::Expiry || self.undo_report() == Some(UndoReport::Expiry)
    }

    fn undo_report(&self) -> Option<UndoReport> {
        match self {
            Purpose::Undo { reports, .. } => Some(*reports),
            Purpose::Decision | Purpose::Expiry => None,
        }
    }
}

/// The decision's place in the order of SPEC §11, fixed at its first delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionStamp {
    /// `requestedAt`, or else the SentTimestamp of the first delivery.
    pub requested_at: OffsetDateTime,
    pub first_message_id: String,
}

/// Validated progress. Built only through deserialization or the lifecycle, so a poll
/// always has the request id and submit time it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ProgressWire", into = "ProgressWire")]
pub struct Progress {
    resource: Resource,
    /// Which way the step moves the access: `Create` makes it present (create, or
    /// associate on a portfolio), `Delete` absent.
    operation: AssignmentAction,
    pub stage: Stage,
    /// The attempt the next call makes on this step, from 1.
    pub attempt: u32,
    pub first_received_at: OffsetDateTime,
    pub purpose: Purpose,
    pub stamp: DecisionStamp,
    /// An earlier submit of this operation may have reached AWS (its answer was lost),
    /// so the grant may exist although nothing confirmed it. Kept when an undo's fence
    /// turns the operation around: the earlier submit, of the opposite change, may
    /// still have landed, and a restored expiry's restart goes by it.
    pub maybe_submitted: bool,
    /// Set on the one more submit of an operation that FAILED while an earlier submit
    /// may have taken effect, or of a revoke the worker owes
    /// ([`Progress::is_owed_revoke`]), and kept through its polls and retries: a FAILED
    /// then is final. An operation started afresh goes without it: an expiry's wait, a
    /// dead letter's restart ([`Progress::restarted_at`]), an undo's fence turning the
    /// operation around.
    pub resubmitted_after_failure: bool,
}

impl Progress {
    /// A request seen for the first time: its submit is attempt 1.
    pub fn start(operation: AssignmentAction, now: OffsetDateTime, stamp: DecisionStamp) -> Self {
        Self::start_for(Resource::Assignment, operation, now, stamp)
    }

    pub fn start_for(
        resource: Resource,
        operation: AssignmentAction,
        now: OffsetDateTime,
        stamp: DecisionStamp,
    ) -> Self {
        Self {
            resource,
            operation,
            stage: Stage::Submit,
            attempt: 1,
            first_received_at: now,
            purpose: Purpose::Decision,
            stamp,
            maybe_submitted: false,
            resubmitted_after_failure: false,
        }
    }

    /// The same request at another step (the purpose, stamp and first receipt carry over).
    pub(crate) fn at(&self, operation: AssignmentAction, stage: Stage, attempt: u32) -> Self {
        Self {
            operation,
            stage,
            attempt,
            ..self.clone()
        }
    }

    /// The same request back at the start of an operation: an expiry's wait, or the
    /// step a dead letter's redrive replays. The one more submit after a FAILED
    /// (`resubmitted_after_failure`) belongs to the operation that FAILED, not to the
    /// next one.
    pub(crate) fn restarted_at(&self, operation: AssignmentAction, stage: Stage) -> Self {
        Self {
            resubmitted_after_failure: false,
            ..self.at(operation, stage, 1)
        }
    }

    /// The same request, starting a new chain for `purpose` with `operation`.
    pub(crate) fn for_purpose(
        &self,
        purpose: Purpose,
        operation: AssignmentAction,
        stage: Stage,
    ) -> Self {
        Self {
            operation,
            stage,
            attempt: 1,
            purpose,
            maybe_submitted: false,
            resubmitted_after_failure: false,
            ..self.clone()
        }
    }

    pub fn operation(&self) -> AssignmentAction {
        self.operation
    }

    /// Whether the step removes access the worker owes to remove (an expiry's delete,
    /// or an undo's of a grant), not access a request asked it to.
    pub fn is_owed_revoke(&self) -> bool {
        self.operation == AssignmentAction::Delete && self.purpose != Purpose::Decision
    }

    pub fn resource(&self) -> Resource {
        self.resource
    }

    /// The operation's name on the wire and in logs.
    pub fn operation_name(&self) -> &'static str {
        match (self.resource, self.operation) {
            (Resource::Assignment, AssignmentAction::Create) => "create",
            (Resource::Assignment, AssignmentAction::Delete) => "delete",
            (Resource::Portfolio, AssignmentAction::Create) => "associate",
            (Resource::Portfolio, AssignmentAction::Delete) => "disassociate",
        }
    }

    pub fn step_name(&self) -> &'static str {
        match self.stage {
            Stage::Submit => "submit",
            Stage::Poll { .. } => "poll",
            Stage::ExpireWait => "expire-wait",
            Stage::Confirm { .. } => "confirm",
        }
    }

    pub fn purpose_name(&self) -> &'static str {
        match self.purpose {
            Purpose::Decision => "decision",
            Purpose::Expiry => "expiry",
            Purpose::Undo { reports, .. } => match reports {
                UndoReport::Request => "undo",
                UndoReport::Expiry => "expiry-undo",
                UndoReport::Nothing => "restored-expiry",
            },
        }
    }

    pub fn polls(&self) -> u32 {
        match self.stage {
            Stage::Submit | Stage::ExpireWait => 0,
            Stage::Poll { polls, .. } | Stage::Confirm { polls, .. } => polls,
        }
    }

    pub fn operation_request_id(&self) -> Option<&str> {
        match &self.stage {
            Stage::Submit | Stage::ExpireWait | Stage::Confirm { .. } => None,
            Stage::Poll {
                operation_request_id,
                ..
            } => Some(operation_request_id),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum StepName {
    Submit,
    Poll,
    ExpireWait,
    Confirm,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum PurposeName {
    #[default]
    Decision,
    Expiry,
    Undo,
    #[serde(rename = "expiry-undo")]
    ExpiryUndo,
    #[serde(rename = "restored-expiry")]
    RestoredExpiry,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OperationName {
    Create,
    Delete,
    Associate,
    Disassociate,
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
    #[serde(default)]
    purpose: PurposeName,
    /// Missing in envelopes written before the ledger: the first receipt stands in.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    requested_at: Option<OffsetDateTime>,
    #[serde(default)]
    first_message_id: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    maybe_submitted: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    resubmitted_after_failure: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    superseded_by: Option<DecisionSummary>,
}

impl TryFrom<ProgressWire> for Progress {
    type Error = String;

    fn try_from(wire: ProgressWire) -> Result<Self, Self::Error> {
        if wire.attempt == 0 {
            return Err("attempt starts at 1".into());
        }
        let stage = match wire.step {
            StepName::Submit | StepName::ExpireWait
                if wire.operation_request_id.is_some() || wire.submitted_at.is_some() =>
            {
                return Err(
                    "operationRequestId and submittedAt belong to steps poll and confirm only"
                        .into(),
                );
            }
            StepName::Confirm if wire.operation_request_id.is_some() => {
                return Err("operationRequestId belongs to step poll only".into());
            }
            StepName::Confirm => Stage::Confirm {
                polls: wire.polls,
                submitted_at: wire.submitted_at.ok_or("step confirm needs submittedAt")?,
            },
            StepName::Submit => Stage::Submit,
            StepName::ExpireWait => Stage::ExpireWait,
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
        let (resource, operation) = match wire.operation {
            OperationName::Create => (Resource::Assignment, AssignmentAction::Create),
            OperationName::Delete => (Resource::Assignment, AssignmentAction::Delete),
            OperationName::Associate => (Resource::Portfolio, AssignmentAction::Create),
            OperationName::Disassociate => (Resource::Portfolio, AssignmentAction::Delete),
        };
        match (resource, &stage) {
            (Resource::Assignment, Stage::Confirm { .. }) => {
                return Err("step confirm belongs to portfolio operations only".into());
            }
            (Resource::Portfolio, Stage::Poll { .. }) => {
                return Err("step poll belongs to account-assignment operations only".into());
            }
            _ => {}
        }
        // The worker writes a later decision's summary from a validated request; one it
        // did not write must not grow the envelope past its computed bound.
        if let Some(summary) = &wire.superseded_by {
            let id_ok = summary
                .correlation_id
                .as_deref()
                .is_none_or(|id| CorrelationId::parse_recorded(id).is_ok());
            let time_ok = summary.requested_at.len() <= 35
                && OffsetDateTime::parse(&summary.requested_at, &Rfc3339).is_ok();
            if !id_ok || !time_ok {
                return Err(
                    "supersededBy needs a valid correlationId and an RFC 3339 requestedAt".into(),
                );
            }
        }
        let purpose = match (wire.purpose, wire.superseded_by) {
            (PurposeName::Decision, None) => Purpose::Decision,
            (PurposeName::Expiry, None) => Purpose::Expiry,
            (PurposeName::Undo, Some(superseded_by)) => Purpose::Undo {
                superseded_by,
                reports: UndoReport::Request,
            },
            (PurposeName::ExpiryUndo, Some(superseded_by)) => Purpose::Undo {
                superseded_by,
                reports: UndoReport::Expiry,
            },
            (PurposeName::RestoredExpiry, Some(superseded_by)) => Purpose::Undo {
                superseded_by,
                reports: UndoReport::Nothing,
            },
            (PurposeName::Undo | PurposeName::ExpiryUndo | PurposeName::RestoredExpiry, None) => {
                return Err(
                    "purposes undo, expiry-undo and restored-expiry need supersededBy".into(),
                );
            }
            (_, Some(_)) => {
                return Err(
                    "supersededBy belongs to purposes undo, expiry-undo and restored-expiry only"
                        .into(),
                );
            }
        };
        match (&purpose, &stage, operation) {
            (Purpose::Expiry, _, AssignmentAction::Create) => {
                return Err("an expiry step only deletes".into());
            }
            (purpose, Stage::ExpireWait, _)
                if *purpose != Purpose::Expiry && !purpose.is_restored_expiry() =>
            {
                return Err(
                    "step expire-wait belongs to purposes expiry and restored-expiry".into(),
                );
            }
            (Purpose::Undo { .. }, Stage::ExpireWait, AssignmentAction::Create) => {
                return Err("a restored-expiry wait ends access: its operation is delete".into());
            }
            _ => {}
        }
        if wire.first_message_id.len() > 256 || wire.first_message_id.chars().any(char::is_control)
        {
            return Err("firstMessageId must be at most 256 printable characters".into());
        }
        Ok(Progress {
            resource,
            operation,
            stage,
            attempt: wire.attempt,
            first_received_at: wire.first_received_at,
            purpose,
            stamp: DecisionStamp {
                requested_at: wire.requested_at.unwrap_or(wire.first_received_at),
                first_message_id: wire.first_message_id,
            },
            maybe_submitted: wire.maybe_submitted,
            resubmitted_after_failure: wire.resubmitted_after_failure,
        })
    }
}

fn is_request_id(id: &str) -> bool {
    (1..=256).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

impl From<Progress> for ProgressWire {
    fn from(progress: Progress) -> Self {
        let (step, operation_request_id, polls, submitted_at) = match progress.stage {
            Stage::Submit => (StepName::Submit, None, 0, None),
            Stage::ExpireWait => (StepName::ExpireWait, None, 0, None),
            Stage::Confirm {
                polls,
                submitted_at,
            } => (StepName::Confirm, None, polls, Some(submitted_at)),
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
        let (purpose, superseded_by) = match progress.purpose {
            Purpose::Decision => (PurposeName::Decision, None),
            Purpose::Expiry => (PurposeName::Expiry, None),
            Purpose::Undo {
                superseded_by,
                reports,
            } => {
                let name = match reports {
                    UndoReport::Request => PurposeName::Undo,
                    UndoReport::Expiry => PurposeName::ExpiryUndo,
                    UndoReport::Nothing => PurposeName::RestoredExpiry,
                };
                (name, Some(superseded_by))
            }
        };
        ProgressWire {
            step,
            operation: match (progress.resource, progress.operation) {
                (Resource::Assignment, AssignmentAction::Create) => OperationName::Create,
                (Resource::Assignment, AssignmentAction::Delete) => OperationName::Delete,
                (Resource::Portfolio, AssignmentAction::Create) => OperationName::Associate,
                (Resource::Portfolio, AssignmentAction::Delete) => OperationName::Disassociate,
            },
            operation_request_id,
            attempt: progress.attempt,
            polls,
            first_received_at: progress.first_received_at,
            submitted_at,
            purpose,
            requested_at: Some(progress.stamp.requested_at),
            first_message_id: progress.stamp.first_message_id,
            maybe_submitted: progress.maybe_submitted,
            resubmitted_after_failure: progress.resubmitted_after_failure,
            superseded_by,
        }
    }
}
