//! The ledger (SPEC §11): the latest decision for each assignment, so that whatever
//! order SQS delivers, retries or duplicates requests in, the access ends as the latest
//! decision asked. This module holds the decisions and their order (pure) and the port
//! the worker reaches the ledger through.

use std::cmp::Ordering;
use std::future::Future;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::aws_call::CallError;
use crate::messages::rfc3339;
use crate::portfolio_access::{iam_name_folded, iam_principal_folded};
use crate::progress::DecisionStamp;
use crate::request::{
    Assignment, AssignmentAction, PortfolioChange, PortfolioPrincipal, Request, Target,
};

/// The item's partition key: one per assignment (instance, account, permission set,
/// principal type, principal id). ARNs and ids never contain `|`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LedgerKey(String);

impl LedgerKey {
    /// The ids in lower case: SPEC §2's patterns take them in either case, and AWS's
    /// pages do not say whether Identity Center tells `ps-1A2B…` from `ps-1a2b…`. If it
    /// does not, two spellings are one assignment, and a grant in one must not land
    /// after a later revoke in the other; if it does, the id AWS issued is in lower case
    /// and the other spelling names nothing, so ordering the two together costs nothing.
    ///
    /// Only the ids are folded: the rest of the key (`permissionSet/`, `USER`) is as the
    /// tables deployed before wrote it, so their items keep their keys.
    pub fn assignment(assignment: &Assignment) -> Self {
        Self(format!(
            "assignment|{}|{}|{}|{}|{}",
            ids_folded(assignment.instance.as_str()),
            assignment.account,
            ids_folded(assignment.permission_set.as_str()),
            assignment.principal_type.as_str(),
            assignment.principal_id.as_str().to_ascii_lowercase()
        ))
    }

    /// One per portfolio principal (portfolio, principal type, principal ARN). The ARN
    /// comes last, so a `|` in an IAM path cannot make two keys collide. The portfolio
    /// id is in lower case, as the ids are in [`Self::assignment`].
    pub fn portfolio(change: &PortfolioChange) -> Self {
        Self(format!(
            "portfolio|{}|{}|{}",
            change.portfolio.as_str().to_ascii_lowercase(),
            change.principal.principal_type().as_str(),
            change.principal.arn()
        ))
    }

    /// For an `IAM` portfolio principal, the item that holds the latest removal of its
    /// IAM name in any spelling (the name's case and path aside,
    /// [`same_iam_principal`]): Service Catalog lists each spelling apart, each with its
    /// own item above, but IAM names one user, group or role by all of them, so a grant
    /// spelled one way must not outlive a later removal spelled another. A removal
    /// records itself here before its submit; a grant reads it before each submit and
    /// once its confirm sees its entry
    /// ([`crate::portfolio::behind_a_later_removal_of_the_name`]); an undo, a confirm
    /// that does not see its change, and a grant about to be dead-lettered after its
    /// associate may have landed read it when the entry's own latest decision asks for
    /// access ([`crate::portfolio::latest_for_the_entry`]). Each reads and writes
    /// [`Self::iam_name_with_path`] too.
    ///
    /// [`same_iam_principal`]: crate::portfolio_access::same_iam_principal
    pub fn iam_name(change: &PortfolioChange) -> Option<Self> {
        let PortfolioPrincipal::Iam(arn) = &change.principal else {
            return None;
        };
        let arn = arn.as_str();
        Some(Self::of_iam_name(
            change,
            &iam_principal_folded(arn).unwrap_or_else(|| iam_name_folded(arn)),
        ))
    }

    /// The item of [`Self::iam_name`] as builds before the path was set aside keyed it,
    /// with the path as written (the name in lower case): `None` when that is the same
    /// item, for an ARN with no path. Removals recorded there by such a build (in
    /// flight, or in a dead letter to redrive) still stop a grant, and a build rolled
    /// back to still finds the removals of its own path, so both items are read and
    /// written.
    pub fn iam_name_with_path(change: &PortfolioChange) -> Option<Self> {
        let with_path = match &change.principal {
            PortfolioPrincipal::Iam(arn) => {
                Self::of_iam_name(change, &iam_name_folded(arn.as_str()))
            }
            PortfolioPrincipal::IamPattern(_) => return None,
        };
        (Some(&with_path) != Self::iam_name(change).as_ref()).then_some(with_path)
    }

    fn of_iam_name(change: &PortfolioChange, folded_arn: &str) -> Self {
        Self(format!(
            "portfolio-iam-name|{}|{folded_arn}",
            change.portfolio.as_str().to_ascii_lowercase(),
        ))
    }

