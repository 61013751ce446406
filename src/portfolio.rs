//! The lifecycle of a portfolio-principal change (SPEC §9), pure like
//! [`crate::lifecycle`]: given what one Service Catalog call answered, decide the next
//! step. Associate and disassociate answer at once, but the list of the portfolio's
//! principals lags them, so a change is confirmed by listing, with the same
//! re-enqueue polling as an Identity Center operation.

use time::OffsetDateTime;

use crate::aws_call::{CallError, ErrorKind};
use crate::ids::PortfolioId;
use crate::ledger::{AccessDecision, Intent, Presence};
use crate::lifecycle::{
    self, Completion, DeadLetter, Decision, ErrorClass, Policy, RedriveCaution, poll_delay_seconds,
    retry, retry_call,
};
use crate::portfolio_access::{
    ListedPrincipal, PortfolioPrincipalType, residual_access, same_iam_name, same_iam_principal,
};
use crate::progress::{Progress, Purpose, Stage};
use crate::request::AssignmentAction;

pub type ListResult = Result<Vec<ListedPrincipal>, CallError>;

/// A decision, with the principals that keep access after a disassociate: none when
/// no list was read (a removal's outcome then claims nothing either way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub decision: Decision,
    pub residual_access: Option<Vec<ListedPrincipal>>,
    /// The step's change was made (AWS answered it) but `decision` does not confirm it
    /// (a ledger read after it failed): it is judged as a step whose change may have
    /// landed, so that a dead letter reads the later decisions and says to check the
    /// access.
    pub landed: bool,
}

impl From<Decision> for Settled {
    fn from(decision: Decision) -> Self {
        Self {
            decision,
            residual_access: None,
            landed: false,
        }
    }
}

/// What follows an associate or disassociate call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterSubmit {
    Decided(Decision),
    /// A disassociate answered ResourceNotFound, which is ambiguous (not associated,
    /// associated under the other type, or no such portfolio): list to decide.
    SettleByListing,
}

fn done(completion: Completion) -> Decision {
    Decision::Done {
        completion,
        operation_request_id: None,
    }
}

fn permanent(progress: &Progress, code: &str, message: String) -> Decision {
    Decision::DeadLetter(DeadLetter {
        class: ErrorClass::Permanent,
        code: code.to_owned(),
        message,
        attempts: progress.attempt,
        operation_request_id: None,
    })
}

/// Whether an associate is preceded by a list that tells whether the principal is
/// already there (SPEC §9's `already-satisfied`). Not for an undo, which reports nothing
/// of its own.
pub fn lists_before_associate(progress: &Progress) -> bool {
    !matches!(progress.purpose, Purpose::Undo { .. })
}

/// The list read before an associate: `Ok(listed)`, whether it shows the principal, to
/// go on with the associate. A listed principal is associated all the same: the list
/// lags, and may not show yet a removal made elsewhere, or one of this worker's that
/// timed out. Associating a principal that is there succeeds and changes nothing.
pub fn before_associate(
    progress: &Progress,
    principal: &ListedPrincipal,
    listed: &ListResult,
    policy: &Policy,
    jitter: f64,
) -> Result<bool, Box<Decision>> {
    match listed {
        Ok(principals) => Ok(principals.contains(principal)),
        // A list changes nothing: its timeout is no associate that may have landed.
        Err(error) if error.kind.is_transient() => {
            Err(Box::new(lifecycle::retry(progress, error, policy, jitter)))
        }
        Err(error) => Err(Box::new(refused(progress, error, policy, jitter))),
    }
}

