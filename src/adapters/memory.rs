//! In-memory adapters: scripted Identity Center answers, recording queues and a ledger,
//! for the handler's tests and for trying the worker without AWS.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use time::OffsetDateTime;

use crate::aws_call::{CallError, ErrorKind};
use crate::config::QueueUrl;
use crate::identity_center::{
    CallResult, IdentityCenter, OperationStatus, OperationSubject, StatusReport,
};
use crate::ledger::{
    AccessDecision, ClaimAnswer, DecisionOrder, Ledger, LedgerKey, LedgerResult, RecordAnswer,
    RecordedState,
};
use crate::portfolio_access::ListedPrincipal;
use crate::queue::{OutgoingMessage, QueueSender, SendError};
use crate::request::{Assignment, PortfolioChange};
use crate::service_catalog::ServiceCatalog;

/// One call the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Create {
        account: String,
        permission_set: String,
    },
    Delete {
        account: String,
        permission_set: String,
    },
    DescribeCreation {
        request_id: String,
    },
    DescribeDeletion {
        request_id: String,
    },
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not hide the calls recorded before it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Answers each call with the next scripted result; once the script runs out, every
/// call succeeds at once. An answer names the assignment asked about, as AWS's does,
/// unless the script names another (a scripted subject is kept as it is); a Describe
/// answer names the operation polled, as AWS's does.
#[derive(Debug, Default)]
pub struct ScriptedIdentityCenter {
    script: Mutex<VecDeque<CallResult>>,
    calls: Mutex<Vec<Call>>,
}

impl ScriptedIdentityCenter {
    pub fn new(script: impl IntoIterator<Item = CallResult>) -> Self {
        Self {
            script: Mutex::new(script.into_iter().collect()),
            calls: Mutex::default(),
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    fn answer(&self, call: Call, assignment: &Assignment) -> CallResult {
        lock(&self.calls).push(call);
        let mut answer = lock(&self.script).pop_front().unwrap_or_else(|| {
            Ok(StatusReport {
                created_at: None,
                status: OperationStatus::Succeeded,
                request_id: Some("00000000-0000-4000-8000-000000000000".to_owned()),
                failure_reason: None,
                subject: OperationSubject::default(),
            })
        });
        if let Ok(report) = &mut answer
            && report.subject == OperationSubject::default()
        {
            report.subject = OperationSubject::of(assignment);
        }
        answer
    }
}

impl ScriptedIdentityCenter {
    fn about(mut answer: CallResult, request_id: &str) -> CallResult {
        if let Ok(report) = &mut answer {
            report.request_id = Some(request_id.to_owned());
        }
        answer
    }
}

impl IdentityCenter for ScriptedIdentityCenter {
    async fn create_assignment(&self, assignment: &Assignment) -> CallResult {
        let call = Call::Create {
            account: assignment.account.to_string(),
            permission_set: assignment.permission_set.to_string(),
        };
        self.answer(call, assignment)
    }

    async fn delete_assignment(&self, assignment: &Assignment) -> CallResult {
        let call = Call::Delete {
            account: assignment.account.to_string(),
            permission_set: assignment.permission_set.to_string(),
        };
        self.answer(call, assignment)
    }

    async fn describe_creation_status(
        &self,
        assignment: &Assignment,
        request_id: &str,
    ) -> CallResult {
        let call = Call::DescribeCreation {
            request_id: request_id.to_owned(),
        };
        Self::about(self.answer(call, assignment), request_id)
    }

    async fn describe_deletion_status(
        &self,
        assignment: &Assignment,
        request_id: &str,
    ) -> CallResult {
        let call = Call::DescribeDeletion {
            request_id: request_id.to_owned(),
        };
        Self::about(self.answer(call, assignment), request_id)
    }
}

/// One call the Service Catalog fake received: the operation and the principal's ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogCall {
    Associate(String),
    Disassociate(String),
    List,
}

#[derive(Debug, Default)]
struct CatalogState {
    /// Portfolio id → its principals; a portfolio not here does not exist.
    portfolios: HashMap<String, Vec<ListedPrincipal>>,
    /// What the list showed before the latest change, while it lags.
    lagging: HashMap<String, Vec<ListedPrincipal>>,
    /// List calls still answered from `lagging`.
    stale_lists: u32,
    errors: VecDeque<Option<CallError>>,
    calls: Vec<CatalogCall>,
}

/// Service Catalog portfolios in memory, with AWS's answers: associate is idempotent,
/// disassociate of a principal not associated under that type is ResourceNotFound, an
/// unknown portfolio is ResourceNotFound. `with_list_lag(n)` makes the next `n` lists
/// after each change show the state before it. Scripted errors (`None`: answer for
/// real) are taken one per call, in order.
#[derive(Debug, Default)]
pub struct MemoryServiceCatalog {
    state: Mutex<CatalogState>,
    list_lag: u32,
}

impl MemoryServiceCatalog {
    pub fn with_portfolio(self, portfolio: &str, principals: Vec<ListedPrincipal>) -> Self {
        lock(&self.state)
            .portfolios
            .insert(portfolio.to_owned(), principals);
        self
    }