    pub fn of(target: Target<'_>) -> Self {
        match target {
            Target::Assignment(assignment) => Self::assignment(assignment),
            Target::Portfolio(change) => Self::portfolio(change),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An instance or permission set ARN with the ids after its resource type in lower case
/// (`arn:aws:sso:::permissionSet/ssoins-…/ps-…`): what precedes the first `/` is
/// written in one case only.
fn ids_folded(arn: &str) -> String {
    match arn.split_once('/') {
        Some((resource_type, ids)) => format!("{resource_type}/{}", ids.to_ascii_lowercase()),
        None => arn.to_owned(),
    }
}

/// What a decision asks of the access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intent {
    Grant,
    Revoke,
}

impl Intent {
    pub fn of(action: AssignmentAction) -> Self {
        match action {
            AssignmentAction::Create => Intent::Grant,
            AssignmentAction::Delete => Intent::Revoke,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Grant => "grant",
            Intent::Revoke => "revoke",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "grant" => Some(Intent::Grant),
            "revoke" => Some(Intent::Revoke),
            _ => None,
        }
    }
}

/// Whether an assignment exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Presence {
    Present,
    Absent,
}

impl Presence {
    /// What carrying out `action` leaves.
    pub fn after(action: AssignmentAction) -> Self {
        match action {
            AssignmentAction::Create => Presence::Present,
            AssignmentAction::Delete => Presence::Absent,
        }
    }

    /// The operation that brings the access to this presence.
    pub fn action(self) -> AssignmentAction {
        match self {
            Presence::Present => AssignmentAction::Create,
            Presence::Absent => AssignmentAction::Delete,
        }
    }
}

/// What the worker knows of the access, recorded beside the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordedState {
    /// Claimed, not yet confirmed.
    Pending,
    Present,
    Absent,
    /// A grant whose create AWS answered FAILED at a poll: no access, and the chain
    /// that carried it has ended (dead-lettered `failed`). A claim of the same decision
    /// (a redrive) starts it again.
    Failed,
    /// A grant its expiry took back at `notAfter` after it was recorded `Present`: no
    /// access, as `Absent`; unlike an `Absent` grant (refused as `expired`, or taken back
    /// after a dead letter), one that was carried out and reported done. Stored as
    /// `absent` with `endedByExpiry`, which builds before it ignore: they read `absent`,
    /// as they wrote it.
    Revoked,
}

impl RecordedState {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(RecordedState::Pending),
            "present" => Some(RecordedState::Present),
            "absent" => Some(RecordedState::Absent),
            "failed" => Some(RecordedState::Failed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RecordedState::Pending => "pending",
            RecordedState::Present => "present",
            RecordedState::Absent => "absent",
            RecordedState::Failed => "failed",
            RecordedState::Revoked => "revoked",
        }
    }

    /// Where the access stands, when the state says.
    pub fn access(self) -> Option<Presence> {
        match self {
            RecordedState::Present => Some(Presence::Present),
            RecordedState::Absent | RecordedState::Revoked => Some(Presence::Absent),
            RecordedState::Pending | RecordedState::Failed => None,
        }
    }
}

impl From<Presence> for RecordedState {
    fn from(presence: Presence) -> Self {
        match presence {
            Presence::Present => RecordedState::Present,
            Presence::Absent => RecordedState::Absent,
        }
    }
}

/// Where a decision stands among the others for the same assignment: by `requestedAt`,
/// then a revoke before a grant (the safe side), then the greater correlation id, then
/// the greater message id of its first delivery (SPEC §11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionOrder {
    pub requested_at: OffsetDateTime,
    pub intent: Intent,
    pub correlation_id: Option<String>,
    pub first_message_id: String,
}

impl DecisionOrder {
    /// The order as one string whose byte order is the decision order, so DynamoDB can
    /// compare it in a condition. Parts are joined by U+0001, which sorts below every
    /// character a correlation id or message id may hold (they are printable), so a
    /// shorter id sorts before a longer one that starts the same way.
    pub fn key(&self) -> String {
        format!("{}{}", self.key_before_message_id(), self.first_message_id)
    }

    /// The key up to the first message id: what every delivery of one decision shares.
    pub fn key_before_message_id(&self) -> String {
        // Past year 9999 in UTC (an envelope's requestedAt, written in a negative
        // offset) keys as the last instant there is.
        let utc = self
            .requested_at
            .checked_to_offset(time::UtcOffset::UTC)
            .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc());
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z\u{1}{}\u{1}{}\u{1}",
            utc.year(),
            u8::from(utc.month()),
            utc.day(),
            utc.hour(),
            utc.minute(),
            utc.second(),
            utc.nanosecond(),
            match self.intent {
                Intent::Grant => '0',
                Intent::Revoke => '1',
            },
            self.correlation_id.as_deref().unwrap_or_default(),
        )
    }
}

