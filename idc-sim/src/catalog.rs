//! The simulated Service Catalog portfolio principals: AssociatePrincipalWithPortfolio,
//! DisassociatePrincipalFromPortfolio and ListPrincipalsForPortfolio (awsJson1_1,
//! `X-Amz-Target: AWS242ServiceCatalogService.<Operation>`), on the same port as the
//! Identity Center calls.
//!
//! What makes the real one hard to drive, modelled here:
//! - the list lags behind the writes: a change shows in ListPrincipalsForPortfolio only
//!   [`Knobs::list_lag_seconds`] after the call that made it, while Associate and
//!   Disassociate act on the true state at once;
//! - a principal is keyed by ARN *and* type: disassociating with the wrong type (the
//!   API defaults to `IAM`) is `ResourceNotFoundException`, like any other principal
//!   that is not associated;
//! - at most [`Knobs::catalog_max_pattern_principals`] (10) `IAM_PATTERN` principals per
//!   portfolio (`LimitExceededException`);
//! - its own rate ([`Knobs::catalog_rate_per_second`], a token bucket separate from the
//!   Identity Center one, since the two are different services).
//!
//! Seeding (the `portfolios` member of a [`crate::SeedDocument`], JSON):
//! `{"portfolios": [{"portfolioId": "port-abc", "principals": [{"principalArn":
//! "arn:aws:iam::111122223333:role/Ops", "principalType": "IAM"}]}]}`. Seeded principals
//! are listed at once and are not checked against the Associate rules, so a seed can
//! hold what AWS once accepted (an ARN associated under the type it does not fit).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::{ApiError, Knobs, TokenBucket};
use crate::paging::PageTokens;

/// The namespace of the service's error shapes, as its `__type` carries it.
const ERROR_NAMESPACE: &str = "com.amazonaws.servicecatalog";

/// Largest and default ListPrincipalsForPortfolio page (the model's PageSize range is 0..20).
const MAX_PAGE_SIZE: usize = 20;

/// How a portfolio principal is matched (`PrincipalType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PortfolioPrincipalType {
    /// A full IAM ARN with its account id.
    #[serde(rename = "IAM")]
    Iam,
    /// An IAM ARN with no account id, `*` and `?` allowed after the resource type.
    #[serde(rename = "IAM_PATTERN")]
    IamPattern,
}

impl PortfolioPrincipalType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Iam => "IAM",
            Self::IamPattern => "IAM_PATTERN",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "IAM" => Some(Self::Iam),
            "IAM_PATTERN" => Some(Self::IamPattern),
            _ => None,
        }
    }
}

/// One principal of a portfolio; JSON `{"principalArn": ..., "principalType": "IAM"}`.
/// Ordered by ARN, then type: the order ListPrincipalsForPortfolio answers in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortfolioPrincipal {
    pub principal_arn: String,
    pub principal_type: PortfolioPrincipalType,
}

impl PortfolioPrincipal {
    pub fn new(principal_arn: impl Into<String>, principal_type: PortfolioPrincipalType) -> Self {
        Self {
            principal_arn: principal_arn.into(),
            principal_type,
        }
    }

    /// The API's shape of a listed principal.
    fn api_json(&self) -> Value {
        json!({"PrincipalARN": self.principal_arn, "PrincipalType": self.principal_type.as_str()})
    }
}

/// A portfolio to seed; JSON `{"portfolioId": "port-abc", "principals": [...]}`.
/// Seeding a portfolio that exists adds the principals to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortfolioSeed {
    pub portfolio_id: String,
    #[serde(default)]
    pub principals: Vec<PortfolioPrincipal>,
}

#[derive(Debug, Clone)]
enum Change {
    Added(PortfolioPrincipal),
    Removed(PortfolioPrincipal),
}

#[derive(Debug, Default)]
struct Portfolio {
    /// The true state: what Associate and Disassociate act on.
    principals: BTreeSet<PortfolioPrincipal>,
    /// What ListPrincipalsForPortfolio shows once `pending` is applied up to now.
    listed: BTreeSet<PortfolioPrincipal>,
    /// Changes not yet listed, in call order, with the time of the call.
    pending: VecDeque<(f64, Change)>,
}

impl Portfolio {
    fn change(&mut self, now: f64, change: Change) {
        match &change {
            Change::Added(principal) => self.principals.insert(principal.clone()),
            Change::Removed(principal) => self.principals.remove(principal),
        };
        self.pending.push_back((now, change));
    }

