//! The portfolio lifecycle (SPEC §9) under arbitrary Service Catalog answers: it never
//! reports a change the list does not show, never reads "not found" as done while the
//! principal is listed, and every confirm chain ends by the poll deadline.

use assignment_worker::aws_call::{CallError, ErrorKind};
use assignment_worker::ids::PortfolioId;
use assignment_worker::ledger::{AccessDecision, DecisionOrder, Intent};
use assignment_worker::lifecycle::{Completion, Decision, ErrorClass, MAX_DELAY_SECONDS, Policy};
use assignment_worker::portfolio::{
    AfterSubmit, ListResult, after_list, after_submit, before_associate,
    behind_a_later_removal_of_the_name, latest_for_the_entry, overtaken, settle_not_found,
};
use assignment_worker::portfolio_access::{ListedPrincipal, PortfolioPrincipalType};
use assignment_worker::progress::{DecisionStamp, Progress, Purpose, Resource, Stage, UndoReport};
use assignment_worker::request::AssignmentAction::{self, Create, Delete};
use proptest::prelude::*;
use time::{Duration, OffsetDateTime, macros::datetime};

const T0: OffsetDateTime = datetime!(2026-11-30 10:00:00 UTC);
const ROLE: &str = "arn:aws:iam::111122223333:role/TeamA";
/// The same role's name under another path: IAM names are unique whatever the path.
const ROLE_PATHED: &str = "arn:aws:iam::111122223333:role/dev/TeamA";

fn principal(kind: PortfolioPrincipalType, arn: &str) -> ListedPrincipal {
    ListedPrincipal {
        principal_type: kind,
        principal_arn: arn.to_owned(),
    }
}

fn portfolio() -> PortfolioId {
    PortfolioId::parse("port-abcdefghijklm").expect("a portfolio id")
}

fn start(direction: AssignmentAction) -> Progress {
    Progress::start_for(
        Resource::Portfolio,
        direction,
        T0,
        DecisionStamp {
            requested_at: T0,
            first_message_id: "m-1".to_owned(),
        },
    )
}

fn confirming(direction: AssignmentAction) -> Progress {
    match after_submit(
        &start(direction),
        &Ok(()),
        false,
        T0,
        &Policy::default(),
        0.5,
    ) {
        AfterSubmit::Decided(Decision::Continue { progress, .. }) => progress,
        other => panic!("a change the service took must be confirmed, got {other:?}"),
    }
}

fn kinds() -> impl Strategy<Value = PortfolioPrincipalType> {
    prop_oneof![
        Just(PortfolioPrincipalType::Iam),
        Just(PortfolioPrincipalType::IamPattern)
    ]
}

/// A portfolio's list: a few principals, the request's own ARN among them or not,
/// under either type.
fn lists() -> impl Strategy<Value = Vec<ListedPrincipal>> {
    let arns = prop_oneof![
        Just(ROLE.to_owned()),
        // The same role, in another case.
        Just(ROLE.to_lowercase()),
        // The same role, under another path.
        Just(ROLE_PATHED.to_owned()),
        Just("arn:aws:iam:::role/Team*".to_owned()),
        Just("arn:aws:iam::444455556666:role/Other".to_owned()),
    ];
    prop::collection::vec((kinds(), arns), 0..4)
        .prop_map(|items| items.into_iter().map(|(k, a)| principal(k, &a)).collect())
}

fn errors() -> impl Strategy<Value = CallError> {
    prop_oneof![
        Just((ErrorKind::RateLimited, "ThrottlingException")),
        Just((ErrorKind::ServerError, "InternalFailure")),
        Just((ErrorKind::Timeout, "Timeout")),
        Just((ErrorKind::ResourceNotFound, "ResourceNotFoundException")),
        Just((ErrorKind::Rejected, "InvalidParametersException")),
    ]
    .prop_map(|(kind, code)| CallError {
        kind,
        code: code.to_owned(),
        message: "from the test".to_owned(),
    })
}

fn list_results() -> impl Strategy<Value = ListResult> {
    prop_oneof![4 => lists().prop_map(Ok), 1 => errors().prop_map(Err)]
}

fn directions() -> impl Strategy<Value = AssignmentAction> {
    prop_oneof![Just(Create), Just(Delete)]
}