impl Ord for DecisionOrder {
    fn cmp(&self, other: &Self) -> Ordering {
        let rank = |intent: Intent| match intent {
            Intent::Grant => 0,
            Intent::Revoke => 1,
        };
        self.requested_at
            .cmp(&other.requested_at)
            .then(rank(self.intent).cmp(&rank(other.intent)))
            .then(
                self.correlation_id
                    .as_deref()
                    .unwrap_or_default()
                    .cmp(other.correlation_id.as_deref().unwrap_or_default()),
            )
            .then(self.first_message_id.cmp(&other.first_message_id))
    }
}

impl PartialOrd for DecisionOrder {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One decision about an assignment, as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessDecision {
    pub order: DecisionOrder,
    /// A grant's end; ignored on a revoke.
    pub not_after: Option<OffsetDateTime>,
}

impl AccessDecision {
    /// The decision `request` makes, in the order its `stamp` gives it (SPEC §11); a
    /// revoke has no `notAfter`.
    pub fn of_request(request: &Request, stamp: &DecisionStamp) -> Self {
        let (action, _) = request.target();
        AccessDecision {
            order: DecisionOrder {
                requested_at: stamp.requested_at,
                intent: Intent::of(action),
                correlation_id: request
                    .correlation_id
                    .as_ref()
                    .map(|id| id.as_str().to_owned()),
                first_message_id: stamp.first_message_id.clone(),
            },
            not_after: request
                .not_after
                .filter(|_| action == AssignmentAction::Create),
        }
    }

    /// The presence this decision asks for at `now`: a grant past its `notAfter` asks
    /// for none.
    pub fn desired(&self, now: OffsetDateTime) -> Presence {
        match (self.order.intent, self.not_after) {
            (Intent::Revoke, _) => Presence::Absent,
            (Intent::Grant, Some(not_after)) if now >= not_after => Presence::Absent,
            (Intent::Grant, _) => Presence::Present,
        }
    }

    /// The same decision, under this delivery's message id or another's.
    pub fn is_same_decision_as(&self, other: &AccessDecision) -> bool {
        self.order == other.order || self.is_another_delivery_of(other)
    }

    /// Whether `self` is `other` delivered under another first message: a redrive of a
    /// dead letter (the request alone, sent again), or an upstream sending one decision
    /// twice. SQS gives each delivery its own random message id, which would place the
    /// same decision before or after itself at random. Two decisions alike in all but
    /// the message id ask for the same thing, so it does not matter which one they are.
    pub fn is_another_delivery_of(&self, other: &AccessDecision) -> bool {
        let (mine, theirs) = (&self.order, &other.order);
        mine.requested_at == theirs.requested_at
            && mine.intent == theirs.intent
            && mine.correlation_id == theirs.correlation_id
            && self.not_after == other.not_after
            && mine.first_message_id != theirs.first_message_id
    }

    /// The `supersededBy` of an outcome event.
    pub fn summary(&self) -> DecisionSummary {
        DecisionSummary {
            correlation_id: self.order.correlation_id.clone(),
            requested_at: rfc3339(self.order.requested_at),
        }
    }
}

/// A later decision as an outcome event names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecisionSummary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    pub requested_at: String,
}

impl DecisionSummary {
    /// Whether `decision` was requested after the decision this names, and so is later
    /// in the ledger's order. One requested at the same instant may be ordered before
    /// or after it (by intent, then correlation id and message id; this holds no intent
    /// or message id): no. Decoding an envelope refuses a time that does not parse;
    /// should one reach here all the same, no.
    pub fn is_followed_by(&self, decision: &AccessDecision) -> bool {
        OffsetDateTime::parse(&self.requested_at, &Rfc3339)
            .is_ok_and(|at| decision.order.requested_at > at)
    }
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimAnswer {
    /// This decision is the latest recorded (it may have been already).
    Claimed,
    /// A later decision is recorded.
    Superseded(AccessDecision),
}

/// What recording a state found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordAnswer {
    /// Recorded: the decision was still the one named.
    Recorded,
    /// Not recorded: the latest decision is another one (or none is recorded).
    NotLatest(Option<AccessDecision>),
}

pub type LedgerResult<T> = Result<T, CallError>;

