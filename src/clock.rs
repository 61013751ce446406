//! The wall clock the worker decides by: `notAfter`, poll deadlines, `requestedAt`
//! checks, the ledger's stamps and first receipts. (An invocation's deadline and the
//! pacer keep to the system's own clocks.)

use time::{Duration, OffsetDateTime};

/// The system's clock, set `ahead` by a duration: zero in the worker. A simulation
/// moves it on to let a `notAfter` pass while other requests are under way, which a
/// test could not otherwise wait for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    ahead: Duration,
}

impl WallClock {
    /// The system's clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// The system's clock, `ahead` of it.
    pub fn ahead_by(ahead: Duration) -> Self {
        Self { ahead }
    }

    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.ahead
    }
}
