//! Validated identifiers. Each type can only be built by parsing, so a value that
//! breaks the API's length or pattern rule never reaches an AWS call.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

/// Why a value was refused: the rule broken, in words a requester can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must be {min}..{max} characters long, got {len}")]
    Length { min: usize, max: usize, len: usize },
    #[error("must be {expected} (pattern {pattern})")]
    Pattern {
        expected: &'static str,
        pattern: &'static str,
    },
    #[error("{problem}")]
    Arn { problem: String },
    #[error("must not contain control characters, U+FFFE or U+FFFF (found U+{:04X})", u32::from(*.0))]
    NotPrintable(char),
}

impl IdError {
    /// Short machine-readable name of the rule, used as the dead-letter `ErrorCode`.
    pub fn rule(&self) -> &'static str {
        match self {
            IdError::Length { .. } => "BadLength",
            IdError::Pattern { .. } | IdError::Arn { .. } => "BadPattern",
            IdError::NotPrintable(_) => "NotPrintable",
        }
    }
}

fn check_length(value: &str, min: usize, max: usize) -> Result<(), IdError> {
    let len = value.chars().count();
    if (min..=max).contains(&len) {
        Ok(())
    } else {
        Err(IdError::Length { min, max, len })
    }
}

/// The API model's partition rule, `aws(-[a-z]{1,5}){0,3}`: `aws-iso-f`, `aws-eusc` and
/// partitions yet to come pass, as they do in AWS.
const PARTITION: &str = "aws(-[a-z]{1,5}){0,3}";

fn is_partition(text: &str) -> bool {
    text.strip_prefix("aws").is_some_and(|rest| {
        let groups: Vec<&str> = rest.split('-').skip(1).collect();
        (rest.is_empty() || rest.starts_with('-'))
            && groups.len() <= 3
            && groups
                .iter()
                .all(|g| (1..=5).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_lowercase()))
    })
}

/// Names the part of an ARN that is wrong (prefix, partition or service), so that a
/// requester is not left to diff a regular expression by eye.
fn check_arn(value: &str, service: &str) -> Result<(), IdError> {
    let problem = |problem: String| Err(IdError::Arn { problem });
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    if parts.len() < 6 || parts[0] != "arn" {
        return problem(
            "must be an ARN: arn:<partition>:<service>:<region>:<account>:<resource>".to_owned(),
        );
    }
    if !is_partition(parts[1]) {
        return problem(format!(
            "partition `{}` does not match {PARTITION}",
            parts[1]
        ));
    }
    if parts[2] != service {
        return problem(format!("service must be `{service}`, got `{}`", parts[2]));
    }
    Ok(())
}

fn check_pattern(
    value: &str,
    re: &Regex,
    expected: &'static str,
    pattern: &'static str,
) -> Result<(), IdError> {
    if re.is_match(value) {
        Ok(())
    } else {
        Err(IdError::Pattern { expected, pattern })
    }
}