fn decided(seconds: i64, intent: Intent) -> AccessDecision {
    AccessDecision {
        order: DecisionOrder {
            requested_at: T0 + Duration::seconds(seconds),
            intent,
            correlation_id: None,
            first_message_id: format!("m-{seconds}"),
        },
        not_after: None,
    }
}

/// The removal of its own spelling a decision asks for: `Some(superseded_by)` when it
/// is an undo of the entry toward a later decision.
fn undone_toward(decision: Option<Decision>) -> Option<String> {
    match decision? {
        Decision::Continue {
            progress,
            delay_seconds: 0,
        } if progress.operation() == Delete && progress.stage == Stage::Submit => {
            match progress.purpose {
                Purpose::Undo { superseded_by, .. } => superseded_by.correlation_id,
                _ => None,
            }
        }
        _ => None,
    }
}

/// A grant yields to a later removal of its IAM name only: not to an earlier one, and a
/// removal is never stopped by it. A grant none of whose submits can have landed ends
/// with no call; one whose associate was made (its confirm sees it, or AWS answered the
/// associate of a principal already listed) or may have been (a retry after a timeout)
/// removes its own spelling first, which the removal of another spelling did not.
#[test]
fn a_grant_yields_to_a_later_removal_of_its_name_and_removes_what_it_may_have_added() {
    let grant = decided(0, Intent::Grant);
    let mut later_removal = decided(5, Intent::Revoke);
    later_removal.order.correlation_id = Some("CHG-removal".to_owned());
    let behind = |progress: &Progress, removal: &AccessDecision, made: bool| {
        behind_a_later_removal_of_the_name(progress, &grant, Some(removal), made, T0)
    };
    let superseded = behind(&start(Create), &later_removal, false);
    assert!(
        matches!(
            superseded,
            Some(Decision::Done {
                completion: Completion::Superseded(_),
                ..
            })
        ),
        "{superseded:?}"
    );
    let mut again = start(Create);
    again.maybe_submitted = true;
    assert_eq!(
        undone_toward(behind(&again, &later_removal, false)).as_deref(),
        Some("CHG-removal")
    );
    assert_eq!(
        undone_toward(behind(&start(Create), &later_removal, true)).as_deref(),
        Some("CHG-removal")
    );
    assert_eq!(
        undone_toward(behind(&confirming(Create), &later_removal, true)).as_deref(),
        Some("CHG-removal")
    );

    assert_eq!(
        behind(&start(Create), &decided(-5, Intent::Revoke), false),
        None
    );
    assert_eq!(
        behind(&confirming(Create), &decided(-5, Intent::Revoke), true),
        None
    );
    assert_eq!(
        behind_a_later_removal_of_the_name(&start(Create), &grant, None, true, T0),
        None
    );
    let removal = decided(0, Intent::Revoke);
    assert_eq!(
        behind_a_later_removal_of_the_name(
            &start(Delete),
            &removal,
            Some(&later_removal),
            false,
            T0
        ),
        None
    );
    // An expiry removes its spelling anyway; an undo goes by `latest_for_the_entry`.
    let mut expiry = start(Delete);
    expiry.purpose = Purpose::Expiry;
    assert_eq!(behind(&expiry, &later_removal, false), None);
}

/// An undo of an entry carries out a removal of its name decided after the entry's own
/// latest decision, and the entry's own latest decision otherwise.
#[test]
fn an_undo_carries_out_the_latest_of_its_entry_and_of_the_removals_of_its_name() {
    let grant = decided(0, Intent::Grant);
    let later_removal = decided(5, Intent::Revoke);
    assert_eq!(
        latest_for_the_entry(&grant, Some(&later_removal)),
        &later_removal
    );
    assert_eq!(latest_for_the_entry(&grant, None), &grant);
    let later_grant = decided(9, Intent::Grant);
    assert_eq!(
        latest_for_the_entry(&later_grant, Some(&later_removal)),
        &later_grant
    );
    let own_removal = decided(2, Intent::Revoke);
    assert_eq!(
        latest_for_the_entry(&own_removal, Some(&later_removal)),
        &later_removal
    );
    // The name's item holds removals only; anything else there is not followed.
    let named_grant = decided(7, Intent::Grant);
    assert_eq!(latest_for_the_entry(&grant, Some(&named_grant)), &grant);
}

