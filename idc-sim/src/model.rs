//! The simulated Identity Center: state, behaviour knobs, and one function per API
//! operation. Time is the simulator's clock in seconds, passed in, so the model itself
//! is deterministic for a given seed and call order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalog::{Catalog, PortfolioPrincipal, PortfolioSeed};
use crate::paging::PageTokens;

/// An error in the API's own JSON shape (`__type` and `Message`), with its HTTP status.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn validation(message: impl Into<String>) -> Self {
        Self::new(400, "ValidationException", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(400, "ResourceNotFoundException", message)
    }

    /// The body in Identity Center's shape.
    pub fn body(&self) -> Value {
        json!({"__type": self.code, "Message": self.message})
    }

    /// The body in Service Catalog's shape (a namespaced `__type`).
    pub fn catalog_body(&self) -> Value {
        crate::catalog::error_body(self)
    }
}

/// How a delete of an assignment that does not exist answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeleteMissing {
    /// Accepted, then FAILED "Received a 404 status error: EntitlementItem doesn't exist".
    Failed,
    /// ResourceNotFoundException at once.
    NotFound,
}

/// Behaviour settings; each has a default that mirrors the real service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Knobs {
    /// Simulated seconds per real second.
    pub time_scale: f64,
    /// Provisioning time of an operation: uniform between these (simulated seconds).
    pub provisioning_min_seconds: f64,
    pub provisioning_max_seconds: f64,
    /// The shared API rate (token bucket, simulated time).
    pub rate_per_second: f64,
    pub rate_burst: f64,
    /// CreateAccountAssignment operations that may be IN_PROGRESS at once.
    pub max_outstanding_creates: usize,
    /// A write on the same assignment within this long of the previous one's
    /// completion gets ConflictException (propagation).
    pub propagation_seconds: f64,
    /// Describe*Status answers ResourceNotFoundException this long after submit.
    pub not_visible_seconds: f64,
    pub delete_missing: DeleteMissing,
    /// Accounts where Create/Delete answer AccessDeniedException (a management account).
    pub denied_accounts: Vec<String>,
    /// Fraction of API calls answered with an HTML 500.
    pub fault_http_500: f64,
    /// Fraction of operations that end FAILED for no reason of the caller's.
    pub fault_failed: f64,
    /// Fraction of API calls whose connection is dropped without an answer (half of
    /// them before the call takes effect, half after).
    pub fault_drop: f64,
    /// Service Catalog: a principal associated or disassociated shows in
    /// ListPrincipalsForPortfolio only this long (simulated seconds) after the call.
    /// AWS publishes no figure; the default is a guess of a few seconds.
    pub list_lag_seconds: f64,
    /// Service Catalog's own rate (a token bucket separate from Identity Center's,
    /// simulated time). AWS publishes no figure; the default mirrors Identity Center's.
    pub catalog_rate_per_second: f64,
    pub catalog_rate_burst: f64,
    /// Service Catalog: IAM_PATTERN principals a portfolio may have (AWS: 10).
    pub catalog_max_pattern_principals: usize,
    /// Fraction of API calls answered with a JSON 500 (Identity Center's
    /// `InternalServerException`; Service Catalog's `InternalFailure`), drawn after
    /// `fault_http_500` and `fault_drop`.
    pub fault_internal_error: f64,
    /// Page size of the Identity Center List operations when the call gives no
    /// MaxResults (1..100). AWS does not document its default; the largest is used.
    pub default_max_results: usize,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            time_scale: 1.0,
            provisioning_min_seconds: 1.0,
            provisioning_max_seconds: 6.0,
            rate_per_second: 20.0,
            rate_burst: 20.0,
            max_outstanding_creates: 15,
            propagation_seconds: 2.0,
            not_visible_seconds: 0.5,
            delete_missing: DeleteMissing::Failed,
            denied_accounts: Vec::new(),
            fault_http_500: 0.0,
            fault_failed: 0.0,
            fault_drop: 0.0,
            list_lag_seconds: 2.0,
            catalog_rate_per_second: 20.0,
            catalog_rate_burst: 20.0,
            catalog_max_pattern_principals: 10,
            fault_internal_error: 0.0,
            default_max_results: 100,
        }
    }
}

/// One account assignment, as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    pub instance_arn: String,
    pub account_id: String,
    pub permission_set_arn: String,
    pub principal_type: String,
    pub principal_id: String,
}

