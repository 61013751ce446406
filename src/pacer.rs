//! Pacing of Identity Center calls (SPEC §10): each function process keeps its share
//! of the account's two limits instead of running into them and backing off.
//!
//! - The shared rate (20 calls/s): one call per interval per process at its share, cut
//!   multiplicatively on a `Rate exceeded` answer (once a second at most) and raised
//!   additively with time (AIMD), never above the share.
//! - The 15 outstanding creates: a process cannot see how many are outstanding (it
//!   learns that an operation finished only from a poll, seconds after the slot freed,
//!   and most polls of its creates are made by other processes), so the limit is
//!   turned into a rate by Little's law: 15 slots held for the mean provisioning time
//!   each admit 15 / mean creates a second. Each process paces its creates at its share
//!   of that rate, lowered by a few percent on every "too many requests processing"
//!   answer and raised by a fraction of a percent on every accepted create that came
//!   at least as fast as the rate allows: it settles where about one create attempt
//!   in nine finds the slots full. A shared count of outstanding creates would do
//!   worse: it learns that a slot is free only from the poll that sees the operation
//!   end, with the default poll schedule (3 s, then 6 s more) on average 3 s after it
//!   ended, so each slot would count as held 6.6 s rather than 3.5.
//! - Polls and deletes never wait for create slots, only for the rate.
//!
//! A call either goes after a short wait (the caller sleeps; a create waits at most
//! about one create interval, so that a batch of creates does not hold the process
//! back from the polls and deletes behind it), or is deferred: the step
//! goes back to the queue with a delay and no call is made. Deferred creates are spread
//! over the time this process's create rate needs to admit them, so they come back
//! about as fast as they can go, within a horizon of 15 s.
//!
//! Pure: the clock is passed in, and nothing here sleeps.

use std::time::{Duration, Instant};

use crate::lifecycle::{MAX_DELAY_SECONDS, unit_fraction};

/// What a process knows about the quotas it shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacerSettings {
    /// Identity Center calls per second for all of the worker's processes together.
    pub rate_per_second: f64,
    /// CreateAccountAssignment operations that may be outstanding at once (AWS: 15).
    pub max_outstanding_creates: f64,
    /// The expected mean time a create stays outstanding.
    pub provisioning: Duration,
    /// Function processes running at once (the event source's MaximumConcurrency).
    pub processes: u32,
    /// The longest a call is held in the process; beyond it the step is deferred.
    pub max_wait: Duration,
    /// Calls a process may make at once after being idle (waiting for SQS, say): a
    /// turn not taken is kept, up to this many.
    pub call_burst: f64,
    /// The same for creates.
    pub create_burst: f64,
}

impl PacerSettings {
    /// Identity Center calls per second one process may make: its share of the rate,
    /// less the headroom.
    pub fn call_share(&self) -> f64 {
        (self.rate_per_second * RATE_HEADROOM / f64::from(self.processes.max(1))).max(f64::EPSILON)
    }
}

/// Share of the rate the processes use together: the rest absorbs the jitter between
/// a process's clock and the service's, so that the processes at their shares do not
/// meet the limit.
const RATE_HEADROOM: f64 = 0.95;
/// The rate after a `Rate exceeded` answer, as a fraction of the rate before.
const RATE_DECREASE: f64 = 0.7;
/// Seconds it takes to regain the whole share after a cut to zero: the rate comes
/// back with time, not with accepted calls, since a process whose steps all wait on
/// the queue makes no calls to learn from. With another tool taking half the rate, a
/// process regains a cut's 30% in about ten seconds: cuts stay rare, and the rate
/// left is used. (Regained per accepted call instead, a benchmark with half the rate
/// taken ran at 40% of what was left: see BENCHMARKS.md.)
const RATE_RECOVERY_SECONDS: f64 = 60.0;
/// After a cut, further `Rate exceeded` answers within this time cut no more: they
/// answer calls made before the cut, at the old rate, and say nothing new.
const RATE_CUT_SPACING: Duration = Duration::from_secs(1);
/// The create rate after a "too many requests processing" answer, as a fraction.
const CREATE_DECREASE: f64 = 0.96;
/// The create rate after an accepted create, as a multiple. With the decrease above
/// the rate settles where about u / (u + d) = 11% of attempts find the slots full.
const CREATE_INCREASE: f64 = 1.005;
/// The create rate stays within these multiples of the nominal share.
const CREATE_RATE_RANGE: (f64, f64) = (0.05, 2.0);
/// A create rate below the share comes back to it once no create has been answered
/// busy for this long: the slots have had room all that time. Regained only through
/// accepted creates, a rate cut to its floor by a storm (another tool holding the
/// slots for minutes) took some 600 of them, most of an hour, and an idle process
/// none.
const CREATE_RECOVERY: Duration = Duration::from_secs(60);
/// The call rate never falls below this fraction of the share.
const CALL_RATE_FLOOR: f64 = 0.05;
/// A create waits in the process for at most this many create intervals. The
/// invocation ends only when its last record does, so a batch of several creates
/// waiting their turns would hold the process back from the polls and deletes queued
/// behind it: the creates beyond the next turn or so are deferred instead.
const CREATE_WAIT_INTERVALS: f64 = 1.5;