/// A confirming grant whose own decision, delivered again under another message id, is
/// the ledger's latest, once its `notAfter` has passed: that is the grant's own end, not
/// a later decision. It ends `succeeded` (its expiry revokes), as it does when the latest
/// is the same delivery; before, it was undone and reported `superseded` by itself.
#[test]
fn a_grant_is_not_overtaken_by_another_delivery_of_itself() {
    let own = AccessDecision {
        order: DecisionOrder {
            requested_at: T0,
            intent: Intent::Grant,
            correlation_id: Some("CHG-1".to_owned()),
            first_message_id: "m-1".to_owned(),
        },
        not_after: Some(T0 + Duration::seconds(60)),
    };
    let again = AccessDecision {
        order: DecisionOrder {
            first_message_id: "m-2".to_owned(),
            ..own.order.clone()
        },
        ..own.clone()
    };
    let after_end = T0 + Duration::seconds(120);
    for latest in [&own, &again] {
        let decision = overtaken(&confirming(Create), &own, Some(latest), after_end);
        assert!(
            matches!(
                decision,
                Some(Decision::Done {
                    completion: Completion::Succeeded,
                    ..
                })
            ),
            "{decision:?} with {latest:?} the latest"
        );
    }
}

/// An undo whose confirm does not show its change, while the latest decision asks for
/// what the undo made: the entry changed back after the undo's change (an associate or
/// disassociate that landed late). Behind a decision requested after the one it undid
/// toward, whose chain may have run before the entry changed back, or may name another
/// spelling and leave it, it makes its change again, as a step whose change was made (so
/// that its dead letter says so, and an associate's restored expiry still follows).
/// Behind the same decision, an earlier one (the entry's own item, read when the name's
/// could not be), one requested at the same instant (which the undo's summary of its
/// decision cannot place before or after it), or the request's own decision (an expired
/// grant, when the envelope names an earlier one), it waits for the list as before.
/// Waiting behind the later decision ran out the poll deadline: a `timed-out` dead
/// letter, the entry left as the undo found it.
#[test]
fn an_undo_whose_entry_changes_back_makes_its_change_again_behind_a_later_decision() {
    let named = |seconds, id: &str, intent| AccessDecision {
        order: DecisionOrder {
            correlation_id: Some(id.to_owned()),
            ..decided(seconds, intent).order
        },
        not_after: None,
    };
    let own = decided(0, Intent::Grant);
    for (direction, intent) in [(Delete, Intent::Revoke), (Create, Intent::Grant)] {
        let undone_toward = named(5, "CHG-5", intent);
        let mut undoing = confirming(direction);
        undoing.purpose = Purpose::Undo {
            superseded_by: undone_toward.summary(),
            reports: UndoReport::Request,
        };
        let later = named(9, "CHG-9", intent);
        match overtaken(&undoing, &own, Some(&later), T0) {
            Some(Decision::Continue {
                progress,
                delay_seconds: 0,
            }) => {
                assert_eq!(progress.operation(), direction);
                assert_eq!(progress.stage, Stage::Submit);
                assert!(
                    progress.maybe_submitted,
                    "the change was made: {progress:?}"
                );
                assert_eq!(
                    progress.purpose,
                    Purpose::Undo {
                        superseded_by: later.summary(),
                        reports: UndoReport::Request
                    }
                );
            }
            other => panic!("{direction:?} behind {later:?}: {other:?}"),
        }
        let same_instant = named(5, "CHG-9", intent);
        for latest in [&undone_toward, &named(2, "CHG-2", intent), &same_instant] {
            assert_eq!(
                overtaken(&undoing, &own, Some(latest), T0),
                None,
                "{latest:?}"
            );
        }
    }
    // The request's own grant, ended, behind an undo whose envelope names an earlier
    // removal: not a later decision.
    let own_ended = AccessDecision {
        not_after: Some(T0),
        ..named(9, "CHG-own", Intent::Grant)
    };
    let mut undoing = confirming(Delete);
    undoing.purpose = Purpose::Undo {
        superseded_by: named(5, "CHG-5", Intent::Revoke).summary(),
        reports: UndoReport::Request,
    };
    assert_eq!(overtaken(&undoing, &own_ended, Some(&own_ended), T0), None);
    // A request's own removal confirming behind a later removal waits: that removal's
    // chain is the one to carry it out.
    assert_eq!(
        overtaken(
            &confirming(Delete),
            &named(1, "CHG-1", Intent::Revoke),
            Some(&named(9, "CHG-9", Intent::Revoke)),
            T0
        ),
        None
    );
}