impl Assignment {
    fn target(&self) -> (String, String, String) {
        (
            self.instance_arn.clone(),
            self.account_id.clone(),
            self.permission_set_arn.clone(),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OperationKind {
    Create,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    InProgress,
    Succeeded,
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "IN_PROGRESS",
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone)]
struct Operation {
    kind: OperationKind,
    assignment: Assignment,
    status: Status,
    failure_reason: Option<String>,
    /// Decided at submit: the operation ends FAILED with this reason (injected fault).
    injected_failure: bool,
    submitted_at: f64,
    completes_at: f64,
}

/// What the simulator seeds before a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Seed {
    pub instances: Vec<String>,
    pub permission_sets: Vec<String>,
    /// Known users and groups; when empty, every principal id is known.
    pub principals: Vec<String>,
    pub assignments: Vec<Assignment>,
}

/// Everything a seed file or `POST /_sim/seed` may hold: the members of [`Seed`] and
/// `portfolios` (Service Catalog, see [`PortfolioSeed`]). JSON:
/// `{"instances": [...], "permissionSets": [...], "principals": [...],
/// "assignments": [...], "portfolios": [{"portfolioId": "port-abc", "principals":
/// [{"principalArn": "...", "principalType": "IAM" | "IAM_PATTERN"}]}]}`, every member
/// optional, unknown members refused.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedDocument {
    #[serde(flatten)]
    pub seed: Seed,
    pub portfolios: Vec<PortfolioSeed>,
}

// By hand: `Seed` refuses unknown members, which serde's flatten cannot combine with.
impl<'de> Deserialize<'de> for SeedDocument {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut members = serde_json::Map::<String, Value>::deserialize(deserializer)?;
        let portfolios = match members.remove("portfolios") {
            Some(portfolios) => serde_json::from_value(portfolios).map_err(D::Error::custom)?,
            None => Vec::new(),
        };
        let seed = serde_json::from_value(Value::Object(members)).map_err(D::Error::custom)?;
        Ok(Self { seed, portfolios })
    }
}

/// Counters for the admin endpoint and the benchmark.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub calls: BTreeMap<String, u64>,
    pub throttled_rate: u64,
    pub throttled_busy: u64,
    pub conflicts: u64,
    pub access_denied: u64,
    pub validation_errors: u64,
    pub http_500: u64,
    pub dropped: u64,
    pub injected_failures: u64,
    pub max_outstanding_creates_seen: usize,
    /// Service Catalog refusals, by kind (its calls are in `calls` too).
    pub catalog_throttled: u64,
    pub catalog_invalid_parameters: u64,
    pub catalog_not_found: u64,
    pub catalog_limit_exceeded: u64,
    /// JSON 500s drawn by `fault_internal_error`.
    pub internal_errors: u64,
}

/// A token bucket on simulated time.
#[derive(Debug, Clone, Default)]
pub(crate) struct TokenBucket {
    tokens: f64,
    at: f64,
}