/// After the associate or disassociate call. An associate of a principal the list
/// showed before it (`listed_before`) is `already-satisfied`, with no confirm, and so
/// is one refused for good.
pub fn after_submit(
    progress: &Progress,
    result: &Result<(), CallError>,
    listed_before: bool,
    now: OffsetDateTime,
    policy: &Policy,
    jitter: f64,
) -> AfterSubmit {
    match result {
        Ok(()) if listed_before => AfterSubmit::Decided(done(Completion::AlreadySatisfied)),
        Ok(()) => AfterSubmit::Decided(Decision::Continue {
            progress: progress.at(
                progress.operation(),
                Stage::Confirm {
                    polls: 0,
                    submitted_at: now,
                },
                1,
            ),
            delay_seconds: poll_delay_seconds(0, policy),
        }),
        Err(error)
            if error.kind == ErrorKind::ResourceNotFound
                && progress.operation() == AssignmentAction::Delete =>
        {
            AfterSubmit::SettleByListing
        }
        Err(error) => match refused(progress, error, policy, jitter) {
            // The associate of a listed principal was a precaution against a lagging
            // list: refused for good, the request is what the list said.
            Decision::DeadLetter(_) if listed_before => {
                AfterSubmit::Decided(done(Completion::AlreadySatisfied))
            }
            decision => AfterSubmit::Decided(decision),
        },
    }
}

/// Transient errors repeat the step (a submit that may have reached AWS is marked so,
/// for `notAfter`); InvalidParameters, LimitExceeded (the 10-pattern limit),
/// ResourceNotFound on associate, and the rest are permanent.
fn refused(progress: &Progress, error: &CallError, policy: &Policy, jitter: f64) -> Decision {
    if error.kind.is_transient() {
        return retry_call(progress, error, policy, jitter);
    }
    let message = if error.kind == ErrorKind::ResourceNotFound {
        format!(
            "the portfolio does not exist or is not visible: {}",
            error.message
        )
    } else {
        error.message.clone()
    };
    permanent(progress, &error.code, message)
}

/// A disassociate answered ResourceNotFound; the list says why. Never done while the
/// principal still has access (SPEC §9), unless what gives it is an entry in
/// `granted_later`: [`named_otherwise`] whose own latest decision is a grant decided
/// after this removal, which the latest decision about the role asks for (reported).
pub fn settle_not_found(
    progress: &Progress,
    portfolio: &PortfolioId,
    principal: &ListedPrincipal,
    listed: &ListResult,
    granted_later: &[&ListedPrincipal],
    policy: &Policy,
    jitter: f64,
) -> Settled {
    let principals = match listed {
        Ok(principals) => principals,
        Err(error) => return refused(progress, error, policy, jitter).into(),
    };
    if principals.contains(principal) {
        // AWS says it is not associated, the list still shows it: the list lags a
        // disassociate made moments ago. Ask again rather than guess.
        let lag = CallError {
            kind: ErrorKind::Conflict,
            code: "ListLag".to_owned(),
            message: format!(
                "DisassociatePrincipalFromPortfolio answered ResourceNotFound while the list \
                 still shows {} as {}",
                principal.principal_arn,
                principal.principal_type.as_str()
            ),
        };
        return retry(progress, &lag, policy, jitter).into();
    }
    let other_type = principal.principal_type.other();
    let under_other_type = principals
        .iter()
        .any(|p| p.principal_arn == principal.principal_arn && p.principal_type == other_type);
    if under_other_type {
        return permanent(
            progress,
            "PrincipalTypeMismatch",
            removal_by_hand(portfolio, principal, other_type),
        )
        .into();
    }
    // AWS matched the ARN as written; IAM names one user, group or role by its name
    // whatever the case or path, so the principal may still have access through this
    // entry, and a removal the request asked for is not done. An expiry or undo removes
    // only the spelling its grant added: that is gone (an expiry reports the other entry).
    if progress.purpose == Purpose::Decision
        && let Some((code, message)) = listed_otherwise(principal, principals, granted_later)
    {
        return permanent(progress, code, message).into();
    }
    Settled {
        decision: done(Completion::AlreadySatisfied),
        residual_access: Some(residual_access(principal, principals)),
        landed: false,
    }
}