/// The ledger as the worker uses it. Every call is strongly consistent.
pub trait Ledger: Send + Sync {
    /// Makes `decision` the latest for `key` unless a later one is recorded. A new one
    /// starts in `state`; a decision equal to the recorded one claims again and keeps
    /// the state it reached, or, while that is pending, takes `state`. (`state` is
    /// pending, or absent for a grant refused as `expired`: claim and state in one
    /// write, so no worker stopping between two writes, nor an earlier attempt's
    /// claim, leaves a pending claim that a redelivery reads as a create it may have
    /// made.)
    fn claim(
        &self,
        key: &LedgerKey,
        decision: &AccessDecision,
        state: RecordedState,
        now: OffsetDateTime,
    ) -> impl Future<Output = LedgerResult<ClaimAnswer>> + Send;

    /// The latest decision recorded for `key`, if any.
    fn latest(
        &self,
        key: &LedgerKey,
    ) -> impl Future<Output = LedgerResult<Option<AccessDecision>>> + Send;

    /// The latest decision for `key` with the state recorded beside it. The default
    /// knows no state (pending), for ledgers that do not keep one.
    fn latest_with_state(
        &self,
        key: &LedgerKey,
    ) -> impl Future<Output = LedgerResult<Option<(AccessDecision, RecordedState)>>> + Send {
        async move {
            self.latest(key)
                .await
                .map(|latest| latest.map(|decision| (decision, RecordedState::Pending)))
        }
    }

    /// Records `state` only while the latest decision is the one ordered `order`.
    /// `Revoked` (an expiry's) only over `Present` or `Revoked` too: over any other state
    /// the grant was never recorded carried out, nothing is written, and the answer is
    /// `NotLatest` naming the decision ordered `order` itself.
    fn record(
        &self,
        key: &LedgerKey,
        order: &DecisionOrder,
        state: RecordedState,
        operation_request_id: Option<&str>,
        now: OffsetDateTime,
    ) -> impl Future<Output = LedgerResult<RecordAnswer>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn order(
        seconds: i64,
        intent: Intent,
        correlation: Option<&str>,
        message: &str,
    ) -> DecisionOrder {
        DecisionOrder {
            requested_at: datetime!(2026-11-30 10:00:00 UTC) + time::Duration::seconds(seconds),
            intent,
            correlation_id: correlation.map(str::to_owned),
            first_message_id: message.to_owned(),
        }
    }