impl TokenBucket {
    pub(crate) fn full(burst: f64) -> Self {
        Self {
            tokens: burst,
            at: 0.0,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, now: f64, rate: f64, burst: f64) -> bool {
        let elapsed = (now - self.at).max(0.0);
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        // A call can arrive with an earlier clock reading than the last (the server reads
        // the clock before taking the model's lock): never rewind, or that span refills twice.
        self.at = self.at.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The simulator's state.
pub struct Model {
    pub knobs: Knobs,
    /// Epoch seconds at simulated time zero: dates in answers (`CreatedDate`) are this
    /// plus simulated time. [`Model::new`] sets it to the wall clock.
    pub epoch_at_start: f64,
    rng: fastrand::Rng,
    instances: BTreeSet<String>,
    permission_sets: BTreeSet<String>,
    principals: BTreeSet<String>,
    assignments: BTreeSet<Assignment>,
    creations: HashMap<String, Operation>,
    deletions: HashMap<String, Operation>,
    /// When the last write on each assignment completed (propagation conflicts).
    last_completed: HashMap<Assignment, f64>,
    bucket: TokenBucket,
    next_id: u64,
    catalog: Catalog,
    page_tokens: PageTokens<ListCursor>,
    pub counters: Counters,
}

/// What the transport should do with a call before handing it to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    Http500,
    DropBefore,
    DropAfter,
    /// A JSON 500 in the service's own error shape.
    InternalError,
}

impl Model {
    pub fn new(knobs: Knobs, seed: u64) -> Self {
        let burst = knobs.rate_burst;
        let knobs_catalog_burst = knobs.catalog_rate_burst;
        Self {
            knobs,
            epoch_at_start: wall_clock(),
            rng: fastrand::Rng::with_seed(seed),
            instances: BTreeSet::new(),
            permission_sets: BTreeSet::new(),
            principals: BTreeSet::new(),
            assignments: BTreeSet::new(),
            creations: HashMap::new(),
            deletions: HashMap::new(),
            last_completed: HashMap::new(),
            bucket: TokenBucket::full(burst),
            next_id: 0,
            catalog: Catalog::new(knobs_catalog_burst),
            page_tokens: PageTokens::default(),
            counters: Counters::default(),
        }
    }

    pub fn seed(&mut self, seed: Seed) {
        self.instances.extend(seed.instances);
        self.permission_sets.extend(seed.permission_sets);
        self.principals.extend(seed.principals);
        self.assignments.extend(seed.assignments);
    }

    /// Seeds Service Catalog portfolios and their principals (listed at once).
    pub fn seed_portfolios(&mut self, portfolios: Vec<PortfolioSeed>) {
        self.catalog.seed(portfolios);
    }

    /// Seeds both services.
    pub fn seed_document(&mut self, document: SeedDocument) {
        self.seed(document.seed);
        self.seed_portfolios(document.portfolios);
    }

    /// A portfolio's principals as they are (not as the lagging list shows them), in
    /// list order; None for a portfolio that does not exist.
    pub fn portfolio_principals(&self, portfolio_id: &str) -> Option<Vec<PortfolioPrincipal>> {
        self.catalog.principals(portfolio_id)
    }

    /// Every portfolio's principals as they are.
    pub fn portfolios(&self) -> BTreeMap<String, Vec<PortfolioPrincipal>> {
        self.catalog.all_principals()
    }

    /// Handles one Service Catalog call (`operation` from `X-Amz-Target`), charged to
    /// the Service Catalog rate.
    pub fn catalog_call(
        &mut self,
        operation: &str,
        input: &Value,
        now: f64,
    ) -> Result<Value, ApiError> {
        *self.counters.calls.entry(operation.to_owned()).or_default() += 1;
        let result = if self.catalog.bucket.take(
            now,
            self.knobs.catalog_rate_per_second,
            self.knobs.catalog_rate_burst,
        ) {
            self.catalog
                .dispatch(operation, input, now, &self.knobs, &mut self.rng)
        } else {
            Err(ApiError::new(400, "ThrottlingException", "Rate exceeded"))
        };
        if let Err(error) = &result {
            let counter = match error.code {
                "ThrottlingException" => &mut self.counters.catalog_throttled,
                "InvalidParametersException" => &mut self.counters.catalog_invalid_parameters,
                "ResourceNotFoundException" => &mut self.counters.catalog_not_found,
                "LimitExceededException" => &mut self.counters.catalog_limit_exceeded,
                _ => return result,
            };
            *counter += 1;
        }
        result
    }

    /// The assignments that exist at `now`.
    pub fn assignments(&mut self, now: f64) -> Vec<Assignment> {
        self.advance(now);
        self.assignments.iter().cloned().collect()
    }

    /// The operations submitted on `assignment`, oldest first, one line each: for a
    /// run's diagnostics when an assignment ends in an unexpected state.
    pub fn operations_on(&self, assignment: &Assignment) -> Vec<String> {
        let mut operations: Vec<(&String, &Operation)> = self
            .creations
            .iter()
            .chain(&self.deletions)
            .filter(|(_, op)| &op.assignment == assignment)
            .collect();
        operations.sort_by(|a, b| a.1.submitted_at.total_cmp(&b.1.submitted_at));
        operations
            .into_iter()
            .map(|(id, op)| {
                format!(
                    "{:?} {id} submitted at {:.1} s, ends at {:.1} s: {}{}",
                    op.kind,
                    op.submitted_at,
                    op.completes_at,
                    op.status.as_str(),
                    op.failure_reason
                        .as_deref()
                        .map(|reason| format!(" ({reason})"))
                        .unwrap_or_default()
                )
            })
            .collect()
    }

    pub fn outstanding_creates(&self) -> usize {
        self.creations
            .values()
            .filter(|op| op.status == Status::InProgress)
            .count()
    }

    /// Draws the transport fault for one call.
    pub fn draw_fault(&mut self) -> Fault {
        let draw = self.rng.f64();
        let knobs = &self.knobs;
        let fault = if draw < knobs.fault_http_500 {
            Fault::Http500
        } else if draw < knobs.fault_http_500 + knobs.fault_drop / 2.0 {
            Fault::DropBefore
        } else if draw < knobs.fault_http_500 + knobs.fault_drop {
            Fault::DropAfter
        } else if draw < knobs.fault_http_500 + knobs.fault_drop + knobs.fault_internal_error {
            Fault::InternalError
        } else {
            Fault::None
        };
        match fault {
            Fault::Http500 => self.counters.http_500 += 1,
            Fault::DropBefore | Fault::DropAfter => self.counters.dropped += 1,
            Fault::InternalError => self.counters.internal_errors += 1,
            Fault::None => {}
        }
        fault
    }

    /// Handles one API call (`operation` from `X-Amz-Target`).
    pub fn call(&mut self, operation: &str, input: &Value, now: f64) -> Result<Value, ApiError> {
        *self.counters.calls.entry(operation.to_owned()).or_default() += 1;
        self.advance(now);
        let result = self
            .take_token(now)
            .and_then(|()| self.dispatch(operation, input, now));
        if let Err(error) = &result {
            match error.code {
                "ThrottlingException" if error.message.contains("processing") => {
                    self.counters.throttled_busy += 1
                }
                "ThrottlingException" => self.counters.throttled_rate += 1,
                "ConflictException" => self.counters.conflicts += 1,
                "AccessDeniedException" => self.counters.access_denied += 1,
                "ValidationException" => self.counters.validation_errors += 1,
                _ => {}
            }
        }
        result
    }

    fn dispatch(&mut self, operation: &str, input: &Value, now: f64) -> Result<Value, ApiError> {
        match operation {
            "CreateAccountAssignment" => self.submit(OperationKind::Create, input, now),
            "DeleteAccountAssignment" => self.submit(OperationKind::Delete, input, now),
            "DescribeAccountAssignmentCreationStatus" => self.describe(
                OperationKind::Create,
                input,
                "AccountAssignmentCreationRequestId",
                now,
            ),
            "DescribeAccountAssignmentDeletionStatus" => self.describe(
                OperationKind::Delete,
                input,
                "AccountAssignmentDeletionRequestId",
                now,
            ),
            "ListAccountAssignments" => self.list_assignments(input),
            "ListAccountAssignmentCreationStatus" => {
                self.list_statuses(OperationKind::Create, input)
            }
            "ListAccountAssignmentDeletionStatus" => {
                self.list_statuses(OperationKind::Delete, input)
            }
            "ListInstances" => self.list_instances(input),
            "CreatePermissionSet" => self.create_permission_set(input, now),
            "ListPermissionSets" => self.list_permission_sets(input),
            other => Err(ApiError::new(
                400,
                "UnknownOperationException",
                format!("the simulator does not implement {other}"),
            )),
        }
    }

    /// Completes every operation whose provisioning time has passed, in time order.
    fn advance(&mut self, now: f64) {
        let mut due: Vec<(f64, OperationKind, String)> = self
            .creations
            .iter()
            .map(|(id, op)| (op, OperationKind::Create, id))
            .chain(
                self.deletions
                    .iter()
                    .map(|(id, op)| (op, OperationKind::Delete, id)),
            )
            .filter(|(op, _, _)| op.status == Status::InProgress && op.completes_at <= now)
            .map(|(op, kind, id)| (op.completes_at, kind, id.clone()))
            .collect();
        due.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.2.cmp(&b.2)));
        for (at, kind, id) in due {
            let principals_known = self.principals.is_empty();
            let table = match kind {
                OperationKind::Create => &mut self.creations,
                OperationKind::Delete => &mut self.deletions,
            };
            let Some(op) = table.get_mut(&id) else {
                continue;
            };
            let assignment = op.assignment.clone();
            let (status, reason) = if op.injected_failure {
                (
                    Status::Failed,
                    Some(
                        "Internal failure while provisioning the assignment (injected fault)"
                            .to_owned(),
                    ),
                )
            } else if kind == OperationKind::Create
                && !principals_known
                && !self.principals.contains(&assignment.principal_id)
            {
                (
                    Status::Failed,
                    Some(format!(
                        "Request failed: the {} assignee {} was not found in directory",
                        assignment.principal_type, assignment.principal_id
                    )),
                )
            } else if kind == OperationKind::Delete && !self.assignments.contains(&assignment) {
                (
                    Status::Failed,
                    Some("Received a 404 status error: EntitlementItem doesn't exist for the given principal".to_owned()),
                )
            } else {
                (Status::Succeeded, None)
            };
            op.status = status;
            op.failure_reason = reason;
            if status == Status::Succeeded {
                match kind {
                    OperationKind::Create => self.assignments.insert(assignment.clone()),
                    OperationKind::Delete => self.assignments.remove(&assignment),
                };
            }
            self.last_completed.insert(assignment, at);
        }
    }