/// A grant behind a later removal of its IAM name in any spelling
/// ([`crate::ledger::LedgerKey::iam_name`]): that removal found nothing of this spelling
/// to remove, or removed it before this grant added it back. A grant none of whose
/// submits can have landed yet is `superseded` with no call. One whose associate was
/// made (`made`: its confirm sees its entry, or AWS answered the associate of a principal
/// already listed) or may have been (a retry after a timeout) removes its own spelling
/// first: an undo toward the removal, which the removal itself could not make, since it
/// names another spelling. `None`: not a grant's own step (an expiry or undo goes by
/// [`latest_for_the_entry`]), or no such removal.
pub fn behind_a_later_removal_of_the_name(
    progress: &Progress,
    own: &AccessDecision,
    latest_removal: Option<&AccessDecision>,
    made: bool,
    now: OffsetDateTime,
) -> Option<Decision> {
    let later = later_removal_of_the_name(own, latest_removal)?;
    if own.order.intent != Intent::Grant || progress.purpose != Purpose::Decision {
        return None;
    }
    Some(if made {
        lifecycle::undo(progress, later, now)
    } else {
        // An undo when an earlier submit may have landed.
        lifecycle::superseded(progress, later, now)
    })
}

/// Whether a chain about to be dead-lettered goes by a later removal of its IAM name
/// ([`latest_for_the_entry`]) as well as by its entry's own decisions: a request's
/// grant whose associate may have landed after that removal found nothing of its
/// spelling. It yields to that removal ([`lifecycle::may_yield_to_a_later_decision`]),
/// or, at its poll deadline, its dead letter says to check the access
/// ([`lifecycle::RedriveCaution::BehindLaterDecision`]). Not a removal's or an expiry's:
/// behind a later grant of its spelling it restores that grant's state, and that undo
/// goes by the removal of the name; ended `superseded` behind that removal instead, with
/// nothing done, it would leave the entry listed, as the other spelling's removal does
/// not take it away.
pub fn dead_letter_reads_the_name(progress: &Progress, dead_letter: &DeadLetter) -> bool {
    progress.operation() == AssignmentAction::Create
        && progress.purpose == Purpose::Decision
        && lifecycle::may_have_taken_effect(progress, dead_letter)
}

/// The decision that stands for a portfolio entry (what an undo carries out, what a
/// confirm not shown or a grant's dead letter yields to): the latest of its own
/// spelling's item, unless a removal of its IAM name in any spelling was decided after
/// that (the name's removal ends every spelling's access; a grant adds only its own).
pub fn latest_for_the_entry<'a>(
    latest_own: &'a AccessDecision,
    latest_removal: Option<&'a AccessDecision>,
) -> &'a AccessDecision {
    later_removal_of_the_name(latest_own, latest_removal).unwrap_or(latest_own)
}

fn later_removal_of_the_name<'a>(
    decision: &AccessDecision,
    latest_removal: Option<&'a AccessDecision>,
) -> Option<&'a AccessDecision> {
    latest_removal
        .filter(|removal| removal.order.intent == Intent::Revoke && removal.order > decision.order)
}

/// Whether `settled` is a removal's dead letter naming entries of its IAM name in other
/// spellings to remove (`PrincipalArnCaseMismatch`, `PrincipalArnPathMismatch`): what a
/// later grant of one may change.
pub fn names_entries_to_remove(settled: &Settled) -> bool {
    matches!(&settled.decision, Decision::DeadLetter(dead)
        if dead.code == CASE_MISMATCH || dead.code == PATH_MISMATCH)
}

const CASE_MISMATCH: &str = "PrincipalArnCaseMismatch";
const PATH_MISMATCH: &str = "PrincipalArnPathMismatch";

/// The `IAM` entries of `principals` naming `principal`'s IAM name otherwise: in
/// another case, or under another path (IAM names are unique whatever the path; such an
/// entry may name the same principal). None for an `IAM_PATTERN` principal.
pub fn named_otherwise<'a>(
    principal: &ListedPrincipal,
    principals: &'a [ListedPrincipal],
) -> Vec<&'a ListedPrincipal> {
    if principal.principal_type != PortfolioPrincipalType::Iam {
        return Vec::new();
    }
    principals
        .iter()
        .filter(|p| {
            p.principal_type == PortfolioPrincipalType::Iam
                && p.principal_arn != principal.principal_arn
                && same_iam_principal(&p.principal_arn, &principal.principal_arn)
        })
        .collect()
}

