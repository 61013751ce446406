//! Refusals made before any AWS call (SPEC §6): which instances, accounts and
//! permission sets this worker may touch at all.

use crate::ids::{AccountId, InstanceArn, PermissionSetArn};
use crate::lifecycle::{DeadLetter, ErrorClass};
use crate::request::{Assignment, AssignmentAction};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guardrails {
    /// `None`: any instance. `Some`: only these.
    pub allowed_instances: Option<Vec<InstanceArn>>,
    /// Accounts never changed, in either direction (e.g. the management account).
    pub protected_accounts: Vec<AccountId>,
    /// Permission sets never granted; revoking them stays allowed so access can end.
    pub protected_permission_sets: Vec<PermissionSetArn>,
}

impl Guardrails {
    /// `Some(dead letter)` when the request must not be carried out.
    pub fn refuse(&self, action: AssignmentAction, assignment: &Assignment) -> Option<DeadLetter> {
        let forbidden = |code: &str, message: String| {
            Some(DeadLetter::before_any_call(
                ErrorClass::Forbidden,
                code,
                message,
            ))
        };
        if let Some(allowed) = &self.allowed_instances
            && !allowed.contains(&assignment.instance)
        {
            return forbidden(
                "InstanceNotAllowed",
                format!(
                    "instance {} is not in ALLOWED_INSTANCE_ARNS",
                    assignment.instance
                ),
            );
        }
        if self.protected_accounts.contains(&assignment.account) {
            return forbidden(
                "ProtectedAccount",
                format!("account {} is in PROTECTED_ACCOUNT_IDS", assignment.account),
            );
        }
        if action == AssignmentAction::Create
            && self
                .protected_permission_sets
                .contains(&assignment.permission_set)
        {
            return forbidden(
                "ProtectedPermissionSet",
                format!(
                    "permission set {} is in PROTECTED_PERMISSION_SET_ARNS and is never granted",
                    assignment.permission_set
                ),
            );
        }
        None
    }
}