    fn take_token(&mut self, now: f64) -> Result<(), ApiError> {
        if self
            .bucket
            .take(now, self.knobs.rate_per_second, self.knobs.rate_burst)
        {
            Ok(())
        } else {
            Err(ApiError::new(400, "ThrottlingException", "Rate exceeded"))
        }
    }

    /// A date in answers: simulated time `at` on the real calendar, to the millisecond.
    fn date(&self, at: f64) -> f64 {
        ((self.epoch_at_start + at) * 1000.0).round() / 1000.0
    }

    fn known_instance(&self, instance: &str) -> Result<(), ApiError> {
        if self.instances.contains(instance) {
            Ok(())
        } else {
            Err(ApiError::not_found(format!(
                "Instance {instance} does not exist"
            )))
        }
    }

    /// Validates every member of a Create/Delete request, then looks up the instance
    /// and permission set (AWS validates the whole request first).
    fn assignment(&self, input: &Value) -> Result<Assignment, ApiError> {
        let instance_arn = instance_arn(input)?;
        let account_id = string(input, "TargetId")?;
        check(&account_id, "targetId", &ACCOUNT_ID)?;
        check_enum(
            &string(input, "TargetType")?,
            "targetType",
            &["AWS_ACCOUNT"],
        )?;
        let permission_set_arn = string(input, "PermissionSetArn")?;
        check(&permission_set_arn, "permissionSetArn", &PERMISSION_SET_ARN)?;
        let principal_type = string(input, "PrincipalType")?;
        check_enum(&principal_type, "principalType", &["USER", "GROUP"])?;
        let principal_id = string(input, "PrincipalId")?;
        check_length(&principal_id, "principalId", 1, 47)?;
        check(&principal_id, "principalId", &PRINCIPAL_ID)?;
        self.known_instance(&instance_arn)?;
        if !self.permission_sets.contains(&permission_set_arn) {
            return Err(ApiError::not_found(format!(
                "PermissionSet {permission_set_arn} does not exist"
            )));
        }
        Ok(Assignment {
            instance_arn,
            account_id,
            permission_set_arn,
            principal_type,
            principal_id,
        })
    }

