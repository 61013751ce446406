//! The Identity Center port with a [`Pacer`] in front: built once per process, so its
//! state outlives every invocation of a warm function.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::identity_center::{CallResult, ErrorKind, IdentityCenter, Pace};
use crate::pacer::{Admission, Feedback, PacedCall, Pacer, PacerSettings};
use crate::request::Assignment;

pub struct PacedIdentityCenter<I> {
    inner: I,
    pacer: Mutex<Pacer>,
}

impl<I> PacedIdentityCenter<I> {
    /// `create_phase` (0 to 1) is where in its first create interval the process makes
    /// its first create ([`Pacer::with_create_phase`]): a random one for each process,
    /// so that processes started together do not create together.
    pub fn new(inner: I, settings: &PacerSettings, create_phase: f64) -> Self {
        let now = Instant::now().into_std();
        Self {
            inner,
            pacer: Mutex::new(Pacer::new(settings, now).with_create_phase(create_phase, now)),
        }
    }

    pub fn inner(&self) -> &I {
        &self.inner
    }

    fn pacer(&self) -> MutexGuard<'_, Pacer> {
        // The pacer's state is valid after any panic (each change is one assignment).
        self.pacer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn learn(&self, call: PacedCall, result: &CallResult) {
        let feedback = match result {
            Ok(_) => Feedback::Accepted,
            Err(error) => match error.kind {
                ErrorKind::RateLimited => Feedback::RateLimited,
                ErrorKind::Busy => Feedback::Busy,
                // Refused for what it asked, not for the limits: it took the rate.
                ErrorKind::Conflict
                | ErrorKind::Validation
                | ErrorKind::AccessDenied
                | ErrorKind::ResourceNotFound
                | ErrorKind::ServiceQuotaExceeded => Feedback::Accepted,
                ErrorKind::ServerError
                | ErrorKind::Timeout
                | ErrorKind::Connection
                | ErrorKind::Rejected => Feedback::Other,
            },
        };
        self.pacer()
            .answered(call, feedback, Instant::now().into_std());
    }
}

impl<I: IdentityCenter> IdentityCenter for PacedIdentityCenter<I> {
    async fn pace(&self, call: PacedCall, budget: Duration) -> Pace {
        // The lock is let go before the wait.
        let admission = self.pacer().admit(call, Instant::now().into_std(), budget);
        match admission {
            Admission::Go(wait) => {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                Pace::Now
            }
            Admission::Defer { delay_seconds } => Pace::Defer { delay_seconds },
        }
    }

    async fn create_assignment(&self, assignment: &Assignment) -> CallResult {
        let result = self.inner.create_assignment(assignment).await;
        self.learn(PacedCall::Create, &result);
        result
    }

    async fn delete_assignment(&self, assignment: &Assignment) -> CallResult {
        let result = self.inner.delete_assignment(assignment).await;
        self.learn(PacedCall::Delete, &result);
        result
    }

    async fn describe_creation_status(
        &self,
        assignment: &Assignment,
        request_id: &str,
    ) -> CallResult {
        let result = self
            .inner
            .describe_creation_status(assignment, request_id)
            .await;
        self.learn(PacedCall::Poll, &result);
        result
    }

    async fn describe_deletion_status(
        &self,
        assignment: &Assignment,
        request_id: &str,
    ) -> CallResult {
        let result = self
            .inner
            .describe_deletion_status(assignment, request_id)
            .await;
        self.learn(PacedCall::Poll, &result);
        result
    }
}