/// Deferred steps come back at most this long after the process's first free turn.
/// Spread one interval apart, the line of a process that keeps receiving more steps
/// than its share grows without end, and the steps at its back are parked while the
/// turns pass: in a 1,200-request run the creates' lines reached 83 s, and the run
/// started 61 creates in its last 40 s against about 36 in every 10 s before, while the
/// creates parked in the lines came back a few at a time. Beyond the horizon the
/// line wraps around: a step that comes back to no free turn is deferred again, which
/// costs SQS calls but no turn.
const DEFERRAL_HORIZON: Duration = Duration::from_secs(15);

/// The most time a schedule's taken turns may reserve: past it every call is deferred
/// anyway, and the stretched reservation stays a finite `Duration` whatever the rates.
const MAX_RESERVED_SECONDS: f64 = 2.0 * MAX_DELAY_SECONDS as f64;

/// An Identity Center call, as the pacer tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacedCall {
    /// CreateAccountAssignment: takes the rate and an outstanding slot.
    Create,
    /// DeleteAccountAssignment: takes the rate only (deletes have no outstanding limit).
    Delete,
    /// A DeleteAccountAssignment that ends access the worker owes to end now (an
    /// expiry, an undo): waits its turn as a delete does, but is never deferred, so
    /// that a storm of other calls cannot hold it past the minute SPEC §11 allows.
    Revoke,
    /// Describe*Status: takes the rate only.
    Poll,
}

/// What the pacer allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Make the call after this wait; the pacer has counted it.
    Go(Duration),
    /// Make no call now: store the step again with this delay (whole seconds, 1..=900).
    Defer { delay_seconds: u32 },
}

/// How a paced call was answered, as far as pacing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback {
    /// The service took the call (whatever it answered about the assignment).
    Accepted,
    /// `Rate exceeded`.
    RateLimited,
    /// "Too many requests processing": the outstanding creates are all in use.
    Busy,
    /// Anything else (a timeout, a 5xx, a conflict): says nothing about the limits.
    Other,
}

/// One call every `1 / rate` seconds on the caller's clock, and up to `burst` at once
/// after an idle spell (the generic cell rate algorithm): `next_free` is when the next
/// call may go once the kept turns are used. A call taken before then is a
/// reservation, and the calls after it wait longer. A new rate applies from the next
/// call on, to the reserved turns too ([`Schedule::set_rate`]).
#[derive(Debug, Clone)]
struct Schedule {
    rate: f64,
    /// Turns kept while idle (at least 1).
    burst: f64,
    next_free: Instant,
}

impl Schedule {
    fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self {
            rate,
            burst: burst.max(1.0),
            next_free: now,
        }
    }

    /// Seconds between two turns.
    fn interval(&self) -> f64 {
        (1.0 / self.rate).min(f64::from(MAX_DELAY_SECONDS))
    }

    /// Seconds of turns kept: `next_free` lies this far past the first kept turn.
    fn kept(&self) -> f64 {
        ((self.burst - 1.0) / self.rate).min(f64::from(MAX_DELAY_SECONDS))
    }

    /// Seconds until the next call may go.
    fn wait(&self, now: Instant) -> f64 {
        (self.next_free.saturating_duration_since(now).as_secs_f64() - self.kept()).max(0.0)
    }

    /// Makes the first turn `phase` (0 to 1) of an interval after `now`, with no turn
    /// kept before it.
    fn first_turn_at_phase(&mut self, phase: f64, now: Instant) {
        let first = now + Duration::from_secs_f64(phase * self.interval());
        self.next_free = first + Duration::from_secs_f64(self.kept());
    }

    /// Applies a new rate from `now` on. The turns already taken stay taken: the time
    /// they reserve is stretched or shrunk with the interval, so that a cut does not
    /// turn reserved time into kept turns and let calls go at once.
    fn set_rate(&mut self, rate: f64, now: Instant) {
        if rate == self.rate {
            return;
        }
        let reserved = self.next_free.saturating_duration_since(now).as_secs_f64();
        let rescaled = (reserved * self.rate / rate).min(MAX_RESERVED_SECONDS);
        self.next_free = now + Duration::from_secs_f64(rescaled);
        self.rate = rate;
    }

    /// Takes the first free turn at `at` or later.
    fn take(&mut self, at: Instant) {
        self.next_free = self.next_free.max(at) + Duration::from_secs_f64(self.interval());
    }
}