    fn submit(&mut self, kind: OperationKind, input: &Value, now: f64) -> Result<Value, ApiError> {
        let assignment = self.assignment(input)?;
        if self.knobs.denied_accounts.contains(&assignment.account_id) {
            return Err(ApiError::new(
                400,
                "AccessDeniedException",
                format!(
                    "User is not authorized to change assignments in account {}",
                    assignment.account_id
                ),
            ));
        }
        let target = assignment.target();
        let busy_target = self
            .creations
            .values()
            .chain(self.deletions.values())
            .any(|op| op.status == Status::InProgress && op.assignment.target() == target);
        if busy_target {
            return Err(ApiError::new(
                400,
                "ConflictException",
                "Could not complete this operation because another operation on the same account and permission set is in progress",
            ));
        }
        if self
            .last_completed
            .get(&assignment)
            .is_some_and(|at| now < at + self.knobs.propagation_seconds)
        {
            return Err(ApiError::new(
                400,
                "ConflictException",
                "The previous change to this assignment is still propagating; try again later",
            ));
        }
        if kind == OperationKind::Create
            && self.outstanding_creates() >= self.knobs.max_outstanding_creates
        {
            return Err(ApiError::new(
                400,
                "ThrottlingException",
                "There are too many requests processing. Please try again later.",
            ));
        }
        if kind == OperationKind::Delete
            && self.knobs.delete_missing == DeleteMissing::NotFound
            && !self.assignments.contains(&assignment)
        {
            return Err(ApiError::not_found("The account assignment does not exist"));
        }
        self.next_id += 1;
        let id = request_id(self.next_id, &mut self.rng);
        let spread =
            (self.knobs.provisioning_max_seconds - self.knobs.provisioning_min_seconds).max(0.0);
        let op = Operation {
            kind,
            assignment,
            status: Status::InProgress,
            failure_reason: None,
            injected_failure: self.rng.f64() < self.knobs.fault_failed,
            submitted_at: now,
            completes_at: now
                + self.knobs.provisioning_min_seconds.max(0.0)
                + self.rng.f64() * spread,
        };
        if op.injected_failure {
            self.counters.injected_failures += 1;
        }
        let answer = status_json(&id, &op, self.date(op.submitted_at));
        match kind {
            OperationKind::Create => {
                self.creations.insert(id, op);
                self.counters.max_outstanding_creates_seen = self
                    .counters
                    .max_outstanding_creates_seen
                    .max(self.outstanding_creates());
                Ok(json!({"AccountAssignmentCreationStatus": answer}))
            }
            OperationKind::Delete => {
                self.deletions.insert(id, op);
                Ok(json!({"AccountAssignmentDeletionStatus": answer}))
            }
        }
    }

    fn describe(
        &mut self,
        kind: OperationKind,
        input: &Value,
        id_field: &str,
        now: f64,
    ) -> Result<Value, ApiError> {
        let instance = instance_arn(input)?;
        let id = string(input, id_field)?;
        check_length(&id, &wire_name(id_field), 36, 36)?;
        check(&id, &wire_name(id_field), &REQUEST_ID)?;
        self.known_instance(&instance)?;
        let table = match kind {
            OperationKind::Create => &self.creations,
            OperationKind::Delete => &self.deletions,
        };
        let op = table
            .get(&id)
            .filter(|op| now >= op.submitted_at + self.knobs.not_visible_seconds)
            .ok_or_else(|| ApiError::not_found(format!("Request {id} does not exist")))?;
        let key = match op.kind {
            OperationKind::Create => "AccountAssignmentCreationStatus",
            OperationKind::Delete => "AccountAssignmentDeletionStatus",
        };
        Ok(json!({ key: status_json(&id, op, self.date(op.submitted_at)) }))
    }

    /// MaxResults and NextToken of a List call, validated.
    fn page_request(&self, input: &Value) -> Result<PageRequest, ApiError> {
        let max_results = match optional_integer(input, "MaxResults")? {
            None => self.knobs.default_max_results.clamp(1, MAX_RESULTS),
            Some(n) => match usize::try_from(n) {
                Ok(n) if (1..=MAX_RESULTS).contains(&n) => n,
                _ => {
                    return Err(ApiError::validation(format!(
                        "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: \
                         Member must have value between 1 and {MAX_RESULTS}"
                    )));
                }
            },
        };
        let token = optional_string(input, "NextToken")?;
        if let Some(token) = &token {
            check_length(token, "nextToken", 0, 2048)?;
            check(token, "nextToken", &NEXT_TOKEN)?;
        }
        Ok(PageRequest { max_results, token })
    }