    /// Lists every change made at least `lag` ago.
    fn catch_up(&mut self, now: f64, lag: f64) {
        while let Some((at, _)) = self.pending.front() {
            if at + lag > now {
                break;
            }
            if let Some((_, change)) = self.pending.pop_front() {
                match change {
                    Change::Added(principal) => self.listed.insert(principal),
                    Change::Removed(principal) => self.listed.remove(&principal),
                };
            }
        }
    }
}

/// Where the next page of a listing starts: after `last` in `portfolio_id`'s list.
#[derive(Debug, Clone)]
struct PageCursor {
    portfolio_id: String,
    last: PortfolioPrincipal,
}

/// The Service Catalog side of the simulator's state.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    portfolios: BTreeMap<String, Portfolio>,
    page_tokens: PageTokens<PageCursor>,
    pub(crate) bucket: TokenBucket,
}

impl Catalog {
    pub(crate) fn new(burst: f64) -> Self {
        Self {
            bucket: TokenBucket::full(burst),
            ..Self::default()
        }
    }

    pub(crate) fn seed(&mut self, portfolios: Vec<PortfolioSeed>) {
        for seed in portfolios {
            let portfolio = self.portfolios.entry(seed.portfolio_id).or_default();
            for principal in seed.principals {
                portfolio.principals.insert(principal.clone());
                portfolio.listed.insert(principal);
            }
        }
    }

    /// The true principals of a portfolio (not the lagging list), or None if unknown.
    pub(crate) fn principals(&self, portfolio_id: &str) -> Option<Vec<PortfolioPrincipal>> {
        self.portfolios
            .get(portfolio_id)
            .map(|p| p.principals.iter().cloned().collect())
    }

    pub(crate) fn all_principals(&self) -> BTreeMap<String, Vec<PortfolioPrincipal>> {
        self.portfolios
            .iter()
            .map(|(id, p)| (id.clone(), p.principals.iter().cloned().collect()))
            .collect()
    }

    /// One call; the rate has been charged already.
    pub(crate) fn dispatch(
        &mut self,
        operation: &str,
        input: &Value,
        now: f64,
        knobs: &Knobs,
        rng: &mut fastrand::Rng,
    ) -> Result<Value, ApiError> {
        match operation {
            "AssociatePrincipalWithPortfolio" => self.associate(input, now, knobs),
            "DisassociatePrincipalFromPortfolio" => self.disassociate(input, now),
            "ListPrincipalsForPortfolio" => self.list(input, now, knobs, rng),
            other => Err(ApiError::new(
                400,
                "UnknownOperationException",
                format!("the simulator does not implement {other}"),
            )),
        }
    }

    fn portfolio(&mut self, id: &str) -> Result<&mut Portfolio, ApiError> {
        self.portfolios.get_mut(id).ok_or_else(|| {
            ApiError::new(
                400,
                "ResourceNotFoundException",
                format!("Portfolio {id} not found."),
            )
        })
    }

    fn associate(&mut self, input: &Value, now: f64, knobs: &Knobs) -> Result<Value, ApiError> {
        accept_language(input)?;
        let portfolio_id = portfolio_id(input)?;
        let arn = principal_arn(input)?;
        let principal_type = principal_type(input, true)?;
        check_principal_shape(&arn, principal_type)?;
        let portfolio = self.portfolio(&portfolio_id)?;
        let principal = PortfolioPrincipal::new(arn, principal_type);
        if portfolio.principals.contains(&principal) {
            // As AWS: associating again succeeds and changes nothing.
            return Ok(json!({}));
        }
        if principal_type == PortfolioPrincipalType::IamPattern {
            let patterns = portfolio
                .principals
                .iter()
                .filter(|p| p.principal_type == PortfolioPrincipalType::IamPattern)
                .count();
            if patterns >= knobs.catalog_max_pattern_principals {
                return Err(ApiError::new(
                    400,
                    "LimitExceededException",
                    format!(
                        "Portfolio {portfolio_id} already has the maximum of {} IAM_PATTERN principals",
                        knobs.catalog_max_pattern_principals
                    ),
                ));
            }
        }
        portfolio.change(now, Change::Added(principal));
        Ok(json!({}))
    }