/// Declares a newtype over `String` with a `parse` constructor that applies the
/// length bounds and the pattern copied verbatim from the API reference.
macro_rules! pattern_id {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr, $pattern:expr, $expected:expr, $arn:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PATTERN: &'static str = $pattern;

            pub fn parse(value: &str) -> Result<Self, IdError> {
                static RE: LazyLock<Regex> = LazyLock::new(|| {
                    // The pattern is a compile-time constant covered by unit tests.
                    #[allow(clippy::expect_used)]
                    Regex::new($pattern).expect("static pattern compiles")
                });
                check_length(value, $min, $max)?;
                let arn_service: Option<&str> = $arn;
                if let Some(service) = arn_service {
                    check_arn(value, service)?;
                }
                check_pattern(value, &RE, $expected, $pattern)?;
                Ok(Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

pattern_id!(
    /// `arn:aws:sso:::instance/ssoins-...`: the Identity Center instance.
    InstanceArn,
    10,
    1224,
    r"^arn:aws(-[a-z]{1,5}){0,3}:sso:::instance/(sso)?ins-[a-zA-Z0-9-.]{16}$",
    "arn:<partition>:sso:::instance/ssoins- followed by 16 letters, digits, '-' or '.'",
    Some("sso")
);

pattern_id!(
    /// `arn:aws:sso:::permissionSet/ssoins-.../ps-...`: a permission set of one instance.
    PermissionSetArn,
    10,
    1224,
    r"^arn:aws(-[a-z]{1,5}){0,3}:sso:::permissionSet/(sso)?ins-[a-zA-Z0-9-.]{16}/ps-[a-zA-Z0-9-./]{16}$",
    "arn:<partition>:sso:::permissionSet/ssoins-<16 characters>/ps-<16 characters>",
    Some("sso")
);

pattern_id!(
    /// A 12-digit AWS account id.
    AccountId,
    12,
    12,
    r"^[0-9]{12}$",
    "exactly 12 digits (an AWS account id)",
    None
);

pattern_id!(
    /// An Identity Store user or group id.
    PrincipalId,
    1,
    47,
    r"^([0-9a-f]{10}-|)[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{12}$",
    "an Identity Store user or group id (a UUID, optionally prefixed by 10 hex digits and '-')",
    None
);

pattern_id!(
    /// A Service Catalog portfolio id.
    PortfolioId,
    1,
    100,
    r"^[a-zA-Z0-9_\-]*$",
    "letters, digits, '_' and '-' only",
    None
);

pattern_id!(
    /// An IAM principal ARN with its account id (principal type `IAM`).
    IamPrincipalArn,
    1,
    1000,
    r"^arn:aws(-[a-z]{1,5}){0,3}:iam::[0-9]{12}:(user|group|role)/[!-)+->@-~]+$",
    "a full IAM ARN with a 12-digit account id and no wildcard, such as \
     arn:aws:iam::123456789012:role/Name",
    Some("iam")
);

impl IamPrincipalArn {
    /// The account the principal belongs to: the ARN's fifth field, 12 digits by the
    /// parse.
    pub fn account(&self) -> Option<AccountId> {
        self.0
            .split(':')
            .nth(4)
            .and_then(|account| AccountId::parse(account).ok())
    }
}

pattern_id!(
    /// An IAM ARN pattern with no account id (principal type `IAM_PATTERN`): a concrete
    /// partition and resource type, `*` and `?` only in the path and name after it, so
    /// a pattern can never reach past the kind of principal it names (SPEC §2).
    IamPrincipalPattern,
    1,
    1000,
    r"^arn:aws(-[a-z]{1,5}){0,3}:iam:::(user|group|role)/[!-~]+$",
    "an IAM ARN pattern with no account id, a concrete resource type and wildcards only \
     after it, such as arn:aws:iam:::role/Team*",
    Some("iam")
);

impl InstanceArn {
    /// `(partition, instance id)`, used to check that a permission set belongs here.
    fn scope(&self) -> (&str, &str) {
        arn_scope(&self.0, "instance/")
    }
}

impl PermissionSetArn {
    /// True when this permission set belongs to `instance` (same partition and instance
    /// id, the id in any case, as the ledger keys it: refused, a revoke spelling the two
    /// differently would leave its access in place).
    pub fn belongs_to(&self, instance: &InstanceArn) -> bool {
        let (partition, rest) = arn_scope(&self.0, "permissionSet/");
        let instance_id = rest.split('/').next().unwrap_or_default();
        let (instance_partition, own_id) = instance.scope();
        partition == instance_partition && instance_id.eq_ignore_ascii_case(own_id)
    }
}

/// Splits a validated Identity Center ARN into its partition and what follows `marker`.
fn arn_scope<'a>(arn: &'a str, marker: &str) -> (&'a str, &'a str) {
    let partition = arn.split(':').nth(1).unwrap_or_default();
    let rest = arn.split_once(marker).map(|(_, r)| r).unwrap_or_default();
    (partition, rest)
}

/// The upstream's ticket or request id: 1..256 printable characters. U+FFFE and U+FFFF
/// are refused with the control characters: SQS cannot carry them, so a dead letter's
/// `CorrelationId` attribute could not echo the id, and the worker's envelope would have
/// to escape them into six bytes each where the request, unwrapped from an SNS
/// `Message`, counted three.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(String);

impl CorrelationId {
    pub fn parse(value: &str) -> Result<Self, IdError> {
        Self::parse_refusing(value, |c| {
            c.is_control() || !crate::messages::sqs_accepts(c)
        })
    }

    /// An id the worker recorded itself (in its envelope, or in a later decision's
    /// summary): builds before U+FFFE and U+FFFF were refused wrote them there, and the
    /// steps still in flight must go on. Control characters were always refused.
    pub fn parse_recorded(value: &str) -> Result<Self, IdError> {
        Self::parse_refusing(value, char::is_control)
    }

    fn parse_refusing(value: &str, refused: impl Fn(char) -> bool) -> Result<Self, IdError> {
        check_length(value, 1, 256)?;
        if let Some(found) = value.chars().find(|&c| refused(c)) {
            return Err(IdError::NotPrintable(found));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSTANCE: &str = "arn:aws:sso:::instance/ssoins-1234567890abcdef";
    const PERMISSION_SET: &str =
        "arn:aws:sso:::permissionSet/ssoins-1234567890abcdef/ps-1234567890abcdef";

    #[test]
    fn accepts_the_documented_forms() {
        assert!(InstanceArn::parse(INSTANCE).is_ok());
        assert!(InstanceArn::parse("arn:aws-us-gov:sso:::instance/ins-abcdefABCDEF.-12").is_ok());
        assert!(PermissionSetArn::parse(PERMISSION_SET).is_ok());
        assert!(AccountId::parse("012345678901").is_ok());
        assert!(PrincipalId::parse("906740d2b8-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10").is_ok());
        assert!(PrincipalId::parse("4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10").is_ok());
        assert!(PortfolioId::parse("port-abcdefghijklm").is_ok());
        assert!(IamPrincipalArn::parse("arn:aws:iam::123456789012:role/Admin").is_ok());
        assert!(IamPrincipalPattern::parse("arn:aws:iam:::role/Team*").is_ok());
    }

    /// The current API model's partition rule, `aws(-[a-z]{1,5}){0,3}` (SPEC §2): newer
    /// partitions pass, shapes outside the rule do not.
    #[test]
    fn partitions_follow_the_api_models_rule() {
        for partition in [
            "aws",
            "aws-cn",
            "aws-us-gov",
            "aws-iso-b",
            "aws-iso-f",
            "aws-eusc",
            "aws-iso-e",
            "aws-a-bb-ccc",
        ] {
            let instance = format!("arn:{partition}:sso:::instance/ssoins-1234567890abcdef");
            let permission_set = format!(
                "arn:{partition}:sso:::permissionSet/ssoins-1234567890abcdef/ps-1234567890abcdef"
            );
            assert!(InstanceArn::parse(&instance).is_ok(), "{instance}");
            let permission_set = PermissionSetArn::parse(&permission_set).expect("valid");
            assert!(permission_set.belongs_to(&InstanceArn::parse(&instance).expect("valid")));
            let role = format!("arn:{partition}:iam::123456789012:role/Admin");
            assert!(IamPrincipalArn::parse(&role).is_ok(), "{role}");
        }
        for partition in [
            "awsx",
            "aws-",
            "aws-toolong",
            "aws-a-b-c-d",
            "aws-ISO",
            "aws_cn",
            "gcp",
        ] {
            let instance = format!("arn:{partition}:sso:::instance/ssoins-1234567890abcdef");
            assert!(InstanceArn::parse(&instance).is_err(), "{instance}");
        }
    }

    #[test]
    fn refuses_what_the_api_would_refuse() {
        assert!(matches!(
            AccountId::parse("12345678901"),
            Err(IdError::Length { len: 11, .. })
        ));
        assert!(matches!(
            AccountId::parse("12345678901a"),
            Err(IdError::Pattern { .. })
        ));
        assert!(InstanceArn::parse("arn:aws:sso:::instance/ssoins-123").is_err());
        assert!(InstanceArn::parse("arn:aws:iam:::instance/ssoins-1234567890abcdef").is_err());
        assert!(PrincipalId::parse("not-a-uuid").is_err());
        assert!(IamPrincipalArn::parse("arn:aws:iam:::role/Team*").is_err());
        assert!(IamPrincipalPattern::parse("arn:aws:iam::123456789012:role/A").is_err());
        assert!(CorrelationId::parse("CHG\n1").is_err());
        assert!(CorrelationId::parse("CHG-\u{fffe}").is_err());
        assert!(CorrelationId::parse("CHG-\u{ffff}").is_err());
        assert!(CorrelationId::parse("CHG-\u{fffd}-\u{10ffff}").is_ok());
        assert!(CorrelationId::parse(&"x".repeat(257)).is_err());
    }

    /// SPEC §2: a pattern names a concrete partition and resource type; wildcards only in
    /// the path and name after it. A full ARN holds no wildcard at all.
    #[test]
    fn iam_principal_shapes() {
        for (value, pattern_ok, arn_ok) in [
            ("arn:aws:iam:::role/Team*", true, false),
            ("arn:aws:iam:::user/eng/alice?", true, false),
            ("arn:aws:iam:::group/*", true, false),
            ("arn:aws-cn:iam:::role/path/to/Name", true, false),
            ("arn:aws:iam:::*/X", false, false),
            ("arn:aws:iam:::ro*/X", false, false),
            ("arn:aws:iam:::role*", false, false),
            ("arn:*:iam:::role/X", false, false),
            ("arn:aws:iam:::policy/X", false, false),
            ("arn:aws:iam:::role", false, false),
            ("arn:aws:iam::123456789012:role/Admin", false, true),
            ("arn:aws:iam::123456789012:user/path/bob", false, true),
            ("arn:aws:iam::123456789012:role/Adm*", false, false),
            ("arn:aws:iam::123456789012:role/Adm?n", false, false),
            ("arn:aws:iam::*:role/Admin", false, false),
            ("arn:aws:iam::123456789012:*/Admin", false, false),
            ("arn:aws:sts::123456789012:assumed-role/A/b", false, false),
        ] {
            assert_eq!(
                IamPrincipalPattern::parse(value).is_ok(),
                pattern_ok,
                "{value}"
            );
            assert_eq!(IamPrincipalArn::parse(value).is_ok(), arn_ok, "{value}");
        }
    }

    #[test]
    fn permission_set_belongs_to_its_instance_only() {
        let instance = InstanceArn::parse(INSTANCE).unwrap();
        let same = PermissionSetArn::parse(PERMISSION_SET).unwrap();
        let other = PermissionSetArn::parse(
            "arn:aws:sso:::permissionSet/ssoins-ffffffffffffffff/ps-1234567890abcdef",
        )
        .unwrap();
        let other_partition = PermissionSetArn::parse(
            "arn:aws-cn:sso:::permissionSet/ssoins-1234567890abcdef/ps-1234567890abcdef",
        )
        .unwrap();
        let same_in_capitals = PermissionSetArn::parse(
            "arn:aws:sso:::permissionSet/ssoins-1234567890ABCDEF/ps-1234567890abcdef",
        )
        .unwrap();
        assert!(same.belongs_to(&instance));
        assert!(same_in_capitals.belongs_to(&instance));
        assert!(!other.belongs_to(&instance));
        assert!(!other_partition.belongs_to(&instance));
    }
}