    /// One page of `items` (sort key, item) for the listing named by `scope` (the
    /// operation and the parameters that choose its items: a token works only there).
    fn page(
        &mut self,
        scope: String,
        mut items: Vec<(String, Value)>,
        request: PageRequest,
    ) -> Result<(Vec<Value>, Option<String>), ApiError> {
        let after = match &request.token {
            None => None,
            Some(token) => match self.page_tokens.get(token) {
                Some(cursor) if cursor.scope == scope => Some(cursor.last.clone()),
                _ => {
                    return Err(ApiError::validation(
                        "The NextToken is not valid for this request",
                    ));
                }
            },
        };
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let mut rest = items
            .into_iter()
            .filter(|(key, _)| after.as_ref().is_none_or(|last| key > last));
        let page: Vec<(String, Value)> = rest.by_ref().take(request.max_results).collect();
        let more = rest.next().is_some();
        let next = match page.last() {
            Some((last, _)) if more => {
                let cursor = ListCursor {
                    scope,
                    last: last.clone(),
                };
                Some(self.page_tokens.issue(cursor, &mut self.rng))
            }
            _ => None,
        };
        Ok((page.into_iter().map(|(_, item)| item).collect(), next))
    }

    /// `{key: items}` and, when more follow, `NextToken`.
    fn paged_answer(key: &str, (items, next): (Vec<Value>, Option<String>)) -> Value {
        let mut answer = json!({ key: items });
        if let Some(next) = next {
            answer["NextToken"] = json!(next);
        }
        answer
    }

    fn list_assignments(&mut self, input: &Value) -> Result<Value, ApiError> {
        let instance = instance_arn(input)?;
        let account = string(input, "AccountId")?;
        check_length(&account, "accountId", 12, 12)?;
        check(&account, "accountId", &ACCOUNT_ID)?;
        let permission_set = string(input, "PermissionSetArn")?;
        check(&permission_set, "permissionSetArn", &PERMISSION_SET_ARN)?;
        let request = self.page_request(input)?;
        self.known_instance(&instance)?;
        let found: Vec<(String, Value)> = self
            .assignments
            .iter()
            .filter(|a| {
                a.instance_arn == instance
                    && a.account_id == account
                    && a.permission_set_arn == permission_set
            })
            .map(|a| {
                (
                    format!("{}/{}", a.principal_type, a.principal_id),
                    json!({"AccountId": a.account_id, "PermissionSetArn": a.permission_set_arn,
                           "PrincipalType": a.principal_type, "PrincipalId": a.principal_id}),
                )
            })
            .collect();
        let scope = format!("ListAccountAssignments {instance} {account} {permission_set}");
        let page = self.page(scope, found, request)?;
        Ok(Self::paged_answer("AccountAssignments", page))
    }

    fn list_statuses(&mut self, kind: OperationKind, input: &Value) -> Result<Value, ApiError> {
        let instance = instance_arn(input)?;
        let wanted = match input.get("Filter") {
            None | Some(Value::Null) => None,
            Some(filter @ Value::Object(_)) => {
                let status = optional_string(filter, "Status")?;
                if let Some(status) = &status {
                    check_enum(
                        status,
                        "filter.status",
                        &["IN_PROGRESS", "FAILED", "SUCCEEDED"],
                    )?;
                }
                status
            }
            Some(_) => return Err(serialization("Filter", "an object")),
        };
        let request = self.page_request(input)?;
        self.known_instance(&instance)?;
        let (table, key, operation) = match kind {
            OperationKind::Create => (
                &self.creations,
                "AccountAssignmentsCreationStatus",
                "ListAccountAssignmentCreationStatus",
            ),
            OperationKind::Delete => (
                &self.deletions,
                "AccountAssignmentsDeletionStatus",
                "ListAccountAssignmentDeletionStatus",
            ),
        };
        // Submission order; ties broken by request id (it begins with the submission
        // counter), not by hash order.
        let listed: Vec<(String, Value)> = table
            .iter()
            .filter(|(_, op)| wanted.as_deref().is_none_or(|w| op.status.as_str() == w))
            .map(|(id, op)| {
                (
                    format!("{:024.6}/{id}", op.submitted_at.max(0.0)),
                    json!({"Status": op.status.as_str(), "RequestId": id,
                           "CreatedDate": self.date(op.submitted_at)}),
                )
            })
            .collect();
        let scope = format!("{operation} {instance} {wanted:?}");
        let page = self.page(scope, listed, request)?;
        Ok(Self::paged_answer(key, page))
    }

    fn list_instances(&mut self, input: &Value) -> Result<Value, ApiError> {
        let region_scope = optional_string(input, "RegionScope")?;
        if let Some(scope) = &region_scope {
            check_enum(scope, "regionScope", &["CURRENT_REGION", "ALL_REGIONS"])?;
        }
        let request = self.page_request(input)?;
        let listed: Vec<(String, Value)> = self
            .instances
            .iter()
            .map(|arn| {
                (
                    arn.clone(),
                    json!({
                        "InstanceArn": arn,
                        "IdentityStoreId": identity_store_id(arn),
                        "Status": "ACTIVE",
                    }),
                )
            })
            .collect();
        let page = self.page(format!("ListInstances {region_scope:?}"), listed, request)?;
        Ok(Self::paged_answer("Instances", page))
    }

