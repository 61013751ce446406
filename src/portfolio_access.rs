//! Who keeps access to a portfolio after a principal is removed (SPEC §9): an `IAM`
//! principal is still covered by any `IAM_PATTERN` principal that matches its ARN, and a
//! removed pattern leaves the `IAM` principals it covered that are listed on their own,
//! and the principals it admitted that another pattern admits too; an `IAM` principal
//! listed with the removed one's name in another case or under another path may name
//! the same IAM user, group or role, and keep its access.
//! Pure: the caller passes the portfolio's principals as listed.

use serde::Serialize;

/// How a portfolio principal matches IAM principals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum PortfolioPrincipalType {
    #[serde(rename = "IAM")]
    Iam,
    #[serde(rename = "IAM_PATTERN")]
    IamPattern,
}

impl PortfolioPrincipalType {
    pub fn as_str(self) -> &'static str {
        match self {
            PortfolioPrincipalType::Iam => "IAM",
            PortfolioPrincipalType::IamPattern => "IAM_PATTERN",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "IAM" => Some(PortfolioPrincipalType::Iam),
            "IAM_PATTERN" => Some(PortfolioPrincipalType::IamPattern),
            _ => None,
        }
    }

    pub fn other(self) -> Self {
        match self {
            PortfolioPrincipalType::Iam => PortfolioPrincipalType::IamPattern,
            PortfolioPrincipalType::IamPattern => PortfolioPrincipalType::Iam,
        }
    }
}

/// One principal of a portfolio, as ListPrincipalsForPortfolio names it (and as the
/// outcome's `residualAccess` reports it). The ARN is AWS's text, not re-validated:
/// an association made before AWS checked shapes must still be reported.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedPrincipal {
    pub principal_type: PortfolioPrincipalType,
    pub principal_arn: String,
}

/// The principals that keep access after `removed` is gone from a portfolio whose
/// principals are now `remaining`, in the listed order.
pub fn residual_access(
    removed: &ListedPrincipal,
    remaining: &[ListedPrincipal],
) -> Vec<ListedPrincipal> {
    remaining
        .iter()
        .filter(|other| *other != removed)
        .filter(
            |other| match (removed.principal_type, other.principal_type) {
                // The removed principal is still let in through this pattern.
                (PortfolioPrincipalType::Iam, PortfolioPrincipalType::IamPattern) => {
                    pattern_covers(&other.principal_arn, &removed.principal_arn)
                }
                // This principal was covered by the removed pattern and keeps its own entry.
                (PortfolioPrincipalType::IamPattern, PortfolioPrincipalType::Iam) => {
                    pattern_covers(&removed.principal_arn, &other.principal_arn)
                }
                // Some principal the removed pattern admitted is still let in through this one.
                (PortfolioPrincipalType::IamPattern, PortfolioPrincipalType::IamPattern) => {
                    patterns_overlap(&removed.principal_arn, &other.principal_arn)
                }
                // The same user, group or role, listed in another spelling or under
                // another path, may keep its access through that entry.
                (PortfolioPrincipalType::Iam, PortfolioPrincipalType::Iam) => {
                    same_iam_principal(&other.principal_arn, &removed.principal_arn)
                }
            },
        )
        .cloned()
        .collect()
}

/// Whether two `IAM` principal ARNs name the same IAM user, group or role. IAM does not
/// tell names apart by case, so `role/TeamA` and `role/teama` are one role; the rest of
/// the ARN (partition, account, resource type, path) must be the same as written.
pub fn same_iam_name(first: &str, second: &str) -> bool {
    first.contains('/') && iam_name_folded(first) == iam_name_folded(second)
}

/// Whether two `IAM` principal ARNs may name the same IAM user, group or role: IAM
/// names are unique within an account whatever their case or path, so `role/TeamA` and
/// `role/dev/teama` are one role (at most one of the two exists at a time). Everything
/// before the resource (partition, service, region, account) and the resource type
/// must be the same as written. Wider than [`same_iam_name`], which tells a name in
/// another case on the same path (`PrincipalArnCaseMismatch`) from one under another
/// path: this one decides what residual access is reported, which removals are not
/// done, and which removals fence a grant ([`iam_principal_folded`]).
pub fn same_iam_principal(first: &str, second: &str) -> bool {
    matches!((iam_principal_parts(first), iam_principal_parts(second)), (Some(a), Some(b)) if a == b)
}

/// An `IAM` principal ARN up to its resource (as written), its resource type, and its
/// name after the last `/` in lower case: what [`same_iam_principal`] compares. Split
/// from the left, as a path may hold a `:`. `None` for an ARN of another shape.
fn iam_principal_parts(arn: &str) -> Option<(&str, &str, String)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, _, _, _, _, resource] = parts[..] else {
        return None;
    };
    let head = &arn[..arn.len() - resource.len()];
    let (resource_type, path_and_name) = resource.split_once('/')?;
    let name = path_and_name
        .rsplit('/')
        .next()
        .filter(|name| !name.is_empty())?;
    Some((head, resource_type, name.to_ascii_lowercase()))
}

