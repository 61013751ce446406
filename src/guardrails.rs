//! Refusals made before any AWS call (SPEC §6): which instances, accounts, permission
//! sets and portfolios this worker may touch at all.

use crate::ids::{AccountId, InstanceArn, PermissionSetArn, PortfolioId};
use crate::lifecycle::{DeadLetter, ErrorClass};
use crate::portfolio_access::PortfolioPrincipalType;
use crate::request::{Assignment, AssignmentAction, PortfolioChange, PortfolioPrincipal, Target};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guardrails {
    /// `None`: any instance. `Some`: only these.
    pub allowed_instances: Option<Vec<InstanceArn>>,
    /// Accounts never changed (e.g. the management account): no assignment there is
    /// created or deleted, and no `IAM` principal of one is associated with a portfolio
    /// (removing one only takes access away).
    pub protected_accounts: Vec<AccountId>,
    /// Permission sets never granted; revoking them stays allowed so access can end.
    pub protected_permission_sets: Vec<PermissionSetArn>,
    /// `None`: any portfolio. `Some`: only these.
    pub allowed_portfolios: Option<Vec<PortfolioId>>,
    /// Whether `IAM_PATTERN` principals may be associated (removing one is always
    /// allowed): a pattern lets in any principal someone later creates with a matching
    /// name, in any account the portfolio is shared with.
    pub allow_iam_pattern_principals: bool,
}

fn forbidden(code: &str, message: String) -> Option<DeadLetter> {
    Some(DeadLetter::before_any_call(
        ErrorClass::Forbidden,
        code,
        message,
    ))
}

impl Guardrails {
    /// `Some(dead letter)` when `action` on `target` must not be carried out.
    pub fn refuse_target(
        &self,
        action: AssignmentAction,
        target: Target<'_>,
    ) -> Option<DeadLetter> {
        match target {
            Target::Assignment(assignment) => self.refuse(action, assignment),
            Target::Portfolio(change) => self.refuse_portfolio(action, change),
        }
    }

    /// `Some(dead letter)` when the assignment change must not be carried out.
    pub fn refuse(&self, action: AssignmentAction, assignment: &Assignment) -> Option<DeadLetter> {
        // Allow-lists match in any case, as the ledger keys ids: a revoke naming an
        // allowed instance in capitals refused would leave its access in place, and a
        // spelling no instance has makes no change either way.
        if let Some(allowed) = &self.allowed_instances
            && !allowed.iter().any(|instance| {
                instance
                    .as_str()
                    .eq_ignore_ascii_case(assignment.instance.as_str())
            })
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
        // Matched in any case: AWS's pages do not say whether it tells such ARNs
        // apart, and a list of what is never granted leans to refusing.
        if action == AssignmentAction::Create
            && self.protected_permission_sets.iter().any(|protected| {
                protected
                    .as_str()
                    .eq_ignore_ascii_case(assignment.permission_set.as_str())
            })
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

    /// `Some(dead letter)` when the portfolio change must not be carried out.
    pub fn refuse_portfolio(
        &self,
        action: AssignmentAction,
        change: &PortfolioChange,
    ) -> Option<DeadLetter> {
        if let Some(allowed) = &self.allowed_portfolios
            && !allowed.iter().any(|portfolio| {
                portfolio
                    .as_str()
                    .eq_ignore_ascii_case(change.portfolio.as_str())
            })
        {
            return forbidden(
                "PortfolioNotAllowed",
                format!(
                    "portfolio {} is not in ALLOWED_PORTFOLIO_IDS",
                    change.portfolio
                ),
            );
        }
        // A grant only: a removal takes access away. A pattern names no account.
        if action == AssignmentAction::Create
            && let PortfolioPrincipal::Iam(arn) = &change.principal
            && let Some(account) = arn.account()
            && self.protected_accounts.contains(&account)
        {
            return forbidden(
                "ProtectedAccount",
                format!(
                    "the principal's account {account} is in PROTECTED_ACCOUNT_IDS and is \
                     never granted access: {arn}"
                ),
            );
        }
        if action == AssignmentAction::Create
            && change.principal.principal_type() == PortfolioPrincipalType::IamPattern
            && !self.allow_iam_pattern_principals
        {
            return forbidden(
                "IamPatternNotAllowed",
                // The pattern last: it may be up to 1,000 bytes, and the 1 KiB cut of
                // ErrorMessage must not take the setting to look at.
                format!(
                    "associating an IAM_PATTERN principal needs \
                     ALLOW_IAM_PATTERN_PRINCIPALS=true (a pattern admits any principal later \
                     created with a matching name): {}",
                    change.principal.arn()
                ),
            );
        }
        None
    }
}
