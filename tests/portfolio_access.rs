//! Pattern matching and residual access (SPEC §9), table-driven.

use assignment_worker::portfolio_access::{
    ListedPrincipal, PortfolioPrincipalType, pattern_covers, patterns_overlap, residual_access,
};
use proptest::prelude::*;

#[test]
fn patterns_match_by_aws_rules() {
    let rows: &[(&str, &str, bool)] = &[
        // No wildcard: the same resource in any account.
        (
            "arn:aws:iam:::role/Admin",
            "arn:aws:iam::111122223333:role/Admin",
            true,
        ),
        (
            "arn:aws:iam:::role/Admin",
            "arn:aws:iam::444455556666:role/Admin",
            true,
        ),
        (
            "arn:aws:iam:::role/Admin",
            "arn:aws:iam::111122223333:role/Admins",
            false,
        ),
        (
            "arn:aws:iam:::role/Admin",
            "arn:aws:iam::111122223333:user/Admin",
            false,
        ),
        // `*`: any run, including none and including `/`.
        (
            "arn:aws:iam:::role/Team*",
            "arn:aws:iam::111122223333:role/Team",
            true,
        ),
        (
            "arn:aws:iam:::role/Team*",
            "arn:aws:iam::111122223333:role/TeamA-dev",
            true,
        ),
        // The path and name in any case: IAM takes a name in any case, so the ARN a
        // request spells may not be the role's own.
        (
            "arn:aws:iam:::role/Team*",
            "arn:aws:iam::111122223333:role/team-a",
            true,
        ),
        (
            "arn:aws:iam:::role/Team*",
            "arn:aws:iam::111122223333:ROLE/TeamA",
            false,
        ),
        (
            "arn:aws:iam:::role/*",
            "arn:aws:iam::111122223333:role/eng/ops/Deployer",
            true,
        ),
        (
            "arn:aws:iam:::role/*/Deployer",
            "arn:aws:iam::111122223333:role/eng/ops/Deployer",
            true,
        ),
        (
            "arn:aws:iam:::role/*/Deployer",
            "arn:aws:iam::111122223333:role/Deployer",
            false,
        ),
        (
            "arn:aws:iam:::role/a*b*c",
            "arn:aws:iam::111122223333:role/aXXbYYc",
            true,
        ),
        (
            "arn:aws:iam:::role/a*b*c",
            "arn:aws:iam::111122223333:role/aXXcYYb",
            false,
        ),
        // `?`: zero or one character.
        (
            "arn:aws:iam:::user/bob?",
            "arn:aws:iam::111122223333:user/bob",
            true,
        ),
        (
            "arn:aws:iam:::user/bob?",
            "arn:aws:iam::111122223333:user/bob1",
            true,
        ),
        (
            "arn:aws:iam:::user/bob?",
            "arn:aws:iam::111122223333:user/bob12",
            false,
        ),
        (
            "arn:aws:iam:::user/b?b",
            "arn:aws:iam::111122223333:user/bb",
            true,
        ),
        (
            "arn:aws:iam:::user/b?b",
            "arn:aws:iam::111122223333:user/bob",
            true,
        ),
        (
            "arn:aws:iam:::role/*/Name_?",
            "arn:aws:iam::111122223333:role/p/Name_",
            true,
        ),
        // Paths are part of the resource.
        (
            "arn:aws:iam:::role/Admin",
            "arn:aws:iam::111122223333:role/path/Admin",
            false,
        ),
        (
            "arn:aws:iam:::role/path/Admin",
            "arn:aws:iam::111122223333:role/path/Admin",
            true,
        ),
        // Partitions must agree.
        (
            "arn:aws:iam:::role/Admin",
            "arn:aws-cn:iam::111122223333:role/Admin",
            false,
        ),
        (
            "arn:aws-us-gov:iam:::role/A*",
            "arn:aws-us-gov:iam::111122223333:role/Ab",
            true,
        ),
        // Not IAM, or not an ARN.
        (
            "arn:aws:sts:::assumed-role/*",
            "arn:aws:sts::111122223333:assumed-role/A/b",
            false,
        ),
        ("role/*", "arn:aws:iam::111122223333:role/A", false),
        ("arn:aws:iam:::role/*", "not-an-arn", false),
    ];
    let wrong: Vec<String> = rows
        .iter()
        .filter(|(pattern, arn, expected)| pattern_covers(pattern, arn) != *expected)
        .map(|(pattern, arn, expected)| format!("{pattern} vs {arn}: expected {expected}"))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

fn iam(arn: &str) -> ListedPrincipal {
    ListedPrincipal {
        principal_type: PortfolioPrincipalType::Iam,
        principal_arn: arn.to_owned(),
    }
}

fn pattern(arn: &str) -> ListedPrincipal {
    ListedPrincipal {
        principal_type: PortfolioPrincipalType::IamPattern,
        principal_arn: arn.to_owned(),
    }
}

#[test]
fn a_removed_iam_principal_keeps_access_through_each_matching_pattern() {
    let removed = iam("arn:aws:iam::111122223333:role/TeamA-dev");
    let remaining = [
        pattern("arn:aws:iam:::role/Team*"),
        pattern("arn:aws:iam:::role/Other*"),
        pattern("arn:aws:iam:::role/*-dev"),
        iam("arn:aws:iam::111122223333:role/TeamB"),
    ];
    assert_eq!(
        residual_access(&removed, &remaining),
        vec![
            pattern("arn:aws:iam:::role/Team*"),
            pattern("arn:aws:iam:::role/*-dev")
        ]
    );
}

#[test]
fn a_removed_pattern_leaves_the_iam_principals_it_covered() {
    let removed = pattern("arn:aws:iam:::role/Team*");
    let remaining = [
        iam("arn:aws:iam::111122223333:role/TeamA"),
        iam("arn:aws:iam::444455556666:role/TeamB"),
        iam("arn:aws:iam::111122223333:role/Finance"),
        pattern("arn:aws:iam:::role/Fin*"),
    ];
    assert_eq!(
        residual_access(&removed, &remaining),
        vec![
            iam("arn:aws:iam::111122223333:role/TeamA"),
            iam("arn:aws:iam::444455556666:role/TeamB")
        ]
    );
}

/// A removed pattern's principals that another pattern also admits keep their access
/// through it: that pattern is reported whenever some principal matches both.
#[test]
fn a_removed_pattern_leaves_the_patterns_that_admit_some_of_its_principals() {
    let removed = pattern("arn:aws:iam:::role/TeamA-*");
    let remaining = [
        // Everyone the removed pattern admitted.
        pattern("arn:aws:iam:::role/Team*"),
        // Some of them: role/TeamA-dev.
        pattern("arn:aws:iam:::role/*-dev"),
        // role/TeamA- itself, `?` standing for nothing.
        pattern("arn:aws:iam:::role/TeamA-?"),
        // None of them.
        pattern("arn:aws:iam:::role/TeamB*"),
        pattern("arn:aws:iam:::user/TeamA-*"),
        pattern("arn:aws-cn:iam:::role/TeamA-*"),
        pattern("arn:aws:iam:::role/Team"),
    ];
    assert_eq!(
        residual_access(&removed, &remaining),
        vec![
            pattern("arn:aws:iam:::role/Team*"),
            pattern("arn:aws:iam:::role/*-dev"),
            pattern("arn:aws:iam:::role/TeamA-?"),
        ]
    );
}

/// IAM does not tell names apart by case: `role/TeamA` and `role/teama` are one role.
/// Removing one spelling while the other stays listed leaves that role its access
/// through the entry, whichever spelling Service Catalog matches by.
#[test]
fn a_removed_role_keeps_access_through_its_name_listed_in_another_case() {
    let removed = iam("arn:aws:iam::111122223333:role/teama-dev");
    let remaining = [
        iam("arn:aws:iam::111122223333:role/TeamA-dev"),
        // Another account's role of that name is another role.
        iam("arn:aws:iam::444455556666:role/TeamA-dev"),
        iam("arn:aws:iam::111122223333:role/TeamA-prod"),
        // A user is not a role, and the resource type is compared as written.
        iam("arn:aws:iam::111122223333:user/TeamA-dev"),
        iam("arn:aws:iam::111122223333:ROLE/TeamA-dev"),
    ];
    assert_eq!(
        residual_access(&removed, &remaining),
        vec![iam("arn:aws:iam::111122223333:role/TeamA-dev")]
    );
}

/// IAM names are unique within an account whatever the path: `role/TeamA-dev` and
/// `role/dev/TeamA-dev` name one role (at most one of them exists at a time). Removing
/// one while the other stays listed may leave that role its access through the entry.
#[test]
fn a_removed_role_keeps_access_through_its_name_listed_under_another_path() {
    let removed = iam("arn:aws:iam::111122223333:role/TeamA-dev");
    let remaining = [
        iam("arn:aws:iam::111122223333:role/dev/TeamA-dev"),
        iam("arn:aws:iam::111122223333:role/ops/eu/teama-DEV"),
        // Another name, another account, another resource type.
        iam("arn:aws:iam::111122223333:role/dev/TeamA-dev2"),
        iam("arn:aws:iam::111122223333:role/TeamA-dev/ops"),
        iam("arn:aws:iam::444455556666:role/dev/TeamA-dev"),
        iam("arn:aws:iam::111122223333:user/dev/TeamA-dev"),
        iam("arn:aws-cn:iam::111122223333:role/dev/TeamA-dev"),
    ];
    assert_eq!(
        residual_access(&removed, &remaining),
        vec![
            iam("arn:aws:iam::111122223333:role/dev/TeamA-dev"),
            iam("arn:aws:iam::111122223333:role/ops/eu/teama-DEV"),
        ]
    );
    // And the other way round: a removal that names the path leaves the entry without it.
    let removed = iam("arn:aws:iam::111122223333:user/eng/Alice");
    let remaining = [iam("arn:aws:iam::111122223333:user/alice")];
    assert_eq!(residual_access(&removed, &remaining), remaining.to_vec());
    // Groups too, and a path may hold a `:`; a region, or no name at all, is another ARN.
    let removed = iam("arn:aws:iam::111122223333:group/Ops");
    let remaining = [
        iam("arn:aws:iam::111122223333:group/a:b/ops"),
        iam("arn:aws:iam:us-east-1:111122223333:group/Ops/x/Ops"),
        iam("arn:aws:iam::111122223333:group/Ops/"),
    ];
    assert_eq!(
        residual_access(&removed, &remaining),
        vec![iam("arn:aws:iam::111122223333:group/a:b/ops")]
    );
}

/// A pattern admits a role by the role's own name, and a request may spell that name in
/// another case (IAM takes either): matching sets aside the case of the path and name,
/// so no pattern that admits the role goes unreported. The resource type is compared as
/// written.
#[test]
fn patterns_are_matched_whatever_the_case_of_the_path_and_name() {
    let removed = iam("arn:aws:iam::111122223333:role/teama-dev");
    let remaining = [
        pattern("arn:aws:iam:::role/TeamA*"),
        pattern("arn:aws:iam:::role/Dev/*"),
        pattern("arn:aws:iam:::ROLE/teama*"),
    ];
    assert_eq!(
        residual_access(&removed, &remaining),
        vec![pattern("arn:aws:iam:::role/TeamA*")]
    );
    let removed = pattern("arn:aws:iam:::role/team*");
    let remaining = [
        iam("arn:aws:iam::111122223333:role/TeamA-dev"),
        iam("arn:aws:iam::111122223333:role/Ops/TEAMB"),
        iam("arn:aws:iam::111122223333:user/TeamA-dev"),
        pattern("arn:aws:iam:::role/TEAM-A?"),
        pattern("arn:aws:iam:::role/Finance*"),
    ];
    assert_eq!(
        residual_access(&removed, &remaining),
        vec![
            iam("arn:aws:iam::111122223333:role/TeamA-dev"),
            pattern("arn:aws:iam:::role/TEAM-A?"),
        ]
    );
}

#[test]
fn nothing_left_means_no_residual_access() {
    let removed = iam("arn:aws:iam::111122223333:role/Leaver");
    assert!(residual_access(&removed, &[]).is_empty());
    // The same principal still listed (the list lags) is not residual access of itself.
    assert!(residual_access(&removed, std::slice::from_ref(&removed)).is_empty());
}

/// Every text over `a`, `b` and `c` of at most `length` characters.
fn texts(length: usize) -> Vec<String> {
    let mut all = vec![String::new()];
    let mut last = vec![String::new()];
    for _ in 0..length {
        last = last
            .iter()
            .flat_map(|text| ['a', 'b', 'c'].map(|c| format!("{text}{c}")))
            .collect();
        all.extend(last.iter().cloned());
    }
    all
}

proptest! {
    /// Two patterns overlap exactly when some name matches both. A common name, if any,
    /// is no longer than the two patterns' letters and `?` together, so the names up to
    /// that length (over one letter more than the patterns use) decide it.
    #[test]
    fn patterns_overlap_when_some_name_matches_both(
        first in "[ab*?]{0,4}",
        second in "[ab*?]{0,4}",
    ) {
        let role = |name: &str| format!("arn:aws:iam:::role/{name}");
        let longest = first.len() + second.len();
        let witness = texts(longest).into_iter().find(|name| {
            let arn = format!("arn:aws:iam::111122223333:role/{name}");
            pattern_covers(&role(&first), &arn) && pattern_covers(&role(&second), &arn)
        });
        prop_assert_eq!(
            patterns_overlap(&role(&first), &role(&second)),
            witness.is_some(),
            "witness {:?}",
            witness
        );
    }
}