proptest! {
    /// `succeeded` only when the list shows the change; never any other end but a
    /// dead letter, and the residual access is reported only for a removal.
    #[test]
    fn a_confirm_step_succeeds_only_on_what_the_list_shows(
        direction in directions(),
        kind in kinds(),
        listed in list_results(),
        elapsed in 0i64..2000,
    ) {
        let me = principal(kind, ROLE);
        let progress = confirming(direction);
        let settled = after_list(&progress, &me, &listed, T0 + Duration::seconds(elapsed), &Policy::default(), 0.5);
        match &settled.decision {
            Decision::Done { completion, .. } => {
                prop_assert_eq!(completion, &Completion::Succeeded);
                match &listed {
                    Ok(principals) => prop_assert_eq!(principals.contains(&me), direction == Create),
                    // Only a removal may end on a portfolio that is gone.
                    Err(error) => prop_assert!(error.kind == ErrorKind::ResourceNotFound && direction == Delete),
                }
                if direction == Create {
                    prop_assert!(settled.residual_access.is_none());
                }
            }
            Decision::Continue { progress: next, delay_seconds } => {
                prop_assert!(*delay_seconds <= MAX_DELAY_SECONDS);
                let confirming = matches!(next.stage, Stage::Confirm { .. });
                prop_assert!(confirming, "a confirm step continues as a confirm step");
            }
            Decision::DeadLetter(dead) => match &listed {
                Ok(principals) => {
                    // Gave up waiting: the list really did not show the change.
                    prop_assert_eq!(dead.class, ErrorClass::TimedOut);
                    prop_assert_ne!(principals.contains(&me), direction == Create);
                }
                // A list that failed for a while is given up on only at the deadline or
                // past the attempts; one refused for good, at once.
                Err(error) if error.kind.is_transient() => prop_assert!(
                    matches!(dead.class, ErrorClass::TimedOut | ErrorClass::Exhausted),
                    "{:?} after {:?}", dead.class, error.kind
                ),
                Err(error) => prop_assert_eq!(dead.class, ErrorClass::Permanent, "after {:?}", error.kind),
            },
        }
    }

    /// A removal request's disassociate answered ResourceNotFound is `already-satisfied`
    /// only when the ARN is not listed under any type, nor an `IAM` principal's name in
    /// another case or under another path (an expiry's, which removes only its own
    /// spelling: tests/portfolio.rs), an entry whose own latest decision is a grant
    /// decided after the removal aside (reported, never named to remove).
    #[test]
    fn not_found_is_done_only_when_the_arn_is_not_listed_at_all(
        kind in kinds(),
        listed in list_results(),
        granted_later_arn in prop::option::of(prop::sample::select(vec![
            ROLE.to_lowercase(),
            ROLE_PATHED.to_owned(),
        ])),
    ) {
        let me = principal(kind, ROLE);
        let iam = PortfolioPrincipalType::Iam;
        let granted_later: Vec<&ListedPrincipal> = listed
            .as_ref()
            .map(|principals| principals.iter()
                .filter(|p| p.principal_type == iam && Some(&p.principal_arn) == granted_later_arn.as_ref())
                .collect())
            .unwrap_or_default();
        let settled = settle_not_found(&start(Delete), &portfolio(), &me, &listed, &granted_later, &Policy::default(), 0.5);
        // The generator's other spellings of ROLE differ from it in case alone, or in path.
        let wanted = |p: &ListedPrincipal| granted_later.contains(&p);
        let in_another_case = |p: &ListedPrincipal| p.principal_type == iam
            && p.principal_arn != ROLE && p.principal_arn.eq_ignore_ascii_case(ROLE) && !wanted(p);
        let under_another_path = |p: &ListedPrincipal| p.principal_type == iam
            && p.principal_arn == ROLE_PATHED && !wanted(p);
        if let Decision::Done { completion, .. } = &settled.decision {
            prop_assert_eq!(completion, &Completion::AlreadySatisfied);
            let principals = listed.as_ref().expect("done only on a list");
            prop_assert!(principals.iter().all(|p| p.principal_arn != ROLE));
            prop_assert!(kind != iam || !principals.iter()
                .any(|p| in_another_case(p) || under_another_path(p)));
            let reported = settled.residual_access.clone().unwrap_or_default();
            prop_assert!(kind != iam || granted_later.iter().all(|p| reported.contains(p)));
        }
        if let Decision::DeadLetter(dead) = &settled.decision {
            for p in &granted_later {
                prop_assert!(!dead.message.split(' ').any(|word| word == p.principal_arn),
                    "{} named to remove: {}", p.principal_arn, dead.message);
            }
        }
        if let Ok(principals) = &listed
            && kind == iam
            && !principals.iter().any(|p| p.principal_arn == ROLE)
        {
            let expected = if principals.iter().any(in_another_case) {
                Some("PrincipalArnCaseMismatch")
            } else if principals.iter().any(under_another_path) {
                Some("PrincipalArnPathMismatch")
            } else {
                None
            };
            if let Some(expected) = expected {
                let Decision::DeadLetter(dead) = &settled.decision else {
                    panic!("the same name listed otherwise must be a mismatch, got {settled:?}");
                };
                prop_assert_eq!(dead.code.as_str(), expected);
                // Every entry that may keep the access is named, none left unreported.
                for other in principals.iter().filter(|p| in_another_case(p) || under_another_path(p)) {
                    prop_assert!(
                        dead.message.split(' ').any(|word| word == other.principal_arn),
                        "{} unnamed: {}", other.principal_arn, dead.message
                    );
                }
            }
        }
        if let Ok(principals) = &listed
            && principals.iter().any(|p| p.principal_arn == ROLE && p.principal_type != kind)
            && !principals.contains(&me)
        {
            let Decision::DeadLetter(dead) = &settled.decision else {
                panic!("listed under the other type must be a mismatch, got {settled:?}");
            };
            prop_assert_eq!(dead.code.as_str(), "PrincipalTypeMismatch");
        }
    }

    /// An associate follows every list that reads, the principal listed (under its own
    /// type) or not; only a list that fails stops it.
    #[test]
    fn an_associate_follows_every_list_that_reads(
        kind in kinds(),
        listed in list_results(),
    ) {
        let me = principal(kind, ROLE);
        match before_associate(&start(Create), &me, &listed, &Policy::default(), 0.5) {
            Ok(shown) => prop_assert_eq!(Ok(shown), listed.map(|p| p.contains(&me))),
            Err(_) => prop_assert!(listed.is_err()),
        }
    }

    /// However long the list lags, the chain of confirm steps ends by the deadline:
    /// the waits add up to no more than it.
    #[test]
    fn a_lagging_list_times_out_at_the_deadline(
        direction in directions(),
        deadline in 1u32..3000,
        initial in 1u32..10,
        max in 10u32..120,
    ) {
        let policy = Policy {
            poll_deadline_seconds: deadline,
            poll_initial_delay_seconds: initial,
            poll_max_delay_seconds: max,
            ..Policy::default()
        };
        let me = principal(PortfolioPrincipalType::Iam, ROLE);
        // The list never shows the change.
        let stale: ListResult = Ok(if direction == Create { vec![] } else { vec![me.clone()] });
        let mut progress = confirming(direction);
        let mut now = T0;
        for _ in 0..10_000 {
            match after_list(&progress, &me, &stale, now, &policy, 0.5).decision {
                Decision::Continue { progress: next, delay_seconds } => {
                    prop_assert!(delay_seconds > 0);
                    now += Duration::seconds(i64::from(delay_seconds));
                    progress = next;
                }
                Decision::DeadLetter(dead) => {
                    prop_assert_eq!(dead.class, ErrorClass::TimedOut);
                    prop_assert!(now - T0 <= Duration::seconds(i64::from(deadline)));
                    return Ok(());
                }
                other => panic!("a stale list cannot end a change: {other:?}"),
            }
        }
        prop_assert!(false, "the confirm chain never ended");
    }
}

/// The associate of a principal listed before it is `already-satisfied`, at once.
#[test]
fn an_associate_of_a_listed_principal_is_already_satisfied() {
    let answer = after_submit(&start(Create), &Ok(()), true, T0, &Policy::default(), 0.5);
    assert!(
        matches!(
            answer,
            AfterSubmit::Decided(Decision::Done {
                completion: Completion::AlreadySatisfied,
                ..
            })
        ),
        "{answer:?}"
    );
}