    fn disassociate(&mut self, input: &Value, now: f64) -> Result<Value, ApiError> {
        accept_language(input)?;
        let portfolio_id = portfolio_id(input)?;
        let arn = principal_arn(input)?;
        // Optional here, and IAM when left out: the trap of the API reference.
        let principal_type = principal_type(input, false)?;
        let portfolio = self.portfolio(&portfolio_id)?;
        let principal = PortfolioPrincipal::new(arn, principal_type);
        if !portfolio.principals.contains(&principal) {
            return Err(ApiError::new(
                400,
                "ResourceNotFoundException",
                format!(
                    "Principal {} of type {} is not associated with portfolio {portfolio_id}.",
                    principal.principal_arn,
                    principal.principal_type.as_str()
                ),
            ));
        }
        portfolio.change(now, Change::Removed(principal));
        Ok(json!({}))
    }

    fn list(
        &mut self,
        input: &Value,
        now: f64,
        knobs: &Knobs,
        rng: &mut fastrand::Rng,
    ) -> Result<Value, ApiError> {
        accept_language(input)?;
        let portfolio_id = portfolio_id(input)?;
        let page_size = page_size(input)?;
        let token = optional_string(input, "PageToken")?;
        if let Some(token) = &token {
            check_length(token, "pageToken", 0, 2024)?;
            check_pattern(token, "pageToken", &PAGE_TOKEN)?;
        }
        let lag = knobs.list_lag_seconds.max(0.0);
        let portfolio = self.portfolio(&portfolio_id)?;
        portfolio.catch_up(now, lag);
        let after = match &token {
            None => None,
            Some(token) => match self.page_tokens.get(token) {
                Some(cursor) if cursor.portfolio_id == portfolio_id => Some(cursor.last.clone()),
                _ => {
                    return Err(ApiError::new(
                        400,
                        "InvalidParametersException",
                        "The page token is not valid.",
                    ));
                }
            },
        };
        let Some(portfolio) = self.portfolios.get(&portfolio_id) else {
            return Err(ApiError::new(
                400,
                "ResourceNotFoundException",
                format!("Portfolio {portfolio_id} not found."),
            ));
        };
        let mut remaining = portfolio
            .listed
            .iter()
            .filter(|p| after.as_ref().is_none_or(|last| *p > last));
        let page: Vec<PortfolioPrincipal> = remaining.by_ref().take(page_size).cloned().collect();
        let mut answer = json!({
            "Principals": page.iter().map(PortfolioPrincipal::api_json).collect::<Vec<_>>(),
        });
        if remaining.next().is_some()
            && let Some(last) = page.last()
        {
            let cursor = PageCursor {
                portfolio_id,
                last: last.clone(),
            };
            answer["NextPageToken"] = json!(self.page_tokens.issue(cursor, rng));
        }
        Ok(answer)
    }
}

/// The error body AWS's JSON front end gives this service: a namespaced `__type`.
/// Throttling comes from the shared front end, in its own namespace and casing.
pub(crate) fn error_body(error: &ApiError) -> Value {
    if error.code == "ThrottlingException" {
        json!({"__type": "com.amazon.coral.availability#ThrottlingException", "message": error.message})
    } else if error.code == "InternalFailure" {
        json!({"__type": "com.amazon.coral.service#InternalFailure", "message": error.message})
    } else {
        json!({"__type": format!("{ERROR_NAMESPACE}#{}", error.code), "Message": error.message})
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "InvalidParametersException", message)
}

fn serialization(field: &str, what: &str) -> ApiError {
    ApiError::new(
        400,
        "SerializationException",
        format!("{field} must be {what}"),
    )
}

fn optional_string(input: &Value, field: &str) -> Result<Option<String>, ApiError> {
    match input.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(serialization(field, "a string")),
    }
}