/// The pacing state of one process; it lives as long as the process, across
/// invocations.
#[derive(Debug, Clone)]
pub struct Pacer {
    max_wait: Duration,
    calls: Schedule,
    call_rate_max: f64,
    creates: Schedule,
    create_rate_range: (f64, f64),
    /// When the last deferred create was told to come back: the next one comes back
    /// one create interval later.
    creates_deferred_until: Option<Instant>,
    /// The same for deferred polls and deletes, at the share of the rate.
    calls_deferred_until: Option<Instant>,
    /// The last cut of the call rate: when, and the rate it left.
    rate_cut: Option<(Instant, f64)>,
    /// Whether the last create admitted came before its turn of the create rate, with
    /// the call rate holding it back no longer, that is whether the create rate is what
    /// holds creates back. Only then does an accepted create raise it: creates held
    /// back by the call rate, or too few to use their turns, say nothing about the
    /// slots, and a rate raised on them meets full slots at once when the creates come
    /// faster. A deferred create leaves it as it was: no answer of its comes.
    creates_bound: bool,
    /// The last "too many requests processing" answer.
    last_busy: Option<Instant>,
    /// The create rate the settings give (Little's law).
    create_rate_nominal: f64,
}

impl Pacer {
    pub fn new(settings: &PacerSettings, now: Instant) -> Self {
        let processes = f64::from(settings.processes.max(1));
        let call_rate = settings.call_share();
        let slots = settings.max_outstanding_creates / processes;
        let provisioning = settings.provisioning.as_secs_f64().max(0.001);
        let create_rate = (slots / provisioning).max(f64::EPSILON);
        Self {
            max_wait: settings.max_wait,
            calls: Schedule::new(call_rate, settings.call_burst, now),
            call_rate_max: call_rate,
            creates: Schedule::new(create_rate, settings.create_burst, now),
            create_rate_range: (
                create_rate * CREATE_RATE_RANGE.0,
                create_rate * CREATE_RATE_RANGE.1,
            ),
            creates_deferred_until: None,
            calls_deferred_until: None,
            rate_cut: None,
            creates_bound: true,
            last_busy: None,
            create_rate_nominal: create_rate,
        }
    }

    /// The same pacer with its first create turn `phase` (0 to 1) of a create interval
    /// after `now`, and no create turn kept. Processes started together, as when a
    /// burst of messages wakes an idle function, would otherwise each start their kept
    /// creates at once: 20 with 10 processes against 15 slots, and the busy answers
    /// cut every process's create rate in its first seconds.
    pub fn with_create_phase(mut self, phase: f64, now: Instant) -> Self {
        self.creates.first_turn_at_phase(unit_fraction(phase), now);
        self
    }

    /// The current call rate (calls per second).
    pub fn call_rate(&self) -> f64 {
        self.calls.rate
    }

    /// The current create rate (creates per second).
    pub fn create_rate(&self) -> f64 {
        self.creates.rate
    }