    pub fn with_list_lag(mut self, lists: u32) -> Self {
        self.list_lag = lists;
        self
    }

    pub fn with_errors(self, errors: impl IntoIterator<Item = Option<CallError>>) -> Self {
        lock(&self.state).errors.extend(errors);
        self
    }

    /// The portfolio's principals as they are (not as the lagging list shows them).
    pub fn principals(&self, portfolio: &str) -> Option<Vec<ListedPrincipal>> {
        lock(&self.state).portfolios.get(portfolio).cloned()
    }

    pub fn calls(&self) -> Vec<CatalogCall> {
        lock(&self.state).calls.clone()
    }

    fn not_found(what: String) -> CallError {
        CallError {
            kind: ErrorKind::ResourceNotFound,
            code: "ResourceNotFoundException".to_owned(),
            message: what,
        }
    }

    fn change(
        &self,
        change: &PortfolioChange,
        call: CatalogCall,
        apply: impl FnOnce(&mut Vec<ListedPrincipal>, ListedPrincipal) -> Result<(), CallError>,
    ) -> Result<(), CallError> {
        let mut state = lock(&self.state);
        state.calls.push(call);
        if let Some(Some(error)) = state.errors.pop_front() {
            return Err(error);
        }
        let portfolio = change.portfolio.as_str().to_owned();
        let Some(principals) = state.portfolios.get(&portfolio).cloned() else {
            return Err(Self::not_found(format!("portfolio {portfolio} not found")));
        };
        let mut after = principals.clone();
        apply(&mut after, change.principal.listed())?;
        if after != principals {
            state.portfolios.insert(portfolio.clone(), after);
            state.lagging.insert(portfolio, principals);
            state.stale_lists = self.list_lag;
        }
        Ok(())
    }
}

impl ServiceCatalog for MemoryServiceCatalog {
    async fn associate_principal(&self, change: &PortfolioChange) -> Result<(), CallError> {
        let call = CatalogCall::Associate(change.principal.arn().to_owned());
        self.change(change, call, |principals, principal| {
            if !principals.contains(&principal) {
                principals.push(principal);
            }
            Ok(())
        })
    }

    async fn disassociate_principal(&self, change: &PortfolioChange) -> Result<(), CallError> {
        let call = CatalogCall::Disassociate(change.principal.arn().to_owned());
        self.change(change, call, |principals, principal| {
            let before = principals.len();
            principals.retain(|listed| *listed != principal);
            if principals.len() == before {
                return Err(Self::not_found(format!(
                    "principal {} is not associated with type {}",
                    principal.principal_arn,
                    principal.principal_type.as_str()
                )));
            }
            Ok(())
        })
    }