/// The entries [`named_otherwise`] but those `granted_later`, as the dead letter's code
/// and message: `PrincipalArnCaseMismatch` when one is in another case on the same
/// path, else `PrincipalArnPathMismatch`. Every such entry is named: one left out would
/// keep its access unreported.
fn listed_otherwise(
    principal: &ListedPrincipal,
    principals: &[ListedPrincipal],
    granted_later: &[&ListedPrincipal],
) -> Option<(&'static str, String)> {
    let others: Vec<&ListedPrincipal> = named_otherwise(principal, principals)
        .into_iter()
        .filter(|p| !granted_later.contains(p))
        .collect();
    let on_the_same_path =
        |p: &&ListedPrincipal| same_iam_name(&p.principal_arn, &principal.principal_arn);
    let code = if others.iter().any(on_the_same_path) {
        CASE_MISMATCH
    } else {
        PATH_MISMATCH
    };
    let message = match others[..] {
        [] => return None,
        [one] if on_the_same_path(&one) => spelled_as_listed(&one.principal_arn),
        [one] => listed_under_another_path(&one.principal_arn),
        _ => listed_in_several_spellings(&others),
    };
    Some((code, message))
}

/// The dead letter's message for an association under `other_type`: the request that
/// would name that type is refused for this ARN's shape (SPEC §2), so the way out is by
/// hand. The ARN comes once and last, and when the command would not fit
/// ([`first_that_fits`]) it is named as the request's instead.
fn removal_by_hand(
    portfolio: &PortfolioId,
    principal: &ListedPrincipal,
    other_type: PortfolioPrincipalType,
) -> String {
    let message = |arn: &str| {
        format!(
            "associated with the portfolio as principal type {other}, not {own} (made \
             before AWS checked ARN shapes; the worker refuses {other} for this ARN): \
             remove it by hand with aws servicecatalog \
             disassociate-principal-from-portfolio --principal-type {other} \
             --portfolio-id {portfolio} --principal-arn {arn}",
            portfolio = portfolio.as_str(),
            other = other_type.as_str(),
            own = principal.principal_type.as_str(),
        )
    };
    first_that_fits([
        message(&shell_quoted(&principal.principal_arn)),
        message("<the request's principalArn, quoted>"),
    ])
}

/// The dead letter's message for the same IAM name listed in another case. The listed
/// ARN (or, when it would not fit the dead letter's message, the name as listed) comes
/// last, after the instruction: never cut into the ARN of another principal.
fn spelled_as_listed(listed_arn: &str) -> String {
    let name = listed_arn
        .rsplit_once('/')
        .map_or(listed_arn, |(_, name)| name);
    let (found, send) = (NOT_AS_WRITTEN, SEND_REMOVAL);
    first_that_fits([
        format!("{found}, spelled {name}: {send} principalArn {listed_arn}"),
        format!(
            "{found}, in another case: {send} the request's principalArn, its name spelled {name}"
        ),
        format!(
            "{found}, in another case: {send} the request's principalArn, its name spelled as \
             ListPrincipalsForPortfolio lists it"
        ),
    ])
}

/// The dead letter's message for the same IAM name listed under another path: the
/// listed ARN comes last, or, when it would not fit, is left for the operator to read
/// from the list (the path is what differs, so the name alone would not tell them).
fn listed_under_another_path(listed_arn: &str) -> String {
    let (found, send) = (NOT_AS_WRITTEN, SEND_REMOVAL);
    first_that_fits([
        format!("{found}, under another path: {send} principalArn {listed_arn}"),
        format!(
            "{found}, under another path: {send} the principalArn ListPrincipalsForPortfolio \
             lists for that name (not one a later grant still in force made)"
        ),
    ])
}