    fn list_permission_sets(&mut self, input: &Value) -> Result<Value, ApiError> {
        let instance = instance_arn(input)?;
        let request = self.page_request(input)?;
        self.known_instance(&instance)?;
        let prefix = format!("{}/", instance.replace(":instance/", ":permissionSet/"));
        let sets: Vec<(String, Value)> = self
            .permission_sets
            .iter()
            .filter(|ps| ps.starts_with(&prefix))
            .map(|ps| (ps.clone(), json!(ps)))
            .collect();
        let page = self.page(format!("ListPermissionSets {instance}"), sets, request)?;
        Ok(Self::paged_answer("PermissionSets", page))
    }

    fn create_permission_set(&mut self, input: &Value, now: f64) -> Result<Value, ApiError> {
        let instance = instance_arn(input)?;
        let name = string(input, "Name")?;
        check_length(&name, "name", 1, 32)?;
        check(&name, "name", &PERMISSION_SET_NAME)?;
        let description = optional_string(input, "Description")?;
        if let Some(description) = &description {
            check_length(description, "description", 1, 700)?;
            check(description, "description", &DESCRIPTION)?;
        }
        let session_duration = optional_string(input, "SessionDuration")?;
        if let Some(duration) = &session_duration {
            check_session_duration(duration)?;
        }
        let relay_state = optional_string(input, "RelayState")?;
        if let Some(relay_state) = &relay_state {
            check_length(relay_state, "relayState", 1, 240)?;
            check(relay_state, "relayState", &RELAY_STATE)?;
        }
        check_tags(input)?;
        self.known_instance(&instance)?;
        let suffix: String = (0..16)
            .map(|_| self.rng.alphanumeric().to_ascii_lowercase())
            .collect();
        let arn = format!(
            "{}/ps-{suffix}",
            instance.replace(":instance/", ":permissionSet/")
        );
        self.permission_sets.insert(arn.clone());
        let mut set = json!({"Name": name, "PermissionSetArn": arn, "CreatedDate": self.date(now)});
        for (key, value) in [
            ("Description", description),
            ("SessionDuration", session_duration),
            ("RelayState", relay_state),
        ] {
            if let Some(value) = value {
                set[key] = json!(value);
            }
        }
        Ok(json!({ "PermissionSet": set }))
    }
}

/// Largest MaxResults of the Identity Center List operations.
const MAX_RESULTS: usize = 100;

/// MaxResults and NextToken of one List call.
struct PageRequest {
    max_results: usize,
    token: Option<String>,
}

/// Where the next page of an Identity Center listing starts.
#[derive(Debug, Clone)]
struct ListCursor {
    scope: String,
    last: String,
}

fn status_json(id: &str, op: &Operation, created: f64) -> Value {
    let mut status = json!({
        "Status": op.status.as_str(),
        "RequestId": id,
        "TargetId": op.assignment.account_id,
        "TargetType": "AWS_ACCOUNT",
        "PermissionSetArn": op.assignment.permission_set_arn,
        "PrincipalType": op.assignment.principal_type,
        "PrincipalId": op.assignment.principal_id,
        "CreatedDate": created,
    });
    if let Some(reason) = &op.failure_reason {
        status["FailureReason"] = json!(reason);
    }
    status
}

/// `d-` and the instance id's last ten characters, kept within the model's Id pattern
/// (`[a-zA-Z0-9-]*`; an instance id may also hold '.').
fn identity_store_id(instance_arn: &str) -> String {
    let tail: String = instance_arn
        .chars()
        .rev()
        .take(10)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '0' })
        .collect();
    format!("d-{}", tail.chars().rev().collect::<String>())
}

/// Epoch seconds now, to the millisecond, as AWS dates are.
fn wall_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_millis() as f64 / 1000.0)
}

/// A UUID-shaped request id: a counter for uniqueness, random bits for realism.
fn request_id(counter: u64, rng: &mut fastrand::Rng) -> String {
    let random = rng.u64(..);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        counter & 0xffff_ffff,
        (random >> 48) & 0xffff,
        (random >> 36) & 0xfff,
        (random >> 24) & 0xfff,
        random & 0xffff_ffff_ffff
    )
}

fn string(input: &Value, field: &str) -> Result<String, ApiError> {
    match input.get(field) {
        Some(Value::String(value)) => Ok(value.clone()),
        Some(_) => Err(ApiError::new(
            400,
            "SerializationException",
            format!("{field} must be a string"),
        )),
        None => Err(ApiError::validation(format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ))),
    }
}

/// An optional string member; JSON null counts as absent.
fn optional_string(input: &Value, field: &str) -> Result<Option<String>, ApiError> {
    match input.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(serialization(field, "a string")),
    }
}

fn optional_integer(input: &Value, field: &str) -> Result<Option<i64>, ApiError> {
    match input.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| serialization(field, "an integer")),
        Some(_) => Err(serialization(field, "an integer")),
    }
}

