//! Configuration from the environment (SPEC §6), read and checked once at cold start.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::OsString;
use std::str::FromStr;
use std::time::Duration;

use crate::guardrails::Guardrails;
use crate::ids::{AccountId, IdError, InstanceArn, PermissionSetArn, PortfolioId};
use crate::lifecycle::{MAX_DELAY_SECONDS, Policy};
use crate::pacer::PacerSettings;

/// A variable that is missing or malformed; its `Display` is the one line printed at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {variable}: {problem}")]
pub struct ConfigError {
    pub variable: Cow<'static, str>,
    pub problem: String,
}

/// An SQS queue URL (`https://sqs.<region>.amazonaws.com/<account>/<name>`, or a local
/// endpoint's `http://127.0.0.1:<port>/...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrl(String);

impl QueueUrl {
    pub fn parse(value: &str) -> Result<Self, String> {
        let rest = value
            .strip_prefix("https://")
            .or_else(|| value.strip_prefix("http://"))
            .ok_or("must start with https:// or http://")?;
        let (host, path) = rest
            .split_once('/')
            .ok_or("must have a path after the host")?;
        if host.is_empty()
            || path.trim_matches('/').is_empty()
            || value.chars().any(char::is_whitespace)
        {
            return Err(
                "must look like https://sqs.<region>.amazonaws.com/<account>/<queue>".into(),
            );
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A DynamoDB table name (3..255 of `a-z A-Z 0-9 _ - .`) or table ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName(String);

impl TableName {
    pub fn parse(value: &str) -> Result<Self, String> {
        let name = match value.strip_prefix("arn:") {
            Some(_) => value
                .split_once(":table/")
                .filter(|(prefix, _)| prefix.contains(":dynamodb:"))
                .map(|(_, name)| name)
                .ok_or("an ARN must be a DynamoDB table ARN (arn:<partition>:dynamodb:<region>:<account>:table/<name>)")?,
            None => value,
        };
        let valid = (3..=255).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid {
            return Err(
                "must be a table name of 3..255 letters, digits, `_`, `-` or `.`, or a table ARN"
                    .into(),
            );
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub work_queue: QueueUrl,
    pub dead_letter_queue: QueueUrl,
    pub outcome_queue: Option<QueueUrl>,
    /// The ledger of decisions (SPEC §11).
    pub ledger_table: TableName,
    /// The CloudWatch namespace of the worker's metrics (SPEC §12).
    pub metrics_namespace: String,
    /// AWS operations in flight per invocation.
    pub max_concurrency: usize,
    pub policy: Policy,
    pub guardrails: Guardrails,
    pub pacing: Pacing,
    /// Longest one SQS send attempt may take, its connection included. SQS answers in
    /// milliseconds, and a send that hangs is better retried at once; a local stack whose
    /// SQS is a loaded moto process needs longer.
    pub sqs_attempt_timeout: Duration,
}

/// Attempts per SQS send: one quick retry, since a send that fails for good makes its
/// record reappear only after the visibility timeout.
pub const SQS_MAX_ATTEMPTS: u32 = 2;

impl Config {
    /// Longest one SQS send may take, its retry and the backoff before it included.
    pub fn sqs_operation_timeout(&self) -> Duration {
        self.sqs_attempt_timeout * SQS_MAX_ATTEMPTS
    }
}

/// What each process knows to pace its Identity Center calls (SPEC §10, [`crate::pacer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Function processes running at once: the event source's MaximumConcurrency.
    pub function_concurrency: u32,
    /// Identity Center calls per second all processes may make together.
    pub rate_per_second: u32,
    /// The mean time a create is expected to stay outstanding.
    pub provisioning_milliseconds: u32,
}

impl Pacing {
    pub fn settings(&self) -> PacerSettings {
        let mut settings = PacerSettings {
            rate_per_second: f64::from(self.rate_per_second),
            max_outstanding_creates: MAX_OUTSTANDING_CREATES,
            provisioning: Duration::from_millis(self.provisioning_milliseconds.into()),
            processes: self.function_concurrency,
            max_wait: MAX_PACING_WAIT,
            // Together at most half the service's own burst (20), so that the processes
            // coming back from idle spells at once do not meet the limit.
            call_burst: (10 / self.function_concurrency.max(1)).max(1).into(),
            // Two: a create whose turn passed while the process waited for SQS is not
            // lost; more would start several creates at once.
            create_burst: 2.0,
        };
        // A batch's calls wait their turns in the process rather than be deferred: a
        // deferred step waits at least SQS's 1 s, comes back when this share has a turn
        // for it anyway (often to another process, whose share is as busy), and costs
        // three SQS calls. With 10 processes and only the 2 s above, 6 of a batch's 10
        // polls and deletes were deferred (tests/pacer.rs), and a 1,200-request run took
        // 248 s against 181 s with 3 processes.
        settings.max_wait = settings
            .max_wait
            .max(Duration::from_secs_f64(BATCH_CALLS / settings.call_share()));
        settings
    }
}

/// Identity Center calls one invocation makes at most, about: one per record of a batch
/// at the event source's default `BatchSize` (template.yaml).
const BATCH_CALLS: f64 = 10.0;
/// CreateAccountAssignment operations outstanding at once, per account (SPEC §10; AWS
/// does not raise it).
pub const MAX_OUTSTANDING_CREATES: f64 = 15.0;
/// The longest a call waits in the process for the pacer, or longer if the process's
/// share needs more for a batch's calls ([`Pacing::settings`]); a longer wait defers the
/// step through the queue. Short against the function's timeout, and taken only from
/// the time left above [`crate::record_step::call_reserve`].
pub const MAX_PACING_WAIT: Duration = Duration::from_secs(2);

/// The guardrail variables (SPEC §6).
const GUARDRAIL_VARIABLES: [&str; 5] = [
    "ALLOWED_INSTANCE_ARNS",
    "PROTECTED_ACCOUNT_IDS",
    "PROTECTED_PERMISSION_SET_ARNS",
    "ALLOWED_PORTFOLIO_IDS",
    "ALLOW_IAM_PATTERN_PRINCIPALS",
];

/// A variable named like a guardrail that is none of them: most likely a misspelt one
/// (`PROTECTED_ACCOUNT_ID`, `PROTECTED_PERM_SET_ARNS`, `ALLOWED_ACCOUNT_IDS`,
/// `protected_account_ids`), whose guardrail would be off while the operator believes it
/// on. In any case: every name beginning `PROTECT`, or whose first word is two edits or
/// fewer from `PROTECTED` (`PORTECTED_PERMSET_ARNS`); one beginning `ALLOW` (or whose
/// first word is one edit from `ALLOW` or two from `ALLOWED`: `ALOWED_INSTANCES`) only
/// with a word that names a guardrail's subject, since a developer's shell may hold
/// `ALLOWED_HOSTS`, `ALLOWED_PORTS` or `ALLOWED_TARGETS`, which local runs pass on.
/// See [`names_a_subject`]. A slip of `ALLOW` needs its subject word too, so that
/// `FOLLOW_SSO_LINKS` (two edits from `ALLOW`) passes.
fn unknown_guardrail(name: &OsString) -> Option<ConfigError> {
    let name = name.to_string_lossy();
    let upper = name.to_ascii_uppercase();
    let first_word = upper.split('_').next().unwrap_or_default();
    let protect_like =
        upper.starts_with("PROTECT") || strsim::osa_distance(first_word, "PROTECTED") <= 2;
    let allow_like = upper.starts_with("ALLOW")
        || strsim::osa_distance(first_word, "ALLOW") <= 1
        || strsim::osa_distance(first_word, "ALLOWED") <= 2;
    let guardrail_like = protect_like
        || (allow_like && upper.split('_').any(names_a_subject))
        || close_to_a_guardrail(&upper);
    (guardrail_like && !GUARDRAIL_VARIABLES.contains(&name.as_ref())).then(|| ConfigError {
        variable: Cow::Owned(name.into_owned()),
        problem: format!(
            "is not a variable the worker reads; its guardrails are {}",
            GUARDRAIL_VARIABLES.join(", ")
        ),
    })
}

/// Whether `word` (in upper case) names a guardrail's subject: it begins with a
/// subject's full name (`INSTANCES`, `PORTFOLIOIDS`, `SSOINSTANCE`), or with one letter
/// slipped in a long one (`INSATNCES`, `INSANCES`, `ACOUNTS`), or is a short form whole
/// (`ACCT`, `IDC`, `ARNS`, where `ACCESS` or `PSQL` are no subject).
fn names_a_subject(word: &str) -> bool {
    const SUBJECTS: [&str; 7] = [
        "ACCOUNT",
        "PERMISSION",
        "PORTFOLIO",
        "INSTANCE",
        "PRINCIPAL",
        "PATTERN",
        "SSO",
    ];
    const SHORT_FORMS: [&str; 9] = [
        "ACCT", "ACCTS", "PERM", "PERMS", "PS", "IAM", "IDC", "ARN", "ARNS",
    ];
    // Shorter subjects slipped by one letter read as other words (`SSH` for `SSO`).
    const SLIPS_FROM: usize = 7;
    let slip_of = |subject: &str| {
        let length = subject.len();
        subject.len() >= SLIPS_FROM
            && (length - 1..=length + 1).any(|head| {
                word.get(..head)
                    .is_some_and(|head| strsim::osa_distance(head, subject) <= 1)
            })
    };
    SUBJECTS
        .iter()
        .any(|subject| word.starts_with(subject) || slip_of(subject))
        || SHORT_FORMS.contains(&word)
}

/// Whether `name` (in upper case) is a few letters from a guardrail's name, its `_`
/// aside: `ALLOWEDINSTANCE_ARNS`, `ALLOWED_INSTANSE_ARNS`, `ALOWED_PORTFOLIO_IDS`,
/// `PROTECED_ACCOUNT_IDS`, `ALLOWED_INSATNCE_ARSN`. Three edits at most, two letters
/// swapped counting as one: names a shell or Lambda holds for other tools
/// (`ALLOWED_PORTS`, `ALLOWED_ORIGINS`, `ALLOWED_TARGETS`) are six or more away.
fn close_to_a_guardrail(name: &str) -> bool {
    const MOST_EDITS: usize = 3;
    let letters = |name: &str| name.replace('_', "");
    let name = letters(name);
    GUARDRAIL_VARIABLES
        .iter()
        .any(|guardrail| strsim::osa_distance(&name, &letters(guardrail)) <= MOST_EDITS)
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars_os())
    }

    /// Reads the configuration from `vars` (an environment's names and values). A name
    /// that looks like a guardrail's but is none of them stops the start, as a malformed
    /// value does.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Self, ConfigError> {
        let vars: HashMap<OsString, OsString> = vars.into_iter().collect();
        let mut names: Vec<&OsString> = vars.keys().collect();
        names.sort();
        if let Some(error) = names.into_iter().find_map(unknown_guardrail) {
            return Err(error);
        }
        Self::from_os_lookup(|name| vars.get(&OsString::from(name)).cloned())
    }

    /// Reads the configuration through `lookup`, whose values may not be UTF-8. Such a
    /// value is malformed, not unset: read as unset, a guardrail list would let
    /// everything through.
    pub fn from_os_lookup(
        lookup: impl Fn(&'static str) -> Option<OsString>,
    ) -> Result<Self, ConfigError> {
        let not_text = Cell::new(None);
        let config = Self::from_lookup(|variable| {
            let value = lookup(variable)?.into_string();
            if value.is_err() && not_text.get().is_none() {
                not_text.set(Some(variable));
            }
            value.ok()
        });
        match not_text.get() {
            Some(variable) => Err(ConfigError {
                variable: variable.into(),
                problem: "is not UTF-8 text".to_owned(),
            }),
            None => config,
        }
    }

    /// Reads the configuration through `lookup`.
    pub fn from_lookup(
        lookup: impl Fn(&'static str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let defaults = Policy::default();
        let policy = Policy {
            max_attempts: env.number("MAX_ATTEMPTS", defaults.max_attempts, 1, 1000)?,
            poll_deadline_seconds: env.number(
                "POLL_DEADLINE_SECONDS",
                defaults.poll_deadline_seconds,
                1,
                7 * 86_400,
            )?,
            poll_initial_delay_seconds: env.number(
                "POLL_INITIAL_DELAY_SECONDS",
                defaults.poll_initial_delay_seconds,
                // At least 1 s: a zero delay would poll in a tight loop through SQS.
                1,
                MAX_DELAY_SECONDS,
            )?,
            poll_max_delay_seconds: env.number(
                "POLL_MAX_DELAY_SECONDS",
                defaults.poll_max_delay_seconds,
                0,
                MAX_DELAY_SECONDS,
            )?,
            backoff_base_seconds: env.number(
                "BACKOFF_BASE_SECONDS",
                defaults.backoff_base_seconds,
                0,
                MAX_DELAY_SECONDS,
            )?,
            busy_backoff_min_seconds: env.number(
                "BUSY_BACKOFF_MIN_SECONDS",
                defaults.busy_backoff_min_seconds,
                0,
                MAX_DELAY_SECONDS,
            )?,
        };
        if policy.poll_max_delay_seconds < policy.poll_initial_delay_seconds {
            return Err(ConfigError {
                variable: "POLL_MAX_DELAY_SECONDS".into(),
                problem: format!(
                    "must be at least POLL_INITIAL_DELAY_SECONDS ({})",
                    policy.poll_initial_delay_seconds
                ),
            });
        }
        let allowed_instances = env.list("ALLOWED_INSTANCE_ARNS", InstanceArn::parse)?;
        let allowed_portfolios = env.list("ALLOWED_PORTFOLIO_IDS", PortfolioId::parse)?;
        Ok(Self {
            work_queue: env
                .queue("WORK_QUEUE_URL")?
                .ok_or_else(|| missing("WORK_QUEUE_URL"))?,
            dead_letter_queue: env
                .queue("DEAD_LETTER_QUEUE_URL")?
                .ok_or_else(|| missing("DEAD_LETTER_QUEUE_URL"))?,
            outcome_queue: env.queue("OUTCOME_QUEUE_URL")?,
            ledger_table: env
                .get("LEDGER_TABLE")
                .map(|text| {
                    TableName::parse(&text).map_err(|problem| ConfigError {
                        variable: "LEDGER_TABLE".into(),
                        problem: format!("{problem}, got `{text}`"),
                    })
                })
                .transpose()?
                .ok_or_else(|| missing("LEDGER_TABLE"))?,
            metrics_namespace: env.namespace("METRICS_NAMESPACE")?,
            max_concurrency: env.number("MAX_CONCURRENCY", 4, 1, 15)?,
            policy,
            guardrails: Guardrails {
                allowed_instances: (!allowed_instances.is_empty()).then_some(allowed_instances),
                protected_accounts: env.list("PROTECTED_ACCOUNT_IDS", AccountId::parse)?,
                protected_permission_sets: env
                    .list("PROTECTED_PERMISSION_SET_ARNS", PermissionSetArn::parse)?,
                allowed_portfolios: (!allowed_portfolios.is_empty()).then_some(allowed_portfolios),
                allow_iam_pattern_principals: env.flag("ALLOW_IAM_PATTERN_PRINCIPALS")?,
            },
            pacing: Pacing {
                function_concurrency: env.number("FUNCTION_CONCURRENCY", 3, 1, 1000)?,
                rate_per_second: env.number("IDENTITY_CENTER_RATE_PER_SECOND", 20, 1, 1000)?,
                provisioning_milliseconds: env.number(
                    "PROVISIONING_MILLISECONDS",
                    3500,
                    10,
                    900_000,
                )?,
            },
            sqs_attempt_timeout: Duration::from_millis(env.number(
                "SQS_ATTEMPT_TIMEOUT_MILLISECONDS",
                1000,
                100,
                5000,
            )?),
        })
    }
}

fn missing(variable: &'static str) -> ConfigError {
    ConfigError {
        variable: variable.into(),
        problem: "is required but not set".to_owned(),
    }
}

struct Env<'a, F>(&'a F);

impl<F: Fn(&'static str) -> Option<String>> Env<'_, F> {
    /// The variable's value, trimmed; only an empty value counts as unset, as
    /// CloudFormation parameters left blank arrive that way. A value of blanks is set:
    /// it trims to nothing, which every reader refuses (SPEC §6: malformed).
    fn get(&self, variable: &'static str) -> Option<String> {
        (self.0)(variable)
            .filter(|v| !v.is_empty())
            .map(|v| v.trim().to_owned())
    }

    fn number<T>(
        &self,
        variable: &'static str,
        default: T,
        min: T,
        max: T,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(text) = self.get(variable) else {
            return Ok(default);
        };
        match text.parse::<T>() {
            Ok(value) if value >= min && value <= max => Ok(value),
            _ => Err(ConfigError {
                variable: variable.into(),
                problem: format!("must be a whole number from {min} to {max}, got `{text}`"),
            }),
        }
    }

    /// `true` or `false` (any case); unset is false. Anything else stops the start: a
    /// typo in a guardrail must not be read as either answer.
    fn flag(&self, variable: &'static str) -> Result<bool, ConfigError> {
        match self
            .get(variable)
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ConfigError {
                variable: variable.into(),
                problem: format!("must be true or false, got `{other}`"),
            }),
        }
    }

    /// A CloudWatch namespace: 1..255 of the characters CloudWatch allows
    /// (`0-9 A-Z a-z . - _ / # :` and space), not under `AWS/`.
    fn namespace(&self, variable: &'static str) -> Result<String, ConfigError> {
        let Some(text) = self.get(variable) else {
            return Ok(crate::metrics::DEFAULT_NAMESPACE.to_owned());
        };
        let allowed = text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_/#: ".contains(&b));
        if text.is_empty() || text.len() > 255 || !allowed || text.starts_with("AWS/") {
            return Err(ConfigError {
                variable: variable.into(),
                problem: format!(
                    "must be 1..255 of `0-9 A-Z a-z . - _ / # :` and space, not starting with \
                     AWS/, got `{text}`"
                ),
            });
        }
        Ok(text)
    }

    fn queue(&self, variable: &'static str) -> Result<Option<QueueUrl>, ConfigError> {
        self.get(variable)
            .map(|text| {
                if text.trim_end_matches('/').ends_with(".fifo") {
                    return Err(ConfigError {
                        variable: variable.into(),
                        problem: format!(
                            "`{text}` is a FIFO queue: it refuses the per-message delays of \
                             retries and polls, and every send would need a message group id; \
                             use a standard queue"
                        ),
                    });
                }
                QueueUrl::parse(&text).map_err(|problem| ConfigError {
                    variable: variable.into(),
                    problem: format!("{problem}, got `{text}`"),
                })
            })
            .transpose()
    }

    fn list<T>(
        &self,
        variable: &'static str,
        parse: impl Fn(&str) -> Result<T, IdError>,
    ) -> Result<Vec<T>, ConfigError> {
        // Only an empty value is unset (SPEC §6): blanks are set and name nothing.
        let Some(text) = (self.0)(variable).filter(|v| !v.is_empty()) else {
            return Ok(Vec::new());
        };
        let items: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .collect();
        // Set but naming nothing is a mistake, not "any": a guardrail never fails open.
        if items.is_empty() {
            return Err(ConfigError {
                variable: variable.into(),
                problem: format!("is set but names nothing (`{text}`); leave it empty to unset it"),
            });
        }
        items
            .into_iter()
            .map(|item| {
                parse(item).map_err(|e| ConfigError {
                    variable: variable.into(),
                    problem: format!("`{item}` {e}"),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The configuration from `pairs`, with a ledger table unless `pairs` name one
    /// (an empty value leaves it unset).
    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> =
            HashMap::from([("LEDGER_TABLE".to_owned(), "assignment-ledger".to_owned())]);
        map.extend(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Config::from_lookup(|name| map.get(name).cloned())
    }

    const QUEUES: [(&str, &str); 2] = [
        (
            "WORK_QUEUE_URL",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/work",
        ),
        (
            "DEAD_LETTER_QUEUE_URL",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/dlq",
        ),
    ];

    fn from_vars(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(
            pairs
                .iter()
                .chain(&QUEUES)
                .chain(&[
                    ("LEDGER_TABLE", "assignment-ledger"),
                    ("AWS_REGION", "eu-west-1"),
                ])
                .map(|(name, value)| (OsString::from(name), OsString::from(value))),
        )
    }

    /// Read as unset, a misspelt guardrail would be off while the operator believes it on.
    #[test]
    fn a_variable_named_like_a_guardrail_but_none_stops_the_start_naming_it() {
        for typo in [
            ("ALLOWED_ACCOUNT_IDS", "111122223333"),
            ("PROTECTED_ACCOUNT_ID", "111122223333"),
            ("ALLOWED_PORTFOLIO_ID", "port-abcdefghijklm"),
            ("ALLOWED_PERMISSION_SET_ARNS", ""),
            ("PROTECTED_PERMISSIONSET_ARNS", "x"),
            ("PROTECTED_PERM_SET_ARNS", "x"),
            ("PROTECTED_TARGET_IDS", "111122223333"),
            ("ALLOWED_ACCT_IDS", "111122223333"),
            ("protected_account_ids", "111122223333"),
            ("PROTECT_ACCOUNT_IDS", "111122223333"),
            ("ALLOWS_IAM_PATTERN_PRINCIPALS", "false"),
            ("ALLOW_IAM_PATTERNS", "false"),
            ("ALLOWED_INSTANCES_ARNS", "x"),
            ("ALLOWED_INSTANCES", "x"),
            ("ALLOWED_INSTANCEARNS", "x"),
            ("ALLOWED_PORTFOLIOS", "x"),
            ("ALLOWED_PORTFOLIOS_IDS", "x"),
            ("ALLOWED_PORTFOLIOIDS", "x"),
            ("ALLOWED_SSOINSTANCE_ARNS", "x"),
            ("ALLOWED_ACCOUNTIDS", "x"),
            ("ALLOWED_PERMS", "x"),
            ("ALLOWEDINSTANCE_ARNS", "x"),
            ("ALLOWEDPORTFOLIO_IDS", "x"),
            ("ALLOWED_INSTANSE_ARNS", "x"),
            ("ALLOWED_PROTFOLIO_IDS", "x"),
            ("ALOWED_PORTFOLIO_IDS", "x"),
            ("PROTECED_ACCOUNT_IDS", "x"),
            ("ALLOW_IAM_PATERN_PRINCIPALS", "true"),
            ("ALLOWED_INSATNCE_ARSN", "x"),
            ("ALOLWED_PORTFOILO_IDS", "x"),
            ("ALLWOED_PORTFOLIO_DIS", "x"),
            ("PROTECED_PERMISSION_SETS", "x"),
            ("PORTECTED_PERM_SET_ARNS", "x"),
            ("ALOWED_INSTANCES", "x"),
            ("ALOWED_SSO_INSTANCE_ARNS", "x"),
            ("ALLOEWD_ACCOUNTS", "x"),
            ("PORTECTED_PERMSET_ARNS", "x"),
            ("PROTETCED_PERMSET_ARNS", "x"),
            ("PROTECED_PERMSETS", "x"),
            ("PROTECED_TARGET_IDS", "x"),
            ("PROTECED_ACC_IDS", "x"),
            ("ALLOWED_INSATNCES", "x"),
            ("ALLOWED_INSTNCES", "x"),
            ("ALLOWED_INTSANCES", "x"),
            ("ALLOWED_INSANCES", "x"),
            ("ALLOWED_PORTFOILOS", "x"),
            ("ALLOWED_ACOUNTS", "x"),
            ("ALLOWED_ARNS", "x"),
            ("ALLOWED_IDC_ARNS", "x"),
        ] {
            let error = from_vars(&[typo]).err();
            assert_eq!(error.map(|e| e.variable), Some(typo.0.into()), "{typo:?}");
        }
        let known = from_vars(&[
            (
                "ALLOWED_INSTANCE_ARNS",
                "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40",
            ),
            ("PROTECTED_ACCOUNT_IDS", "111122223333"),
            ("ALLOW_IAM_PATTERN_PRINCIPALS", "false"),
            ("ALLOWEDNESS", "other"),
            ("ALLOWED_HOSTS", "localhost"),
            ("ALLOW_EMPTY_PASSWORD", "yes"),
            ("ALLOWED_WARNINGS", "all"),
            ("ALLOWED_PORTS", "8080"),
            ("ALLOW_ACCESS_LOG", "1"),
            ("ALLOWED_TARGETS", "x86_64"),
            ("ALLOW_PSQL_SSL", "1"),
            ("ALLOWED_ORIGINS", "*"),
            ("ALLOWED_USERS", "me"),
            ("FOLLOW_SSO_LINKS", "1"),
            ("PROJECT_ACCOUNT", "x"),
            ("ALLOWED_ACCESS", "x"),
            ("ALLOWED_PATHS", "x"),
            ("ALLOWED_PORTS_RANGE", "x"),
            ("ALLOWED_INSTALLERS", "x"),
        ])
        .expect("the guardrails it reads, and names not like theirs");
        assert_eq!(known.guardrails.protected_accounts.len(), 1);
    }

    /// Read as unset, a guardrail list that is not UTF-8 would let everything through.
    #[cfg(unix)]
    #[test]
    fn a_value_that_is_not_utf8_stops_the_start_naming_its_variable() {
        use std::os::unix::ffi::OsStringExt;
        for variable in ["PROTECTED_ACCOUNT_IDS", "WORK_QUEUE_URL", "MAX_ATTEMPTS"] {
            let mut map: HashMap<&str, OsString> = QUEUES
                .iter()
                .map(|(k, v)| (*k, OsString::from(*v)))
                .chain([("LEDGER_TABLE", OsString::from("assignment-ledger"))])
                .collect();
            map.insert(variable, OsString::from_vec(b"111111111111,\xff".to_vec()));
            let error = Config::from_os_lookup(|name| map.get(name).cloned()).err();
            assert_eq!(error.map(|e| e.variable), Some(variable.into()));
        }
    }

    #[test]
    fn defaults_match_the_spec() {
        let config = config(&QUEUES).unwrap();
        assert_eq!(config.max_concurrency, 4);
        assert_eq!(config.policy, Policy::default());
        assert_eq!(config.outcome_queue, None);
        assert_eq!(config.guardrails, Guardrails::default());
        assert_eq!(config.ledger_table.as_str(), "assignment-ledger");
        assert_eq!(config.metrics_namespace, "AssignmentWorker");
        let by_arn = super::TableName::parse(
            "arn:aws:dynamodb:eu-west-1:123456789012:table/assignment-ledger",
        );
        assert!(by_arn.is_ok(), "{by_arn:?}");
    }

    /// The reserve before the deadline grows with the SQS bounds, so that a step started
    /// just above it can still store its messages (README "How a batch is handled").
    #[test]
    fn the_call_reserve_covers_the_sqs_bounds() {
        let default = config(&QUEUES).unwrap();
        assert_eq!(default.sqs_operation_timeout(), Duration::from_secs(2));
        assert_eq!(
            crate::record_step::call_reserve(&default),
            Duration::from_secs(12)
        );
        let slow = config(&[
            QUEUES[0],
            QUEUES[1],
            ("SQS_ATTEMPT_TIMEOUT_MILLISECONDS", "2500"),
        ])
        .unwrap();
        assert_eq!(slow.sqs_operation_timeout(), Duration::from_secs(5));
        assert_eq!(
            crate::record_step::call_reserve(&slow),
            Duration::from_secs(18)
        );
    }

    #[test]
    fn each_bad_variable_is_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[QUEUES[1]], "WORK_QUEUE_URL"),
            (&[QUEUES[0]], "DEAD_LETTER_QUEUE_URL"),
            (
                &[QUEUES[0], QUEUES[1], ("OUTCOME_QUEUE_URL", "sqs/outcomes")],
                "OUTCOME_QUEUE_URL",
            ),
            (
                &[QUEUES[0], QUEUES[1], ("MAX_CONCURRENCY", "0")],
                "MAX_CONCURRENCY",
            ),
            (
                &[QUEUES[0], QUEUES[1], ("LEDGER_TABLE", "")],
                "LEDGER_TABLE",
            ),
            (
                &[QUEUES[0], QUEUES[1], ("LEDGER_TABLE", "ab")],
                "LEDGER_TABLE",
            ),
            (
                &[QUEUES[0], QUEUES[1], ("LEDGER_TABLE", "ledger table")],
                "LEDGER_TABLE",
            ),
            (
                &[
                    QUEUES[0],
                    QUEUES[1],
                    (
                        "LEDGER_TABLE",
                        "arn:aws:sqs:eu-west-1:123456789012:table/x1",
                    ),
                ],
                "LEDGER_TABLE",
            ),
            (
                &[QUEUES[0], QUEUES[1], ("MAX_ATTEMPTS", "ten")],
                "MAX_ATTEMPTS",
            ),
            (
                &[
                    QUEUES[0],
                    QUEUES[1],
                    ("SQS_ATTEMPT_TIMEOUT_MILLISECONDS", "50"),
                ],
                "SQS_ATTEMPT_TIMEOUT_MILLISECONDS",
            ),
            (
                &[QUEUES[0], QUEUES[1], ("POLL_MAX_DELAY_SECONDS", "901")],
                "POLL_MAX_DELAY_SECONDS",
            ),
            (
                &[QUEUES[0], QUEUES[1], ("POLL_INITIAL_DELAY_SECONDS", "90")],
                "POLL_MAX_DELAY_SECONDS",
            ),
            (
                &[
                    QUEUES[0],
                    QUEUES[1],
                    ("PROTECTED_ACCOUNT_IDS", "123456789012,12345"),
                ],
                "PROTECTED_ACCOUNT_IDS",
            ),
            (
                &[
                    QUEUES[0],
                    QUEUES[1],
                    ("ALLOWED_INSTANCE_ARNS", "arn:aws:sso:::instance/x"),
                ],
                "ALLOWED_INSTANCE_ARNS",
            ),
            (
                &[
                    QUEUES[0],
                    QUEUES[1],
                    ("PROTECTED_PERMISSION_SET_ARNS", "ps-1"),
                ],
                "PROTECTED_PERMISSION_SET_ARNS",
            ),
        ];
        for (pairs, variable) in cases {
            let error = config(pairs).unwrap_err();
            assert_eq!(error.variable, *variable, "{error}");
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("configuration: {variable}: "))
            );
            assert!(!error.to_string().contains('\n'));
        }
    }

    /// Only an empty value is unset (as CloudFormation passes a blank parameter); a value
    /// of blanks is set and malformed, so it stops the start naming the variable (SPEC
    /// §6) instead of quietly taking the default.
    #[test]
    fn a_value_of_blanks_is_malformed_and_only_an_empty_one_is_unset() {
        let optional = [
            "OUTCOME_QUEUE_URL",
            "METRICS_NAMESPACE",
            "MAX_CONCURRENCY",
            "MAX_ATTEMPTS",
            "POLL_DEADLINE_SECONDS",
            "POLL_INITIAL_DELAY_SECONDS",
            "POLL_MAX_DELAY_SECONDS",
            "BACKOFF_BASE_SECONDS",
            "BUSY_BACKOFF_MIN_SECONDS",
            "ALLOW_IAM_PATTERN_PRINCIPALS",
            "FUNCTION_CONCURRENCY",
            "IDENTITY_CENTER_RATE_PER_SECOND",
            "PROVISIONING_MILLISECONDS",
            "SQS_ATTEMPT_TIMEOUT_MILLISECONDS",
        ];
        for variable in optional {
            let unset = config(&[QUEUES[0], QUEUES[1], (variable, "")]);
            assert!(unset.is_ok(), "{variable}: {unset:?}");
            let error = config(&[QUEUES[0], QUEUES[1], (variable, " \t")]).unwrap_err();
            assert_eq!(error.variable, variable, "{error}");
        }
        for (variable, position) in [
            ("WORK_QUEUE_URL", 0),
            ("DEAD_LETTER_QUEUE_URL", 1),
            ("LEDGER_TABLE", 2),
        ] {
            let mut pairs = vec![QUEUES[0], QUEUES[1], ("LEDGER_TABLE", "assignment-ledger")];
            pairs[position].1 = "  ";
            let error = config(&pairs).unwrap_err();
            assert_eq!(error.variable, variable, "{error}");
            assert!(!error.problem.contains("not set"), "{error}");
        }
    }

    /// A guardrail list that is set but names nothing must not mean "any" (SPEC §6),
    /// and a FIFO queue refuses the per-message delays every retry and poll needs.
    #[test]
    fn settings_that_would_fail_open_or_never_send_stop_the_start() {
        let fifo = "https://sqs.eu-west-1.amazonaws.com/123456789012/work.fifo";
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[QUEUES[0], QUEUES[1], ("ALLOWED_INSTANCE_ARNS", ",")],
                "ALLOWED_INSTANCE_ARNS",
            ),
            (
                &[QUEUES[0], QUEUES[1], ("ALLOWED_INSTANCE_ARNS", " , ")],
                "ALLOWED_INSTANCE_ARNS",
            ),
            (
                &[QUEUES[0], QUEUES[1], ("PROTECTED_ACCOUNT_IDS", ",,")],
                "PROTECTED_ACCOUNT_IDS",
            ),
            // Blanks are not empty: set, they name nothing.
            (
                &[QUEUES[0], QUEUES[1], ("ALLOWED_INSTANCE_ARNS", " ")],
                "ALLOWED_INSTANCE_ARNS",
            ),
            (
                &[QUEUES[0], QUEUES[1], ("ALLOWED_PORTFOLIO_IDS", "\t")],
                "ALLOWED_PORTFOLIO_IDS",
            ),
            (
                &[QUEUES[0], QUEUES[1], ("PROTECTED_ACCOUNT_IDS", "  ")],
                "PROTECTED_ACCOUNT_IDS",
            ),
            (
                &[QUEUES[0], QUEUES[1], ("PROTECTED_PERMISSION_SET_ARNS", ",")],
                "PROTECTED_PERMISSION_SET_ARNS",
            ),
            (
                &[QUEUES[0], QUEUES[1], ("ALLOWED_PORTFOLIO_IDS", " , ")],
                "ALLOWED_PORTFOLIO_IDS",
            ),
            (
                &[QUEUES[0], QUEUES[1], ("ALLOWED_PORTFOLIO_IDS", "port-a b")],
                "ALLOWED_PORTFOLIO_IDS",
            ),
            (
                &[
                    QUEUES[0],
                    QUEUES[1],
                    ("ALLOW_IAM_PATTERN_PRINCIPALS", "yes"),
                ],
                "ALLOW_IAM_PATTERN_PRINCIPALS",
            ),
            (
                &[QUEUES[0], QUEUES[1], ("ALLOW_IAM_PATTERN_PRINCIPALS", "1")],
                "ALLOW_IAM_PATTERN_PRINCIPALS",
            ),
            (&[("WORK_QUEUE_URL", fifo), QUEUES[1]], "WORK_QUEUE_URL"),
            (
                &[
                    QUEUES[0],
                    (
                        "DEAD_LETTER_QUEUE_URL",
                        "https://sqs.eu-west-1.amazonaws.com/1/d.fifo",
                    ),
                ],
                "DEAD_LETTER_QUEUE_URL",
            ),
            (
                &[
                    QUEUES[0],
                    QUEUES[1],
                    (
                        "OUTCOME_QUEUE_URL",
                        "https://sqs.eu-west-1.amazonaws.com/1/o.fifo",
                    ),
                ],
                "OUTCOME_QUEUE_URL",
            ),
        ];
        for (pairs, variable) in cases {
            let error = config(pairs).expect_err(variable);
            assert_eq!(error.variable, *variable, "{error}");
        }
        // An empty value is unset, as CloudFormation passes a blank parameter.
        let blank = config(&[QUEUES[0], QUEUES[1], ("ALLOWED_INSTANCE_ARNS", "")]).unwrap();
        assert_eq!(blank.guardrails.allowed_instances, None);
        assert_eq!(blank.guardrails.allowed_portfolios, None);
        assert!(!blank.guardrails.allow_iam_pattern_principals);
        let patterns = config(&[
            QUEUES[0],
            QUEUES[1],
            ("ALLOW_IAM_PATTERN_PRINCIPALS", "TRUE"),
            ("ALLOWED_PORTFOLIO_IDS", "port-abc, port-def"),
        ])
        .unwrap();
        assert!(patterns.guardrails.allow_iam_pattern_principals);
        assert_eq!(
            patterns.guardrails.allowed_portfolios.map(|v| v.len()),
            Some(2)
        );
    }

    #[test]
    fn lists_are_parsed() {
        let config = config(&[
            QUEUES[0],
            QUEUES[1],
            ("PROTECTED_ACCOUNT_IDS", " 123456789012, 210987654321 ,"),
            (
                "ALLOWED_INSTANCE_ARNS",
                "arn:aws:sso:::instance/ssoins-1234567890abcdef",
            ),
        ])
        .unwrap();
        assert_eq!(config.guardrails.protected_accounts.len(), 2);
        assert_eq!(
            config.guardrails.allowed_instances.map(|v| v.len()),
            Some(1)
        );
    }
}