/// The dead letter's message for the same IAM name listed in several other spellings:
/// every listed ARN, space-apart (an ARN holds no space), or, when they would not all
/// fit, none, and the operator is sent to the list.
fn listed_in_several_spellings(listed: &[&ListedPrincipal]) -> String {
    let (found, send) = (NOT_AS_WRITTEN, SEND_REMOVAL);
    let count = listed.len();
    let arns: Vec<&str> = listed.iter().map(|p| p.principal_arn.as_str()).collect();
    first_that_fits([
        format!(
            "{found}, in {count} other spellings: {send} each of these principalArn values: {}",
            arns.join(" ")
        ),
        format!(
            "{found}, in {count} other spellings: {send} each principalArn \
             ListPrincipalsForPortfolio lists for that name (not one a later grant still in force made)"
        ),
    ])
}

const NOT_AS_WRITTEN: &str =
    "not associated with the portfolio as written, but the same IAM name is";
const SEND_REMOVAL: &str = "send a disassociate-portfolio-principal request with";

/// The first of `messages` that fits the dead letter's message (cut at 1,024 bytes,
/// behind a redrive caution), else the last: one that names what to send never reaches
/// the operator cut short.
fn first_that_fits<const N: usize>(messages: [String; N]) -> String {
    messages
        .into_iter()
        .reduce(|kept, next| {
            if kept.len() <= RedriveCaution::ROOM_BEHIND {
                kept
            } else {
                next
            }
        })
        .unwrap_or_default()
}

/// `text` as one shell word: a pattern's `*` and `?` must reach the CLI as written, and
/// an IAM path may hold a `'`.
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// At a confirm step: done once the list shows the change, else list again until the
/// poll deadline (then `timed-out`).
pub fn after_list(
    progress: &Progress,
    principal: &ListedPrincipal,
    listed: &ListResult,
    now: OffsetDateTime,
    policy: &Policy,
    jitter: f64,
) -> Settled {
    let Stage::Confirm {
        polls,
        submitted_at,
    } = progress.stage
    else {
        return permanent(
            progress,
            "BadEnvelope",
            "a list answer belongs to a confirm step".to_owned(),
        )
        .into();
    };
    let removing = progress.operation() == AssignmentAction::Delete;
    let principals = match listed {
        Ok(principals) => principals,
        // The portfolio is gone, and every association with it: nobody keeps access.
        Err(error) if error.kind == ErrorKind::ResourceNotFound && removing => {
            return Settled {
                decision: done(Completion::Succeeded),
                residual_access: Some(Vec::new()),
                landed: false,
            };
        }
        Err(error) if error.kind.is_transient() => {
            return retry(progress, error, policy, jitter).into();
        }
        Err(error) => return refused(progress, error, policy, jitter).into(),
    };
    if shows_change(progress, principal, principals) {
        return Settled {
            decision: done(Completion::Succeeded),
            residual_access: removing.then(|| residual_access(principal, principals)),
            landed: false,
        };
    }
    let polls = polls + 1;
    let elapsed = (now - submitted_at).whole_seconds().max(0);
    let remaining = i64::from(policy.poll_deadline_seconds) - elapsed;
    if remaining <= 0 {
        return Decision::DeadLetter(DeadLetter {
            class: ErrorClass::TimedOut,
            code: "NotConfirmed".to_owned(),
            message: format!(
                "ListPrincipalsForPortfolio still {} {} {elapsed} s after the {} (deadline {} \
                 s, {polls} lists)",
                if removing { "lists" } else { "does not list" },
                principal.principal_arn,
                progress.operation_name(),
                policy.poll_deadline_seconds
            ),
            attempts: polls,
            operation_request_id: None,
        })
        .into();
    }
    let delay = poll_delay_seconds(polls, policy).min(u32::try_from(remaining).unwrap_or(u32::MAX));
    Decision::Continue {
        progress: progress.at(
            progress.operation(),
            Stage::Confirm {
                polls,
                submitted_at,
            },
            1,
        ),
        delay_seconds: delay,
    }
    .into()
}