fn serialization(field: &str, what: &str) -> ApiError {
    ApiError::new(
        400,
        "SerializationException",
        format!("{field} must be {what}"),
    )
}

/// The member name as AWS's validation messages spell it (`maxResults`).
fn wire_name(field: &str) -> String {
    let mut chars = field.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_ascii_lowercase().to_string() + chars.as_str()
    })
}

fn instance_arn(input: &Value) -> Result<String, ApiError> {
    let instance = string(input, "InstanceArn")?;
    check_length(&instance, "instanceArn", 10, 1224)?;
    check(&instance, "instanceArn", &INSTANCE_ARN)?;
    Ok(instance)
}

/// The model counts characters, not bytes.
fn check_length(value: &str, field: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let length = value.chars().count();
    if (min..=max).contains(&length) {
        return Ok(());
    }
    Err(ApiError::validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: \
         Member must have length between {min} and {max}"
    )))
}

fn check_enum(value: &str, field: &str, allowed: &[&str]) -> Result<(), ApiError> {
    if allowed.contains(&value) {
        return Ok(());
    }
    Err(ApiError::validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: \
         Member must satisfy enum value set: [{}]",
        allowed.join(", ")
    )))
}

/// The model's pattern `(-?)P(?=\d|T\d)...`: the regex crate has no look-ahead, so the
/// "a digit follows P, or T and a digit" part is checked by hand.
fn check_session_duration(value: &str) -> Result<(), ApiError> {
    check_length(value, "sessionDuration", 1, 100)?;
    let starts_with_digit = |s: &str| s.starts_with(|c: char| c.is_ascii_digit());
    let after_p = value.strip_prefix('-').unwrap_or(value).strip_prefix('P');
    let look_ahead = after_p.is_some_and(|rest| {
        starts_with_digit(rest) || rest.strip_prefix('T').is_some_and(starts_with_digit)
    });
    if look_ahead {
        check(value, "sessionDuration", &SESSION_DURATION)
    } else {
        Err(ApiError::validation(format!(
            "1 validation error detected: Value '{value}' at 'sessionDuration' failed to satisfy constraint: \
             Member must be an ISO-8601 duration such as PT2H"
        )))
    }
}

fn check_tags(input: &Value) -> Result<(), ApiError> {
    let tags = match input.get("Tags") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(tags)) => tags,
        Some(_) => return Err(serialization("Tags", "a list")),
    };
    if tags.len() > 75 {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: \
             Member must have length less than or equal to 75 (got {})",
            tags.len()
        )));
    }
    for tag in tags {
        if !tag.is_object() {
            return Err(serialization("Tags", "a list of objects"));
        }
        let key = string(tag, "Key")?;
        check_length(&key, "tags.member.key", 1, 128)?;
        check(&key, "tags.member.key", &TAG)?;
        let value = string(tag, "Value")?;
        check_length(&value, "tags.member.value", 0, 256)?;
        check(&value, "tags.member.value", &TAG)?;
    }
    Ok(())
}

fn check(value: &str, field: &str, pattern: &Regex) -> Result<(), ApiError> {
    if pattern.is_match(value) {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: {}",
            pattern.as_str()
        )))
    }
}

macro_rules! pattern {
    ($name:ident, $re:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| match Regex::new($re) {
            Ok(re) => re,
            Err(e) => panic!("pattern {}: {e}", $re),
        });
    };
}

pattern!(
    INSTANCE_ARN,
    r"^arn:aws(-[a-z]{1,5}){0,3}:sso:::instance/(sso)?ins-[a-zA-Z0-9-.]{16}$"
);
pattern!(
    PERMISSION_SET_ARN,
    r"^arn:aws(-[a-z]{1,5}){0,3}:sso:::permissionSet/(sso)?ins-[a-zA-Z0-9-.]{16}/ps-[a-zA-Z0-9-./]{16}$"
);
pattern!(ACCOUNT_ID, r"^[0-9]{12}$");
pattern!(
    PRINCIPAL_ID,
    r"^([0-9a-f]{10}-|)[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{12}$"
);
// The model's UUId: lowercase only, so an uppercase id is a validation error.
pattern!(
    REQUEST_ID,
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
);
pattern!(NEXT_TOKEN, r"^[-a-zA-Z0-9+=/_]*$");
// The model's [\w+=,.@-]+ with Java's ASCII \w.
pattern!(PERMISSION_SET_NAME, r"^[a-zA-Z0-9_+=,.@-]+$");
pattern!(DESCRIPTION, r"^[\x09\x0A\x0D\x20-\x7E\xA1-\xFF]*$");
pattern!(
    SESSION_DURATION,
    r"^-?P(?:[0-9]+Y)?(?:[0-9]+M)?(?:[0-9]+[DW])?(?:T(?:[0-9]+H)?(?:[0-9]+M)?(?:[0-9]+(?:\.[0-9]+)?S)?)?$"
);
pattern!(
    RELAY_STATE,
    r#"^[a-zA-Z0-9&$@#\\/%?=~\-_'"|!:,.;*+\[\] (){}]+$"#
);
pattern!(TAG, r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$");