    async fn list_principals(
        &self,
        change: &PortfolioChange,
    ) -> Result<Vec<ListedPrincipal>, CallError> {
        let mut state = lock(&self.state);
        state.calls.push(CatalogCall::List);
        if let Some(Some(error)) = state.errors.pop_front() {
            return Err(error);
        }
        let portfolio = change.portfolio.as_str();
        if state.stale_lists > 0
            && let Some(lagging) = state.lagging.get(portfolio).cloned()
        {
            state.stale_lists -= 1;
            return Ok(lagging);
        }
        state
            .portfolios
            .get(portfolio)
            .cloned()
            .ok_or_else(|| Self::not_found(format!("portfolio {portfolio} not found")))
    }
}

/// A message the fake queues stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub queue: String,
    pub message: OutgoingMessage,
}

/// Stores every message; refuses those whose body contains any of `refuse_containing`,
/// as SQS refuses single entries of a batch, and every one sent to `refuse_queue`.
#[derive(Debug, Default)]
pub struct RecordingQueues {
    sent: Mutex<Vec<Sent>>,
    batch_calls: Mutex<Vec<usize>>,
    refuse_containing: Vec<String>,
    refuse_queue: Option<String>,
}

impl RecordingQueues {
    pub fn refusing(markers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            refuse_containing: markers.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Refuses every message sent to `queue` (its key policy, say, denies the worker).
    pub fn refusing_queue(queue: &QueueUrl) -> Self {
        Self {
            refuse_queue: Some(queue.as_str().to_owned()),
            ..Self::default()
        }
    }

    pub fn sent(&self) -> Vec<Sent> {
        lock(&self.sent).clone()
    }

    pub fn sent_to(&self, queue: &QueueUrl) -> Vec<OutgoingMessage> {
        self.sent()
            .into_iter()
            .filter(|sent| sent.queue == queue.as_str())
            .map(|sent| sent.message)
            .collect()
    }

    /// Entries per SendMessageBatch call, in call order.
    pub fn batch_sizes(&self) -> Vec<usize> {
        lock(&self.batch_calls).clone()
    }
}

impl QueueSender for RecordingQueues {
    async fn send_batch(
        &self,
        queue: &QueueUrl,
        messages: &[OutgoingMessage],
    ) -> Vec<Result<(), SendError>> {
        lock(&self.batch_calls).push(messages.len());
        messages
            .iter()
            .map(|message| {
                if self
                    .refuse_containing
                    .iter()
                    .any(|marker| message.body.contains(marker))
                    || self.refuse_queue.as_deref() == Some(queue.as_str())
                {
                    return Err(SendError {
                        kind: ErrorKind::ServerError,
                        code: "InternalError".to_owned(),
                        message: "refused by the test".to_owned(),
                    });
                }
                lock(&self.sent).push(Sent {
                    queue: queue.as_str().to_owned(),
                    message: message.clone(),
                });
                Ok(())
            })
            .collect()
    }
}

/// One ledger item: the latest decision and the state recorded for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerItem {
    pub decision: AccessDecision,
    pub state: RecordedState,
    pub operation_request_id: Option<String>,
}

/// The ledger in a map, with the DynamoDB adapter's conditions. Calls fail with a
/// throttling error while scripted faults remain (`true` fails the call, `false` lets
/// it through).
#[derive(Debug, Default)]
pub struct MemoryLedger {
    items: Mutex<HashMap<LedgerKey, LedgerItem>>,
    faults: Mutex<VecDeque<bool>>,
    calls: Mutex<usize>,
}

impl MemoryLedger {
    pub fn with_faults(faults: impl IntoIterator<Item = bool>) -> Self {
        Self {
            faults: Mutex::new(faults.into_iter().collect()),
            ..Self::default()
        }
    }

    /// Scripts the faults of the calls from now on, in place of what is left.
    pub fn set_faults(&self, faults: impl IntoIterator<Item = bool>) {
        *lock(&self.faults) = faults.into_iter().collect();
    }