fn required_string(input: &Value, field: &str, wire: &str) -> Result<String, ApiError> {
    optional_string(input, field)?.ok_or_else(|| {
        invalid(format!(
            "1 validation error detected: Value null at '{wire}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

fn check_length(value: &str, wire: &str, min: usize, max: usize) -> Result<(), ApiError> {
    // The model counts characters, not bytes.
    let length = value.chars().count();
    if length < min || length > max {
        return Err(invalid(format!(
            "1 validation error detected: Value '{value}' at '{wire}' failed to satisfy constraint: \
             Member must have length between {min} and {max}"
        )));
    }
    Ok(())
}

fn check_pattern(value: &str, wire: &str, pattern: &Regex) -> Result<(), ApiError> {
    if pattern.is_match(value) {
        return Ok(());
    }
    Err(invalid(format!(
        "1 validation error detected: Value '{value}' at '{wire}' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: {}",
        pattern.as_str()
    )))
}

fn accept_language(input: &Value) -> Result<(), ApiError> {
    if let Some(language) = optional_string(input, "AcceptLanguage")? {
        check_length(&language, "acceptLanguage", 0, 100)?;
    }
    Ok(())
}

fn portfolio_id(input: &Value) -> Result<String, ApiError> {
    let id = required_string(input, "PortfolioId", "portfolioId")?;
    check_length(&id, "portfolioId", 1, 100)?;
    check_pattern(&id, "portfolioId", &PORTFOLIO_ID)?;
    Ok(id)
}

fn principal_arn(input: &Value) -> Result<String, ApiError> {
    let arn = required_string(input, "PrincipalARN", "principalARN")?;
    check_length(&arn, "principalARN", 1, 1000)?;
    Ok(arn)
}

/// `PrincipalType`; when not `required`, a missing one is `IAM`.
fn principal_type(input: &Value, required: bool) -> Result<PortfolioPrincipalType, ApiError> {
    let value = if required {
        required_string(input, "PrincipalType", "principalType")?
    } else {
        optional_string(input, "PrincipalType")?.unwrap_or_else(|| "IAM".to_owned())
    };
    PortfolioPrincipalType::parse(&value).ok_or_else(|| {
        invalid(format!(
            "1 validation error detected: Value '{value}' at 'principalType' failed to satisfy constraint: \
             Member must satisfy enum value set: [IAM, IAM_PATTERN]"
        ))
    })
}

fn page_size(input: &Value) -> Result<usize, ApiError> {
    let size = match input.get("PageSize") {
        None | Some(Value::Null) => return Ok(MAX_PAGE_SIZE),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| serialization("PageSize", "an integer"))?,
        Some(_) => return Err(serialization("PageSize", "an integer")),
    };
    match usize::try_from(size) {
        // 0 is within the model's range and means "the default", as for other AWS pagers.
        Ok(0) => Ok(MAX_PAGE_SIZE),
        Ok(size) if size <= MAX_PAGE_SIZE => Ok(size),
        _ => Err(invalid(format!(
            "1 validation error detected: Value '{size}' at 'pageSize' failed to satisfy constraint: \
             Member must have value between 0 and {MAX_PAGE_SIZE}"
        ))),
    }
}

/// The Associate rules of the API reference: `IAM` is a full IAM ARN of a user, group
/// or role with its account id and no wildcard; `IAM_PATTERN` has no account id, a
/// concrete partition and resource type, and `*` / `?` only after the resource type.
fn check_principal_shape(
    arn: &str,
    principal_type: PortfolioPrincipalType,
) -> Result<(), ApiError> {
    let (pattern, rule) = match principal_type {
        PortfolioPrincipalType::Iam => (
            &*IAM_ARN,
            "a fully defined IAM ARN with an account id (arn:<partition>:iam::<account>:<user|group|role>/<name>), no wildcards",
        ),
        PortfolioPrincipalType::IamPattern => (
            &*IAM_PATTERN_ARN,
            "an IAM ARN with no account id (arn:<partition>:iam:::<user|group|role>/<path and name>), wildcards only after the resource type",
        ),
    };
    if pattern.is_match(arn) {
        return Ok(());
    }
    Err(invalid(format!(
        "PrincipalARN {arn} is not valid for PrincipalType {}: expected {rule}",
        principal_type.as_str()
    )))
}

fn regex(pattern: &str) -> Regex {
    match Regex::new(pattern) {
        Ok(re) => re,
        Err(e) => panic!("pattern {pattern}: {e}"),
    }
}

// The model's patterns, anchored: AWS matches the whole value.
static PORTFOLIO_ID: LazyLock<Regex> = LazyLock::new(|| regex(r"^[a-zA-Z0-9_\-]*$"));
static PAGE_TOKEN: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^[\x09\x0a\x0d\x20-\x{D7FF}\x{E000}-\x{FFFD}]*$"));
static IAM_ARN: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^arn:aws(-[a-z]{1,5}){0,3}:iam::[0-9]{12}:(user|group|role)/[!-)+->@-~]+$")
});
static IAM_PATTERN_ARN: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^arn:aws(-[a-z]{1,5}){0,3}:iam:::(user|group|role)/[!-~]+$"));