    #[test]
    fn the_key_sorts_as_the_decision_order() {
        let orders = [
            order(-1, Intent::Revoke, Some("Z"), "m"),
            order(0, Intent::Grant, None, "m"),
            order(0, Intent::Grant, Some("A"), "a"),
            order(0, Intent::Grant, Some("A"), "b"),
            order(0, Intent::Grant, Some("A "), "a"),
            order(0, Intent::Grant, Some("AB"), "a"),
            order(0, Intent::Revoke, None, "a"),
            order(0, Intent::Revoke, Some("A"), "a"),
            order(1, Intent::Grant, None, "a"),
        ];
        for pair in orders.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
            assert!(pair[0].key() < pair[1].key(), "{pair:?}");
        }
        let fraction = DecisionOrder {
            requested_at: datetime!(2026-11-30 10:00:00.5 +01:00),
            ..order(0, Intent::Grant, None, "a")
        };
        assert!(fraction.key().starts_with("2026-11-30T09:00:00.500000000Z"));
    }

    /// A requestedAt in year 9999 whose UTC form is past it (an envelope may carry one:
    /// only a decision's first submit refuses a future requestedAt) still has a key, the
    /// greatest, instead of a panic.
    #[test]
    fn a_requested_at_past_year_9999_in_utc_keys_as_the_last_instant() {
        let late = DecisionOrder {
            requested_at: datetime!(9999-12-31 23:00:00 -05:00),
            ..order(0, Intent::Revoke, None, "m")
        };
        let earlier = DecisionOrder {
            requested_at: datetime!(9999-12-31 22:00:00 UTC),
            ..order(0, Intent::Revoke, None, "m")
        };
        assert!(late.key().starts_with("9999-12-31T23:59:59.999999999Z"));
        assert!(earlier.key() < late.key());
    }

    fn assignment_key(instance_id: &str, permission_set_id: &str, principal_id: &str) -> String {
        let body = serde_json::json!({
            "action": "create",
            "instanceArn": format!("arn:aws:sso:::instance/{instance_id}"),
            "permissionSetArn":
                format!("arn:aws:sso:::permissionSet/{instance_id}/{permission_set_id}"),
            "targetId": "111122223333",
            "principalType": "GROUP",
            "principalId": principal_id,
        });
        let request = crate::request::parse_request(&body.to_string()).expect("a request");
        let (_, assignment) = request.assignment().expect("an assignment");
        LedgerKey::assignment(assignment).as_str().to_owned()
    }

    /// Items written before ids were folded keep their keys: the key of ids as Identity
    /// Center writes them is as it was.
    #[test]
    fn an_assignment_key_holds_its_ids_in_lower_case_and_the_rest_as_written() {
        let as_issued = assignment_key(
            "ssoins-722326ba6a8a6d40",
            "ps-1a2b3c4d5e6f7a8b",
            "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10",
        );
        assert_eq!(
            as_issued,
            "assignment|arn:aws:sso:::instance/ssoins-722326ba6a8a6d40|111122223333|\
             arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b|GROUP|\
             9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10"
        );
        let in_capitals = assignment_key(
            "ssoins-722326BA6A8A6D40",
            "ps-1A2B3C4D5E6F7A8B",
            "9067a1b2c3-4C4F4A62-1E0B-4B4B-9C3B-1B6C5A3E7F10",
        );
        assert_eq!(in_capitals, as_issued);
    }

    #[test]
    fn a_portfolio_key_holds_its_portfolio_id_in_lower_case_and_the_rest_as_written() {
        let key = |portfolio: &str| {
            let body = serde_json::json!({
                "action": "associate-portfolio-principal",
                "portfolioId": portfolio,
                "principalType": "IAM",
                "principalArn": "arn:aws:iam::111122223333:role/TeamA-dev",
            });
            let request = crate::request::parse_request(&body.to_string()).expect("a request");
            let crate::request::Target::Portfolio(change) = request.target().1 else {
                panic!("a portfolio change");
            };
            (
                LedgerKey::portfolio(change).as_str().to_owned(),
                LedgerKey::iam_name(change).map(|key| key.as_str().to_owned()),
            )
        };
        let as_issued = key("port-abcdefghijklm");
        assert_eq!(
            as_issued,
            (
                "portfolio|port-abcdefghijklm|IAM|arn:aws:iam::111122223333:role/TeamA-dev"
                    .to_owned(),
                Some(
                    "portfolio-iam-name|port-abcdefghijklm|arn:aws:iam::111122223333:role/teama-dev"
                        .to_owned()
                )
            )
        );
        assert_eq!(key("PORT-ABCDEFGHIJKLM"), as_issued);
    }

    #[test]
    fn the_name_item_sets_the_path_aside_and_an_older_builds_key_keeps_it() {
        let keys = |arn: &str| {
            let body = serde_json::json!({
                "action": "disassociate-portfolio-principal",
                "portfolioId": "port-abcdefghijklm",
                "principalType": "IAM",
                "principalArn": arn,
            });
            let request = crate::request::parse_request(&body.to_string()).expect("a request");
            let crate::request::Target::Portfolio(change) = request.target().1 else {
                panic!("a portfolio change");
            };
            let text = |key: Option<LedgerKey>| key.map(|key| key.as_str().to_owned());
            (
                text(LedgerKey::iam_name(change)),
                text(LedgerKey::iam_name_with_path(change)),
            )
        };
        let item = |resource: &str| {
            Some(format!(
                "portfolio-iam-name|port-abcdefghijklm|arn:aws:iam::111122223333:{resource}"
            ))
        };
        assert_eq!(
            keys("arn:aws:iam::111122223333:role/dev/TeamA-dev"),
            (item("role/teama-dev"), item("role/dev/teama-dev"))
        );
        assert_eq!(
            keys("arn:aws:iam::111122223333:role/teama-dev"),
            (item("role/teama-dev"), None)
        );
        assert_eq!(
            keys("arn:aws:iam::111122223333:user/a:b/Dev/Ann"),
            (item("user/ann"), item("user/a:b/Dev/ann"))
        );
    }

    #[test]
    fn a_grant_past_its_end_asks_for_no_access() {
        let now = datetime!(2026-11-30 10:00:00 UTC);
        let grant = |not_after| AccessDecision {
            order: order(0, Intent::Grant, None, "m"),
            not_after,
        };
        assert_eq!(grant(None).desired(now), Presence::Present);
        assert_eq!(
            grant(Some(now + time::Duration::seconds(1))).desired(now),
            Presence::Present
        );
        assert_eq!(grant(Some(now)).desired(now), Presence::Absent);
        let revoke = AccessDecision {
            order: order(0, Intent::Revoke, None, "m"),
            not_after: Some(now + time::Duration::hours(1)),
        };
        assert_eq!(revoke.desired(now), Presence::Absent);
    }
}