/// An `IAM` principal ARN with its path set aside and its name in lower case: one text
/// for all the ARNs [`same_iam_principal`] takes for one principal (`None` for an ARN
/// of another shape).
pub fn iam_principal_folded(arn: &str) -> Option<String> {
    iam_principal_parts(arn)
        .map(|(head, resource_type, name)| format!("{head}{resource_type}/{name}"))
}

/// An `IAM` principal ARN with its name in lower case: one text for all the spellings
/// [`same_iam_name`] takes for one principal (and the ledger's name item as builds
/// before [`iam_principal_folded`] keyed it).
pub fn iam_name_folded(arn: &str) -> String {
    match arn.rsplit_once('/') {
        Some((rest, name)) => format!("{rest}/{}", name.to_ascii_lowercase()),
        None => arn.to_owned(),
    }
}

/// Whether an `IAM_PATTERN` ARN matches a full IAM ARN by AWS's rules: the same
/// partition and service, the account id ignored, and the resource (type, path and
/// name) matched with `*` as any run of characters and `?` as zero or one character.
/// The path and name are matched regardless of ASCII case: a pattern admits a role by
/// the role's own name, which a request may spell in another case (IAM takes either),
/// and a glob cannot tell where the path ends and the name starts. Matching a little
/// too much only reports access that may not be there; too little would hide some.
pub fn pattern_covers(pattern: &str, arn: &str) -> bool {
    let (Some(pattern), Some(arn)) = (ArnParts::split(pattern), ArnParts::split(arn)) else {
        return false;
    };
    pattern.partition == arn.partition
        && pattern.service == arn.service
        && arn.service == "iam"
        && glob_matches(pattern.resource.as_bytes(), arn.resource.as_bytes())
}

/// Whether some IAM ARN matches both `IAM_PATTERN` ARNs ([`pattern_covers`]).
pub fn patterns_overlap(first: &str, second: &str) -> bool {
    let (Some(first), Some(second)) = (ArnParts::split(first), ArnParts::split(second)) else {
        return false;
    };
    first.partition == second.partition
        && first.service == second.service
        && first.service == "iam"
        && globs_overlap(first.resource.as_bytes(), second.resource.as_bytes())
}

struct ArnParts<'a> {
    partition: &'a str,
    service: &'a str,
    /// The resource type as written, then its path and name in lower case.
    resource: String,
}

impl<'a> ArnParts<'a> {
    fn split(arn: &'a str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let partition = parts.next()?;
        let service = parts.next()?;
        let _region = parts.next()?;
        let _account = parts.next()?;
        let resource = parts.next()?;
        let resource = match resource.split_once('/') {
            Some((resource_type, rest)) => {
                format!("{resource_type}/{}", rest.to_ascii_lowercase())
            }
            None => resource.to_owned(),
        };
        Some(Self {
            partition,
            service,
            resource,
        })
    }
}

/// Glob match over bytes (IAM ARNs are ASCII). Written by hand because the glob crates
/// read `?` as exactly one character, and AWS reads it as zero or one. Dynamic
/// programming over (pattern, text) prefixes: linear space, no backtracking blow-up on
/// patterns with many `*`.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    // matched[j]: the pattern prefix seen so far matches text[..j].
    let mut matched = vec![false; text.len() + 1];
    matched[0] = true;
    for &symbol in pattern {
        let mut next = vec![false; text.len() + 1];
        for j in 0..=text.len() {
            next[j] = match symbol {
                b'*' => matched[j] || (j > 0 && next[j - 1]),
                b'?' => matched[j] || (j > 0 && matched[j - 1]),
                literal => j > 0 && matched[j - 1] && text[j - 1] == literal,
            };
        }
        matched = next;
    }
    matched[text.len()]
}

/// Whether some text matches both globs ([`glob_matches`]'s rules). A search over pairs
/// of positions, one in each pattern: each may pass a `*` or `?` without reading (both
/// may stand for nothing), or both read one character together, which a wildcard reads
/// as anything and a literal only as itself. Both ends reached: a common text exists.
fn globs_overlap(first: &[u8], second: &[u8]) -> bool {
    let width = second.len() + 1;
    // Each pair is stacked once: the stack never holds more pairs than there are.
    let mut seen = vec![false; (first.len() + 1) * width];
    let mut stack = vec![(0, 0)];
    seen[0] = true;
    let mut visit = |stack: &mut Vec<(usize, usize)>, i: usize, j: usize| {
        if !std::mem::replace(&mut seen[i * width + j], true) {
            stack.push((i, j));
        }
    };
    while let Some((i, j)) = stack.pop() {
        if i == first.len() && j == second.len() {
            return true;
        }
        let a = first.get(i).copied();
        let b = second.get(j).copied();
        let wildcard = |symbol: Option<u8>| matches!(symbol, Some(b'*' | b'?'));
        if wildcard(a) {
            visit(&mut stack, i + 1, j);
        }
        if wildcard(b) {
            visit(&mut stack, i, j + 1);
        }
        let (Some(a), Some(b)) = (a, b) else {
            continue;
        };
        if wildcard(Some(a)) || wildcard(Some(b)) || a == b {
            // A `*` may read on; anything else moves past what it read.
            let next_i = if a == b'*' { i } else { i + 1 };
            let next_j = if b == b'*' { j } else { j + 1 };
            visit(&mut stack, next_i, next_j);
        }
    }
    false
}