    /// Whether `call` may go, and when. `budget` is the longest the caller can wait
    /// (its deadline); the pacer waits no longer than its own `max_wait` either.
    pub fn admit(&mut self, call: PacedCall, now: Instant, budget: Duration) -> Admission {
        self.calls.set_rate(self.call_rate_at(now), now);
        if call == PacedCall::Create {
            self.recover_create_rate(now);
        }
        let rate_wait = self.calls.wait(now);
        let create_wait = match call {
            PacedCall::Create => self.creates.wait(now),
            PacedCall::Delete | PacedCall::Revoke | PacedCall::Poll => 0.0,
        };
        let wait = rate_wait.max(create_wait);
        let mut longest = budget.min(self.max_wait).as_secs_f64();
        if call == PacedCall::Create {
            longest = longest.min(CREATE_WAIT_INTERVALS / self.creates.rate);
        }
        if wait <= longest || call == PacedCall::Revoke {
            // A revoke past its longest wait goes when that wait is over, its turn taken
            // from the calls behind it.
            let wait = Duration::from_secs_f64(wait.min(longest));
            // A create takes its turn of the rate now, not when its slot comes: the
            // polls behind it are not held back until then.
            if call == PacedCall::Create {
                self.creates_bound = self.creates.next_free > now && create_wait >= rate_wait;
                self.creates.take(now + wait);
            }
            self.calls.take(now);
            return Admission::Go(wait);
        }
        // Deferred steps come back one interval apart from the first free slot on, so
        // that they do not all return at once and defer each other again.
        // Polls and deletes are spread at the share, not at a cut rate: the rate comes
        // back within seconds, and steps spread at a cut rate would wait minutes.
        let (until, interval) = if call == PacedCall::Create && create_wait >= rate_wait {
            (&mut self.creates_deferred_until, 1.0 / self.creates.rate)
        } else {
            (&mut self.calls_deferred_until, 1.0 / self.call_rate_max)
        };
        // Capped: a step is never deferred longer than SQS allows anyway.
        let first_free = now + Duration::from_secs_f64(wait.min(f64::from(MAX_DELAY_SECONDS)));
        let latest = now + Duration::from_secs(MAX_DELAY_SECONDS.into());
        let line = until.filter(|at| *at > first_free).unwrap_or(first_free);
        // A line longer than the horizon wraps around within it. The wrapped place is
        // what is kept, so the line drains as time passes: kept unwrapped, it stood
        // minutes ahead after a storm, and a lone step deferred later came back up to
        // the horizon past its first free turn.
        let behind = (line - first_free).as_secs_f64() % DEFERRAL_HORIZON.as_secs_f64();
        let wrapped = first_free + Duration::from_secs_f64(behind);
        *until =
            Some(wrapped + Duration::from_secs_f64(interval.min(f64::from(MAX_DELAY_SECONDS))));
        let back_at = wrapped.min(latest);
        Admission::Defer {
            delay_seconds: whole_seconds_up(back_at - now),
        }
    }

    /// Brings a create rate below the share back to it once no create has been answered
    /// busy for [`CREATE_RECOVERY`].
    fn recover_create_rate(&mut self, now: Instant) {
        let quiet = self
            .last_busy
            .is_none_or(|at| now.saturating_duration_since(at) >= CREATE_RECOVERY);
        if quiet {
            self.creates
                .set_rate(self.creates.rate.max(self.create_rate_nominal), now);
        }
    }

    /// The call rate at `now`: the share, or after a cut, the rate the cut left plus
    /// what has come back since.
    pub fn call_rate_at(&self, now: Instant) -> f64 {
        match self.rate_cut {
            None => self.call_rate_max,
            Some((at, left)) => {
                let since = now.saturating_duration_since(at).as_secs_f64();
                (left + self.call_rate_max * since / RATE_RECOVERY_SECONDS).min(self.call_rate_max)
            }
        }
    }

    /// Learns from the answer to a call it admitted, received at `now`.
    pub fn answered(&mut self, call: PacedCall, feedback: Feedback, now: Instant) {
        if feedback == Feedback::RateLimited {
            let recently_cut = self
                .rate_cut
                .is_some_and(|(at, _)| now.saturating_duration_since(at) < RATE_CUT_SPACING);
            if !recently_cut {
                let floor = self.call_rate_max * CALL_RATE_FLOOR;
                let left = (self.call_rate_at(now) * RATE_DECREASE).max(floor);
                self.rate_cut = Some((now, left));
                self.calls.set_rate(left, now);
            }
        }
        if call != PacedCall::Create {
            return;
        }
        let factor = match feedback {
            Feedback::Accepted if !self.creates_bound => return,
            Feedback::Accepted => CREATE_INCREASE,
            Feedback::Busy => {
                self.last_busy = Some(now);
                CREATE_DECREASE
            }
            Feedback::RateLimited | Feedback::Other => return,
        };
        let (low, high) = self.create_rate_range;
        self.creates
            .set_rate((self.creates.rate * factor).clamp(low, high), now);
    }
}

/// A delay for SQS: whole seconds, rounded up so the step never comes back before its
/// slot, at least 1 (0 would come back at once), at most 900.
fn whole_seconds_up(delay: Duration) -> u32 {
    let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    u32::try_from(seconds.clamp(1, u64::from(MAX_DELAY_SECONDS))).unwrap_or(MAX_DELAY_SECONDS)
}