    pub fn items(&self) -> Vec<LedgerItem> {
        lock(&self.items).values().cloned().collect()
    }

    pub fn item(&self, key: &LedgerKey) -> Option<LedgerItem> {
        lock(&self.items).get(key).cloned()
    }

    /// Calls made, failed ones included.
    pub fn calls(&self) -> usize {
        *lock(&self.calls)
    }

    fn fault(&self) -> LedgerResult<()> {
        *lock(&self.calls) += 1;
        if lock(&self.faults).pop_front().unwrap_or(false) {
            return Err(CallError {
                kind: ErrorKind::RateLimited,
                code: "ProvisionedThroughputExceededException".to_owned(),
                message: "scripted ledger fault".to_owned(),
            });
        }
        Ok(())
    }
}

impl Ledger for MemoryLedger {
    async fn claim(
        &self,
        key: &LedgerKey,
        decision: &AccessDecision,
        state: RecordedState,
        _now: OffsetDateTime,
    ) -> LedgerResult<ClaimAnswer> {
        self.fault()?;
        let mut items = lock(&self.items);
        match items.get_mut(key) {
            // Another delivery of the recorded decision does not claim over it either
            // way: the first to claim keeps it, so its steps still find it recorded.
            Some(item)
                if item.decision.order > decision.order
                    || item.decision.is_another_delivery_of(decision) =>
            {
                Ok(ClaimAnswer::Superseded(item.decision.clone()))
            }
            // The same decision again keeps the state it reached; a pending one takes
            // the claim's, and so does one that ended failed (a redrive starts again).
            Some(item) if item.decision.order == decision.order => {
                // Written exactly when DynamoDB's claim writes, and as it writes: the
                // whole decision, and no operation id.
                let pending_settles = item.state == RecordedState::Pending
                    && matches!(
                        state,
                        RecordedState::Present | RecordedState::Absent | RecordedState::Revoked
                    );
                if pending_settles || item.state == RecordedState::Failed {
                    *item = LedgerItem {
                        decision: decision.clone(),
                        state,
                        operation_request_id: None,
                    };
                }
                Ok(ClaimAnswer::Claimed)
            }
            _ => {
                items.insert(
                    key.clone(),
                    LedgerItem {
                        decision: decision.clone(),
                        state,
                        operation_request_id: None,
                    },
                );
                Ok(ClaimAnswer::Claimed)
            }
        }
    }

    async fn latest(&self, key: &LedgerKey) -> LedgerResult<Option<AccessDecision>> {
        self.fault()?;
        Ok(lock(&self.items).get(key).map(|item| item.decision.clone()))
    }

    async fn latest_with_state(
        &self,
        key: &LedgerKey,
    ) -> LedgerResult<Option<(AccessDecision, RecordedState)>> {
        self.fault()?;
        Ok(lock(&self.items)
            .get(key)
            .map(|item| (item.decision.clone(), item.state)))
    }

    async fn record(
        &self,
        key: &LedgerKey,
        order: &DecisionOrder,
        state: RecordedState,
        operation_request_id: Option<&str>,
        _now: OffsetDateTime,
    ) -> LedgerResult<RecordAnswer> {
        self.fault()?;
        let mut items = lock(&self.items);
        match items.get_mut(key) {
            // As DynamoDB's: `revoked` only over a grant recorded carried out.
            Some(item)
                if item.decision.order == *order
                    && state == RecordedState::Revoked
                    && !matches!(item.state, RecordedState::Present | RecordedState::Revoked) =>
            {
                Ok(RecordAnswer::NotLatest(Some(item.decision.clone())))
            }
            Some(item) if item.decision.order == *order => {
                item.state = state;
                item.operation_request_id = operation_request_id.map(str::to_owned);
                Ok(RecordAnswer::Recorded)
            }
            other => Ok(RecordAnswer::NotLatest(
                other.map(|item| item.decision.clone()),
            )),
        }
    }
}
