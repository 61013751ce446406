//! The simulated Identity Center: state, behaviour knobs, and one function per API
//! operation. Time is the simulator's clock in seconds, passed in, so the model itself
//! is deterministic for a given seed and call order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalog::{Catalog, PortfolioPrincipal, PortfolioSeed};

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
    pub counters: Counters,
}

/// What the transport should do with a call before handing it to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    Http500,
    DropBefore,
    DropAfter,
}

impl Model {
    pub fn new(knobs: Knobs, seed: u64) -> Self {
        let burst = knobs.rate_burst;
        let knobs_catalog_burst = knobs.catalog_rate_burst;
        Self {
            knobs,
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
        } else {
            Fault::None
        };
        match fault {
            Fault::Http500 => self.counters.http_500 += 1,
            Fault::DropBefore | Fault::DropAfter => self.counters.dropped += 1,
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
            "ListInstances" => Ok(json!({"Instances": self.instances.iter().map(|arn| json!({
                "InstanceArn": arn,
                "IdentityStoreId": format!("d-{}", &arn[arn.len().saturating_sub(10)..]),
                "Status": "ACTIVE",
            })).collect::<Vec<_>>()})),
            "CreatePermissionSet" => self.create_permission_set(input, now),
            "ListPermissionSets" => {
                let instance = self.instance(input)?;
                let prefix = format!("{}/", instance.replace(":instance/", ":permissionSet/"));
                let sets: Vec<&String> = self
                    .permission_sets
                    .iter()
                    .filter(|ps| ps.starts_with(&prefix))
                    .collect();
                Ok(json!({"PermissionSets": sets}))
            }
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

    fn instance(&self, input: &Value) -> Result<String, ApiError> {
        let instance = string(input, "InstanceArn")?;
        check(&instance, "instanceArn", &INSTANCE_ARN)?;
        if !self.instances.contains(&instance) {
            return Err(ApiError::not_found(format!(
                "Instance {instance} does not exist"
            )));
        }
        Ok(instance)
    }

    fn assignment(&self, input: &Value) -> Result<Assignment, ApiError> {
        let instance_arn = self.instance(input)?;
        let account_id = string(input, "TargetId")?;
        check(&account_id, "targetId", &ACCOUNT_ID)?;
        if string(input, "TargetType")? != "AWS_ACCOUNT" {
            return Err(ApiError::validation(
                "Value at 'targetType' failed to satisfy constraint: Member must satisfy enum value set: [AWS_ACCOUNT]",
            ));
        }
        let permission_set_arn = string(input, "PermissionSetArn")?;
        check(&permission_set_arn, "permissionSetArn", &PERMISSION_SET_ARN)?;
        let principal_type = string(input, "PrincipalType")?;
        if principal_type != "USER" && principal_type != "GROUP" {
            return Err(ApiError::validation(
                "Value at 'principalType' failed to satisfy constraint: Member must satisfy enum value set: [USER, GROUP]",
            ));
        }
        let principal_id = string(input, "PrincipalId")?;
        check(&principal_id, "principalId", &PRINCIPAL_ID)?;
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
        let answer = status_json(&id, &op);
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
        self.instance(input)?;
        let id = string(input, id_field)?;
        check(&id, id_field, &REQUEST_ID)?;
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
        Ok(json!({ key: status_json(&id, op) }))
    }

    fn list_assignments(&self, input: &Value) -> Result<Value, ApiError> {
        let instance = self.instance(input)?;
        let account = string(input, "AccountId")?;
        let permission_set = string(input, "PermissionSetArn")?;
        let found: Vec<Value> = self
            .assignments
            .iter()
            .filter(|a| {
                a.instance_arn == instance
                    && a.account_id == account
                    && a.permission_set_arn == permission_set
            })
            .map(|a| {
                json!({"AccountId": a.account_id, "PermissionSetArn": a.permission_set_arn,
                       "PrincipalType": a.principal_type, "PrincipalId": a.principal_id})
            })
            .collect();
        Ok(json!({"AccountAssignments": found}))
    }

    fn list_statuses(&self, kind: OperationKind, input: &Value) -> Result<Value, ApiError> {
        self.instance(input)?;
        let (table, key) = match kind {
            OperationKind::Create => (&self.creations, "AccountAssignmentsCreationStatus"),
            OperationKind::Delete => (&self.deletions, "AccountAssignmentsDeletionStatus"),
        };
        let mut items: Vec<(&String, &Operation)> = table.iter().collect();
        // Ties broken by request id (it begins with the submission counter), not by hash order.
        items.sort_by(|a, b| {
            a.1.submitted_at
                .total_cmp(&b.1.submitted_at)
                .then_with(|| a.0.cmp(b.0))
        });
        let listed: Vec<Value> = items
            .into_iter()
            .map(|(id, op)| json!({"Status": op.status.as_str(), "RequestId": id, "CreatedDate": op.submitted_at}))
            .collect();
        Ok(json!({ key: listed }))
    }

    fn create_permission_set(&mut self, input: &Value, now: f64) -> Result<Value, ApiError> {
        let instance = self.instance(input)?;
        let name = string(input, "Name")?;
        if name.is_empty() || name.len() > 32 {
            return Err(ApiError::validation(
                "Value at 'name' failed to satisfy constraint: Member must have length between 1 and 32",
            ));
        }
        let suffix: String = (0..16)
            .map(|_| self.rng.alphanumeric().to_ascii_lowercase())
            .collect();
        let arn = format!(
            "{}/ps-{suffix}",
            instance.replace(":instance/", ":permissionSet/")
        );
        self.permission_sets.insert(arn.clone());
        Ok(json!({"PermissionSet": {"Name": name, "PermissionSetArn": arn, "CreatedDate": now}}))
    }
}

fn status_json(id: &str, op: &Operation) -> Value {
    let mut status = json!({
        "Status": op.status.as_str(),
        "RequestId": id,
        "TargetId": op.assignment.account_id,
        "TargetType": "AWS_ACCOUNT",
        "PermissionSetArn": op.assignment.permission_set_arn,
        "PrincipalType": op.assignment.principal_type,
        "PrincipalId": op.assignment.principal_id,
        "CreatedDate": op.submitted_at,
    });
    if let Some(reason) = &op.failure_reason {
        status["FailureReason"] = json!(reason);
    }
    status
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
pattern!(REQUEST_ID, r"^[-a-fA-F0-9]{36}$");