/// Whether the list shows the change `progress` makes: the principal listed after an
/// associate, gone after a disassociate.
pub fn shows_change(
    progress: &Progress,
    principal: &ListedPrincipal,
    principals: &[ListedPrincipal],
) -> bool {
    principals.contains(principal) == (progress.operation() == AssignmentAction::Create)
}

/// A confirm step whose list does not show the change: the wait ends once a later
/// decision asks for the opposite. The list shows the principal's state, not this
/// request's operation, and that state is now the later decision's to reach; waiting on
/// would last until the poll deadline. The later decision's state is made again (an
/// undo), since this change may have landed after it ran: a removal that found nothing
/// before a slow associate landed, or a grant whose associate ran before this removal's
/// disassociate landed. An undo
/// that restores a grant's principal is followed by a restored-expiry step, which ends
/// it at that grant's `notAfter` when nothing else will. `latest` is the entry's
/// ([`latest_for_the_entry`]): a later removal of its IAM name in another spelling counts.
/// An undo also makes its change again behind a decision that asks for the same state,
/// when that decision was requested after the one it undid toward and is not the
/// request's own (below). `None`: keep confirming.
pub fn overtaken(
    progress: &Progress,
    own: &AccessDecision,
    latest: Option<&AccessDecision>,
    now: OffsetDateTime,
) -> Option<Decision> {
    let latest = latest?;
    let wanted = Presence::after(progress.operation());
    let desired = latest.desired(now);
    // This delivery's decision, or the same decision delivered again under another
    // message id (a redrive, an upstream's duplicate): not a later one.
    let own_decision = latest.is_same_decision_as(own);
    if desired == wanted {
        // An undo's change not shown behind a decision later than the one it undid
        // toward: the entry may have changed back after the undo's change (an associate
        // or disassociate that landed late), and that decision's own chain may have run
        // before it did, or may not remove this spelling (a removal of the name in
        // another spelling reports the entry and leaves it). The undo makes its change
        // again, toward that decision, as a change that was made (its dead letter and
        // an associate's restored expiry go by it); waiting would end in `timed-out`
        // with the entry left as it found it. Each such step follows a decision
        // requested later, so there are as many at most as decisions (and as the times
        // a grant's `notAfter` reads as not yet passed here and passed at the step's
        // fence, on clocks that disagree). A decision requested at the same instant is
        // not known to be later (the summary does not order it): waited for, as before.
        return match &progress.purpose {
            Purpose::Undo { superseded_by, .. }
                if superseded_by.is_followed_by(latest) && !own_decision =>
            {
                let mut again = lifecycle::undo(progress, latest, now);
                if let Decision::Continue { progress, .. } = &mut again {
                    progress.maybe_submitted = true;
                }
                Some(again)
            }
            _ => None,
        };
    }
    if own_decision {
        // The grant's own notAfter passed while its associate was confirming (a grant
        // carried on past it): its expiry removes the principal, so the list may never
        // show it. The associate was made; the expiry scheduled with the outcome revokes.
        let own_end_passed = progress.purpose == Purpose::Decision
            && progress.operation() == AssignmentAction::Create;
        return own_end_passed.then(|| done(Completion::Succeeded));
    }
    Some(lifecycle::undo(progress, latest, now))
}

#[cfg(test)]
mod tests {
    use super::shell_quoted;

    #[test]
    fn a_quoted_arn_is_one_shell_word_as_written() {
        assert_eq!(
            shell_quoted("arn:aws:iam:::role/Team*"),
            "'arn:aws:iam:::role/Team*'"
        );
        assert_eq!(
            shell_quoted("arn:aws:iam::111122223333:role/o'hara/R"),
            r"'arn:aws:iam::111122223333:role/o'\''hara/R'"
        );
    }
}
