//! The pacer (src/pacer.rs) on a clock the test moves: the rate share, the create share,
//! deferrals, AIMD, and three processes against a model of the service's two limits.

use std::time::{Duration, Instant};

use assignment_worker::config::Pacing;
use assignment_worker::pacer::{Admission, Feedback, PacedCall, Pacer, PacerSettings};
use proptest::prelude::*;

/// Settings without bursts, so that the arithmetic below stays simple.
fn settings(processes: u32) -> PacerSettings {
    PacerSettings {
        rate_per_second: 20.0,
        max_outstanding_creates: 15.0,
        provisioning: Duration::from_millis(3500),
        processes,
        max_wait: Duration::from_secs(2),
        call_burst: 1.0,
        create_burst: 1.0,
    }
}

/// The settings the worker runs with by default (config::Pacing).
fn production(processes: u32) -> PacerSettings {
    Pacing {
        function_concurrency: processes,
        rate_per_second: 20,
        provisioning_milliseconds: 3500,
    }
    .settings()
}

const BUDGET: Duration = Duration::from_secs(10);

fn secs(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds)
}

/// Asks for `call` again as soon as the last one went, for `span`; the times the calls
/// went, from the start.
fn saturate(pacer: &mut Pacer, call: PacedCall, start: Instant, span: Duration) -> Vec<f64> {
    let mut now = start;
    let mut went = Vec::new();
    while now < start + span {
        match pacer.admit(call, now, BUDGET) {
            Admission::Go(wait) => {
                now += wait;
                went.push((now - start).as_secs_f64());
                pacer.answered(call, Feedback::Accepted, now);
            }
            Admission::Defer { delay_seconds } => now += Duration::from_secs(delay_seconds.into()),
        }
    }
    went
}

/// The most calls in any window of `width` seconds.
fn most_in_window(times: &[f64], width: f64) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    (0..sorted.len())
        .map(|i| {
            sorted[i..]
                .iter()
                .take_while(|t| **t < sorted[i] + width)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn a_process_keeps_to_its_share_of_the_rate() {
    let start = Instant::now();
    let mut pacer = Pacer::new(&settings(3), start);
    let went = saturate(&mut pacer, PacedCall::Poll, start, secs(60.0));
    // 95% of 20/s, a third each, plus the burst of 1.
    let share = 20.0 * 0.95 / 3.0;
    assert!(
        went.len() as f64 <= share * 60.0 + 1.0 + 1.0,
        "{}",
        went.len()
    );
    assert!(went.len() as f64 >= share * 60.0 * 0.98, "{}", went.len());
    assert!(most_in_window(&went, 1.0) as f64 <= share + 1.0 + 1e-9);
}

#[test]
fn creates_keep_to_the_share_of_the_outstanding_slots() {
    let start = Instant::now();
    let mut pacer = Pacer::new(&settings(3), start);
    // Without answers: no adjustment, the nominal rate of 5 slots / 3.5 s.
    let mut now = start;
    let mut went = 0;
    while now < start + secs(35.0) {
        match pacer.admit(PacedCall::Create, now, BUDGET) {
            Admission::Go(wait) => {
                now += wait;
                went += 1;
            }
            Admission::Defer { .. } => unreachable!("the budget covers every wait"),
        }
    }
    // 50 in 35 s, plus the first one at once.
    assert!((50..=52).contains(&went), "{went}");
}

#[test]
fn polls_are_not_held_back_by_creates() {
    let start = Instant::now();
    let mut pacer = Pacer::new(&settings(3), start);
    assert_eq!(
        pacer.admit(PacedCall::Create, start, BUDGET),
        Admission::Go(Duration::ZERO)
    );
    // The next create waits for its slot, 0.7 s away ...
    let Admission::Go(create_wait) = pacer.admit(PacedCall::Create, start, BUDGET) else {
        panic!("deferred");
    };
    assert!(create_wait > secs(0.6), "{create_wait:?}");
    // ... and a poll at the same instant only for the rate: the two creates took two
    // calls' worth, so its turn is the third at 6.33 a second, 0.32 s away.
    let Admission::Go(poll_wait) = pacer.admit(PacedCall::Poll, start, BUDGET) else {
        panic!("deferred");
    };
    assert!(poll_wait < secs(0.33), "{poll_wait:?}");
}

#[test]
fn a_wait_longer_than_allowed_defers_without_taking_a_token() {
    let start = Instant::now();
    let mut pacer = Pacer::new(&settings(3), start);
    let short = Duration::from_millis(100);
    assert!(matches!(
        pacer.admit(PacedCall::Create, start, short),
        Admission::Go(_)
    ));
    let deferred = pacer.admit(PacedCall::Create, start, short);
    assert_eq!(deferred, Admission::Defer { delay_seconds: 1 });
    // Nothing was taken: the slot 0.7 s away is still the next one.
    let Admission::Go(wait) = pacer.admit(PacedCall::Create, start, BUDGET) else {
        panic!("deferred");
    };
    assert!((secs(0.69)..=secs(0.71)).contains(&wait), "{wait:?}");
}

/// An expiry's or an undo's revoke is never deferred: where a delete would be, it goes
/// at the end of the longest wait allowed, and the calls behind it wait one turn more.
#[test]
fn a_revoke_is_never_deferred_and_takes_its_turn_from_the_calls_behind_it() {
    let start = Instant::now();
    let mut pacer = Pacer::new(&settings(3), start);
    let short = Duration::from_millis(100);
    // The rate's turns are taken for the next second or so.
    let take_turns = |pacer: &mut Pacer| {
        for _ in 0..6 {
            let admitted = pacer.admit(PacedCall::Poll, start, BUDGET);
            assert!(matches!(admitted, Admission::Go(_)), "{admitted:?}");
        }
    };
    take_turns(&mut pacer);
    assert!(matches!(
        pacer.admit(PacedCall::Delete, start, short),
        Admission::Defer { .. }
    ));
    let Admission::Go(wait) = pacer.admit(PacedCall::Revoke, start, short) else {
        panic!("a revoke deferred");
    };
    assert!(wait <= short, "{wait:?}");
    // Its turn was taken: a poll behind it waits one interval (0.16 s) longer than
    // before it.
    let mut before = Pacer::new(&settings(3), start);
    take_turns(&mut before);
    let (Admission::Go(after), Admission::Go(without)) = (
        pacer.admit(PacedCall::Poll, start, BUDGET),
        before.admit(PacedCall::Poll, start, BUDGET),
    ) else {
        panic!("a poll deferred within the budget");
    };
    let interval = secs(3.0 / (20.0 * 0.95));
    assert!(
        after >= without + interval - secs(0.001),
        "{after:?} against {without:?}"
    );
}

#[test]
fn the_pacer_never_waits_longer_than_its_own_limit() {
    let start = Instant::now();
    let mut pacer = Pacer::new(&settings(3), start);
    // Eleven creates at once: the last would wait 7 s, beyond max_wait (2 s) though
    // within the caller's budget; a create waits at most 1.5 create intervals (1.05 s).
    let answers: Vec<Admission> = (0..11)
        .map(|_| pacer.admit(PacedCall::Create, start, BUDGET))
        .collect();
    assert!(answers.iter().all(|a| match a {
        Admission::Go(wait) => *wait <= secs(1.05),
        Admission::Defer { .. } => true,
    }));
    assert_eq!(
        answers
            .iter()
            .filter(|a| matches!(a, Admission::Go(_)))
            .count(),
        2,
        "{answers:?}"
    );
}

/// A batch of 10 polls and deletes after an idle spell, taken as the handler takes
/// them: 4 lanes, each asking for its next record as soon as its call is answered. The
/// records the pacer deferred.
fn deferred_of_a_batch(settings: &PacerSettings) -> usize {
    let start = Instant::now();
    let mut pacer = Pacer::new(settings, start);
    let mut lanes = [start; 4];
    let mut deferred = 0;
    for record in 0..10 {
        let lane = (0..lanes.len())
            .min_by_key(|&lane| lanes[lane])
            .expect("lanes");
        let at = lanes[lane];
        let call = [PacedCall::Poll, PacedCall::Delete][record % 2];
        match pacer.admit(call, at, BUDGET) {
            Admission::Go(wait) => {
                lanes[lane] = at + wait + secs(0.02);
                pacer.answered(call, Feedback::Accepted, lanes[lane]);
            }
            Admission::Defer { .. } => {
                deferred += 1;
                lanes[lane] = at + secs(0.001);
            }
        }
    }
    deferred
}

#[test]
fn a_process_serves_a_whole_batch_at_its_share_rather_than_defer_it() {
    // A deferred step waits at least SQS's 1 s and comes back when this process's
    // share has a turn for it anyway; meanwhile it costs three SQS calls. Waiting in the
    // process costs nothing the share did not already.
    for processes in [1, 3, 7, 10, 14] {
        assert_eq!(
            deferred_of_a_batch(&production(processes)),
            0,
            "{processes} processes"
        );
    }
}

#[test]
fn polls_wait_up_to_the_pacers_limit() {
    let start = Instant::now();
    let mut pacer = Pacer::new(&settings(3), start);
    // 6.33 calls a second: 13 fit in 2 s (the first at once), the rest are deferred.
    let went = (0..20)
        .filter(|_| {
            matches!(
                pacer.admit(PacedCall::Poll, start, BUDGET),
                Admission::Go(_)
            )
        })
        .count();
    assert_eq!(went, 13);
}

#[test]
fn turns_not_taken_are_kept_up_to_the_burst() {
    let start = Instant::now();
    let settings = production(3);
    assert_eq!((settings.call_burst, settings.create_burst), (3.0, 2.0));
    let mut pacer = Pacer::new(&settings, start);
    // After an idle spell: three calls at once, the fourth a turn later.
    let later = start + secs(10.0);
    for _ in 0..3 {
        assert_eq!(
            pacer.admit(PacedCall::Poll, later, BUDGET),
            Admission::Go(Duration::ZERO)
        );
    }
    let Admission::Go(wait) = pacer.admit(PacedCall::Poll, later, BUDGET) else {
        panic!("deferred");
    };
    assert!((secs(0.15)..secs(0.17)).contains(&wait), "{wait:?}");
    // Two creates at once, the third a create interval (0.7 s) after the first.
    let again = later + secs(10.0);
    for _ in 0..2 {
        assert!(matches!(
            pacer.admit(PacedCall::Create, again, BUDGET),
            Admission::Go(wait) if wait < secs(0.5)
        ));
    }
    let Admission::Go(wait) = pacer.admit(PacedCall::Create, again, BUDGET) else {
        panic!("deferred");
    };
    assert!((secs(0.69)..secs(0.71)).contains(&wait), "{wait:?}");
    // Ten processes keep one turn each: ten at once, half the service's burst.
    assert_eq!(production(10).call_burst, 1.0);
}

/// In a 1,200-request run each process kept deferring the creates of the batches it
/// received, and the line of its deferred creates grew to 83 s ahead: the run started
/// 61 creates in its last 40 s against about 36 in every 10 s before, while the creates
/// parked in the lines came back a few at a time.
#[test]
fn deferred_creates_come_back_within_fifteen_seconds_however_many_wait() {
    let start = Instant::now();
    let mut pacer = Pacer::new(&settings(3), start);
    let delays: Vec<u32> = (0..200)
        .filter_map(
            |_| match pacer.admit(PacedCall::Create, start, Duration::ZERO) {
                Admission::Defer { delay_seconds } => Some(delay_seconds),
                Admission::Go(_) => None,
            },
        )
        .collect();
    assert_eq!(delays.len(), 199);
    let latest = delays.iter().max().copied().unwrap_or_default();
    assert!(latest <= 16, "{latest}");
    // Still spread over those seconds, not bunched into a few of them.
    let mut per_second = [0usize; 17];
    for delay in &delays {
        per_second[*delay as usize] += 1;
    }
    let most = per_second.iter().max().copied().unwrap_or_default();
    assert!(most <= 199 / 15 + 3, "{per_second:?}");
}

/// The line of deferred steps drains with time. After a storm it reached far ahead and
/// never came back: a lone create deferred minutes later came back up to 15 s past its
/// first free turn, where the wrapped line happened to stand.
#[test]
fn a_deferral_long_after_a_storm_comes_back_at_its_first_free_turn() {
    let start = Instant::now();
    let mut pacer = Pacer::new(&settings(3), start);
    for _ in 0..200 {
        pacer.admit(PacedCall::Create, start, BUDGET);
    }
    // Two minutes later two creates take the next two turns (0.7 s apart); the third's
    // first free turn is 1.4 s away.
    let later = start + secs(120.0);
    for _ in 0..2 {
        let admitted = pacer.admit(PacedCall::Create, later, BUDGET);
        assert!(matches!(admitted, Admission::Go(_)), "{admitted:?}");
    }
    assert_eq!(
        pacer.admit(PacedCall::Create, later, BUDGET),
        Admission::Defer { delay_seconds: 2 }
    );
    // The same for polls and deletes, whose line is the rate's.
    let mut pacer = Pacer::new(&settings(3), start);
    for _ in 0..2_050 {
        pacer.admit(PacedCall::Delete, start, Duration::ZERO);
    }
    pacer.admit(PacedCall::Delete, later, BUDGET);
    assert_eq!(
        pacer.admit(PacedCall::Delete, later, Duration::ZERO),
        Admission::Defer { delay_seconds: 1 }
    );
}

#[test]
fn deferred_creates_come_back_spread_at_the_create_rate() {
    let start = Instant::now();
    let mut pacer = Pacer::new(&settings(3), start);
    let none = Duration::ZERO;
    assert!(matches!(
        pacer.admit(PacedCall::Create, start, none),
        Admission::Go(_)
    ));
    let delays: Vec<u32> = (0..20)
        .map(|_| match pacer.admit(PacedCall::Create, start, none) {
            Admission::Defer { delay_seconds } => delay_seconds,
            Admission::Go(_) => panic!("a create went without its slot"),
        })
        .collect();
    // The i-th comes back when the i-th next slot is free: 0.7 s apart, rounded up.
    for (i, delay) in delays.iter().enumerate() {
        let slot = (i + 1) as f64 * 3.5 / 5.0;
        assert!(
            f64::from(*delay) >= slot && f64::from(*delay) < slot + 1.0,
            "{i}: {delay} for a slot at {slot}"
        );
    }
    // Deferring the same create again later does not push it behind the others twice:
    // the schedule moves on with time.
    let later = start + secs(30.0);
    match pacer.admit(PacedCall::Create, later, none) {
        Admission::Go(_) => {}
        Admission::Defer { delay_seconds } => assert!(delay_seconds <= 1),
    }
}

#[test]
fn a_rate_limit_cuts_the_rate_once_a_second_and_time_restores_it() {
    let start = Instant::now();
    let at = |seconds: f64| start + secs(seconds);
    let mut pacer = Pacer::new(&settings(3), start);
    let share = pacer.call_rate();
    pacer.answered(PacedCall::Poll, Feedback::RateLimited, at(0.0));
    assert!((pacer.call_rate_at(at(0.0)) - share * 0.7).abs() < 1e-9);
    // The answers to calls made before the cut, within a second of it, cut no more.
    pacer.answered(PacedCall::Delete, Feedback::RateLimited, at(0.3));
    pacer.answered(PacedCall::Poll, Feedback::RateLimited, at(0.9));
    assert!((pacer.call_rate_at(at(0.9)) - share * (0.7 + 0.9 / 60.0)).abs() < 1e-9);
    // A second later it cuts again, from what had come back by then.
    pacer.answered(PacedCall::Poll, Feedback::RateLimited, at(1.0));
    let left = share * (0.7 + 1.0 / 60.0) * 0.7;
    assert!((pacer.call_rate_at(at(1.0)) - left).abs() < 1e-9);
    // The share comes back with time alone, a 60th a second, whatever the calls.
    let back = 1.0 + (share - left) / share * 60.0;
    assert!(pacer.call_rate_at(at(back - 0.5)) < share);
    assert!((pacer.call_rate_at(at(back)) - share).abs() < 1e-9);
    assert_eq!(pacer.call_rate_at(at(back + 100.0)), share);
    // Admitting a call applies the rate of the moment.
    assert!(matches!(
        pacer.admit(PacedCall::Poll, at(back + 100.0), BUDGET),
        Admission::Go(_)
    ));
    assert_eq!(pacer.call_rate(), share);
    // Throttled every second, it falls to its floor.
    for i in 0..100 {
        let now = at(200.0 + f64::from(i));
        pacer.answered(PacedCall::Poll, Feedback::RateLimited, now);
    }
    assert!((pacer.call_rate_at(at(299.0)) - share * 0.05).abs() < 1e-9);
}

/// A cut of the call rate takes back no turn already taken. Recomputed at the lower
/// rate, the turns a process keeps while idle grew, and right after a `Rate exceeded`
/// calls went at once that the old rate had already spent.
#[test]
fn a_rate_cut_frees_no_turn() {
    let start = Instant::now();
    let settings = production(1);
    assert_eq!(settings.call_burst, 10.0);
    let mut pacer = Pacer::new(&settings, start);
    let later = start + secs(10.0);
    // Calls asked for at `later` until one has to wait: how many went at once, and the
    // wait of the one that ended the count (it took its turn too).
    let at_once = |pacer: &mut Pacer| {
        let mut count = 0;
        loop {
            match pacer.admit(PacedCall::Poll, later, BUDGET) {
                Admission::Go(Duration::ZERO) => count += 1,
                Admission::Go(wait) => return (count, wait.as_secs_f64()),
                Admission::Defer { .. } => panic!("deferred within the budget"),
            }
        }
    };
    // The kept turns, then the eleventh call a turn later.
    let (count, wait) = at_once(&mut pacer);
    assert_eq!(count, 10);
    assert!((wait - 1.0 / pacer.call_rate()).abs() < 1e-6, "{wait}");
    pacer.answered(PacedCall::Poll, Feedback::RateLimited, later);
    // None at once after the cut: the twelfth waits for the eleventh's turn and its own,
    // both at the cut rate.
    let (count, wait) = at_once(&mut pacer);
    assert_eq!(count, 0);
    assert!((wait - 2.0 / pacer.call_rate()).abs() < 1e-6, "{wait}");
}

/// Steps deferred for the rate after a cut come back spread at the share, not at the
/// cut rate: the rate comes back within seconds, and a cut rate would send a
/// process's deferred steps minutes ahead.
#[test]
fn deferred_steps_are_spread_at_the_share_after_a_cut() {
    let start = Instant::now();
    let mut pacer = Pacer::new(&settings(3), start);
    let share = pacer.call_rate();
    for i in 0..10 {
        pacer.answered(
            PacedCall::Poll,
            Feedback::RateLimited,
            start + secs(f64::from(i)),
        );
    }
    let now = start + secs(10.0);
    let mut latest = 0;
    for _ in 0..200 {
        if let Admission::Defer { delay_seconds } =
            pacer.admit(PacedCall::Poll, now, Duration::ZERO)
        {
            latest = latest.max(delay_seconds);
        }
    }
    // 200 steps at the share (6.33 a second) span 32 s; at the cut rate they would
    // span more than ten minutes.
    assert!(
        f64::from(latest) <= 200.0 / share + 2.0 + 2.0 / (0.05 * share),
        "{latest}"
    );
}

/// With half the rate taken, creates waited for the rate behind the polls and deletes
/// for minutes, each accepted create raised the create rate, to twice the share, and
/// once the polls and deletes were done the creates met full slots 59 times in 30 s
/// (each busy create then waits at least 15 s).
#[test]
fn creates_slower_than_their_rate_do_not_raise_it() {
    let start = Instant::now();
    let mut pacer = Pacer::new(&settings(3), start);
    let nominal = pacer.create_rate();
    // One create a second against a create rate of 1.43 a second.
    for second in 0..100 {
        let now = start + secs(f64::from(second));
        let Admission::Go(wait) = pacer.admit(PacedCall::Create, now, BUDGET) else {
            panic!("deferred at {second} s");
        };
        pacer.answered(PacedCall::Create, Feedback::Accepted, now + wait);
    }
    assert_eq!(pacer.create_rate(), nominal);
}

/// Which limit holds a create back is decided for that create. A create admitted at
/// once, then another held back by the call rate (cut to its floor) and deferred: the
/// second says nothing of the create rate, and the first one's acceptance must not
/// raise it (a flag the second overwrote made it, on every batch of creates).
#[test]
fn a_create_held_back_by_the_call_rate_makes_no_other_raise_the_create_rate() {
    let start = Instant::now();
    let mut pacer = Pacer::new(&settings(3), start);
    for second in 0..20 {
        pacer.answered(
            PacedCall::Poll,
            Feedback::RateLimited,
            start + secs(f64::from(second)),
        );
    }
    let now = start + secs(20.0);
    let nominal = pacer.create_rate();
    let Admission::Go(_) = pacer.admit(PacedCall::Create, now, BUDGET) else {
        panic!("the first create waits for nothing");
    };
    let second = pacer.admit(PacedCall::Create, now + secs(0.001), BUDGET);
    assert!(matches!(second, Admission::Defer { .. }), "{second:?}");
    pacer.answered(PacedCall::Create, Feedback::Accepted, now + secs(0.1));
    assert_eq!(pacer.create_rate(), nominal);
}

/// A storm of busy answers (another tool holding the slots) cuts the create rate to
/// its floor. A minute with no busy answer brings it back to the share: regained only
/// through accepted creates, 0.5% each, it took some 600 of them, most of an hour.
#[test]
fn a_minute_without_busy_answers_restores_the_create_rate() {
    let start = Instant::now();
    let mut pacer = Pacer::new(&settings(3), start);
    let nominal = pacer.create_rate();
    for _ in 0..100 {
        pacer.answered(PacedCall::Create, Feedback::Busy, start);
    }
    let _ = pacer.admit(PacedCall::Create, start + secs(30.0), BUDGET);
    assert!(pacer.create_rate() < 0.1 * nominal);
    // The storm goes on: the minute counts from its last busy answer, not its first.
    pacer.answered(PacedCall::Create, Feedback::Busy, start + secs(30.0));
    let _ = pacer.admit(PacedCall::Create, start + secs(61.0), BUDGET);
    assert!(pacer.create_rate() < 0.1 * nominal);
    let _ = pacer.admit(PacedCall::Create, start + secs(91.0), BUDGET);
    assert!((pacer.create_rate() - nominal).abs() < 1e-9);
}

#[test]
fn busy_answers_slow_creates_and_accepted_creates_speed_them_up() {
    let start = Instant::now();
    let mut pacer = Pacer::new(&settings(3), start);
    let nominal = pacer.create_rate();
    pacer.answered(PacedCall::Create, Feedback::Busy, start);
    assert!(pacer.create_rate() < nominal);
    // A busy answer is not a rate limit: the call rate stays.
    assert_eq!(pacer.call_rate(), 20.0 * 0.95 / 3.0);
    for _ in 0..1000 {
        pacer.answered(PacedCall::Create, Feedback::Accepted, start);
    }
    assert!((pacer.create_rate() - 2.0 * nominal).abs() < 1e-9);
    for _ in 0..1000 {
        pacer.answered(PacedCall::Create, Feedback::Busy, start);
    }
    assert!((pacer.create_rate() - 0.05 * nominal).abs() < 1e-9);
    // Polls and other errors leave the create rate alone.
    pacer.answered(PacedCall::Poll, Feedback::Accepted, start);
    pacer.answered(PacedCall::Create, Feedback::Other, start);
    assert!((pacer.create_rate() - 0.05 * nominal).abs() < 1e-9);
}

#[test]
fn ten_processes_share_as_much_as_three() {
    let start = Instant::now();
    let three = Pacer::new(&settings(3), start);
    let ten = Pacer::new(&settings(10), start);
    assert!((three.call_rate() * 3.0 - ten.call_rate() * 10.0).abs() < 1e-9);
    assert!((three.create_rate() * 3.0 - ten.create_rate() * 10.0).abs() < 1e-9);
}

#[test]
fn processes_started_together_spread_their_first_creates() {
    // Ten processes started at once, as when a burst of messages wakes an idle
    // function, each with creates waiting: with two kept turns each they started 20
    // creates in their first instant, against 15 slots.
    let start = Instant::now();
    let settings = production(10);
    let mut first_second = 0;
    for process in 0..10u32 {
        let phase = f64::from(process) / 10.0;
        let mut pacer = Pacer::new(&settings, start).with_create_phase(phase, start);
        while let Admission::Go(wait) = pacer.admit(PacedCall::Create, start, BUDGET) {
            if wait < secs(1.0) {
                first_second += 1;
            }
        }
    }
    // One create interval is 10 / (15 / 3.5 s) = 2.33 s: 1 s of it holds 5 phases.
    assert_eq!(first_second, 5);
}

/// A model of the service: a 20/s token bucket and 15 outstanding creates, each
/// provisioned in 1 to 6 s (the simulator's defaults), on the test's clock.
struct Service {
    tokens: f64,
    at: f64,
    outstanding: Vec<f64>,
    rng: fastrand::Rng,
    rate: f64,
}

impl Service {
    fn call(&mut self, call: PacedCall, at: f64) -> Feedback {
        self.tokens = (self.tokens + (at - self.at).max(0.0) * self.rate).min(20.0);
        self.at = self.at.max(at);
        if self.tokens < 1.0 {
            return Feedback::RateLimited;
        }
        self.tokens -= 1.0;
        if call == PacedCall::Create {
            self.outstanding.retain(|done| *done > at);
            if self.outstanding.len() >= 15 {
                return Feedback::Busy;
            }
            self.outstanding.push(at + 1.0 + 5.0 * self.rng.f64());
        }
        Feedback::Accepted
    }
}

/// `processes` pacers, each with an endless supply of grants and revokes (a create, a
/// poll, a delete, a poll, over and over, as in the benchmark), against the model for
/// `span` seconds: (creates accepted, rate limits, busy answers, calls).
fn run_model(processes: u32, service_rate: f64, span: f64, seed: u64) -> (u32, u32, u32, u32) {
    let start = Instant::now();
    let mut service = Service {
        tokens: 20.0,
        at: 0.0,
        outstanding: Vec::new(),
        rng: fastrand::Rng::with_seed(seed),
        rate: service_rate,
    };
    // Each with a phase of its own, as in production (`PacedIdentityCenter`).
    let mut pacers: Vec<Pacer> = (0..processes)
        .map(|p| {
            Pacer::new(&production(processes), start)
                .with_create_phase(f64::from(p) / f64::from(processes), start)
        })
        .collect();
    const CYCLE: [PacedCall; 4] = [
        PacedCall::Create,
        PacedCall::Poll,
        PacedCall::Delete,
        PacedCall::Poll,
    ];
    // When each process acts next, its place in the cycle, and whether that is the
    // call it was admitted for (the service sees calls in time order).
    let mut next: Vec<(f64, usize, bool)> = (0..processes)
        .map(|p| (f64::from(p) * 0.01, 0, false))
        .collect();
    let (mut created, mut limited, mut busy, mut calls) = (0, 0, 0, 0);
    loop {
        let (p, (at, place, admitted)) = next
            .iter()
            .copied()
            .enumerate()
            .min_by(|a, b| a.1.0.total_cmp(&b.1.0))
            .expect("processes");
        if at > span {
            return (created, limited, busy, calls);
        }
        let call = CYCLE[place];
        let following = (place + 1) % CYCLE.len();
        if admitted {
            // A few milliseconds to the service and back.
            let feedback = service.call(call, at + 0.005);
            calls += 1;
            match feedback {
                Feedback::RateLimited => limited += 1,
                Feedback::Busy => busy += 1,
                Feedback::Accepted if call == PacedCall::Create => created += 1,
                _ => {}
            }
            pacers[p].answered(call, feedback, start + secs(at + 0.005));
            next[p] = (at + 0.01, following, false);
            continue;
        }
        match pacers[p].admit(call, start + secs(at), Duration::from_secs(2)) {
            Admission::Go(wait) => next[p] = (at + wait.as_secs_f64(), place, true),
            // The step comes back later; meanwhile the process takes the next one.
            Admission::Defer { .. } => next[p] = (at + 0.05, following, false),
        }
    }
}

#[test]
fn three_processes_keep_the_slots_full_without_rate_limits() {
    for seed in 1..=3 {
        let (created, limited, busy, calls) = run_model(3, 20.0, 300.0, seed);
        // The slots allow 15 / 3.5 s = 4.29 creates a second: 1,286 in 300 s.
        assert!(created >= 1050, "seed {seed}: {created} creates");
        assert_eq!(limited, 0, "seed {seed}");
        assert!(
            f64::from(busy) < 0.05 * f64::from(calls),
            "seed {seed}: {busy} of {calls}"
        );
    }
}

#[test]
fn ten_processes_do_no_worse_than_three() {
    let (three, _, three_busy, three_calls) = run_model(3, 20.0, 300.0, 7);
    let (ten, limited, ten_busy, ten_calls) = run_model(10, 20.0, 300.0, 7);
    assert_eq!(limited, 0);
    assert!(
        f64::from(ten) >= 0.95 * f64::from(three),
        "{ten} against {three}"
    );
    assert!(
        f64::from(ten_busy) / f64::from(ten_calls)
            <= 1.5 * f64::from(three_busy) / f64::from(three_calls) + 0.01,
        "{ten_busy}/{ten_calls} against {three_busy}/{three_calls}"
    );
}

#[test]
fn with_half_the_rate_taken_the_processes_back_off() {
    let (_, limited, _, calls) = run_model(3, 10.0, 300.0, 11);
    assert!(
        f64::from(limited) < 0.05 * f64::from(calls),
        "{limited} of {calls}"
    );
    // They used most of what was left.
    assert!(f64::from(calls) > 0.8 * 10.0 * 300.0, "{calls}");
}

proptest! {
    /// Whatever the answers, the timing and the create phase: a call goes only within
    /// the budget and the pacer's own limit; a deferral is a valid SQS delay; the calls
    /// that went keep to the share in every window; and the creates to their highest
    /// rate.
    #[test]
    fn admissions_keep_their_bounds(
        steps in proptest::collection::vec(
            (0u64..3_000, 0u8..3, 0u8..4, 0u64..4_000),
            1..300,
        ),
        processes in 1u32..12,
        phase in proptest::option::of(0.0f64..=1.0),
    ) {
        let settings = settings(processes);
        let start = Instant::now();
        let pacer = Pacer::new(&settings, start);
        let mut pacer = match phase {
            Some(phase) => pacer.with_create_phase(phase, start),
            None => pacer,
        };
        let share = 20.0 * 0.95 / f64::from(processes);
        let create_max = 2.0 * 15.0 / f64::from(processes) / 3.5;
        let mut now = start;
        let mut went = Vec::new();
        let mut creates = Vec::new();
        let mut others = Vec::new();
        for (gap_ms, kind, answer, budget_ms) in steps {
            now += Duration::from_millis(gap_ms);
            let call = [PacedCall::Create, PacedCall::Delete, PacedCall::Poll][usize::from(kind)];
            let budget = Duration::from_millis(budget_ms);
            match pacer.admit(call, now, budget) {
                Admission::Go(wait) => {
                    prop_assert!(wait <= budget && wait <= settings.max_wait);
                    let at = (now + wait - start).as_secs_f64();
                    went.push(at);
                    if call == PacedCall::Create {
                        creates.push(at);
                    } else {
                        others.push(at);
                    }
                    let feedback = [Feedback::Accepted, Feedback::RateLimited, Feedback::Busy, Feedback::Other][usize::from(answer)];
                    let feedback = if feedback == Feedback::Busy && call != PacedCall::Create { Feedback::Accepted } else { feedback };
                    pacer.answered(call, feedback, now + wait);
                }
                Admission::Defer { delay_seconds } => {
                    prop_assert!((1..=900).contains(&delay_seconds));
                }
            }
            prop_assert!(pacer.call_rate() <= share + 1e-9 && pacer.call_rate() >= share * 0.05 - 1e-9);
            prop_assert!(pacer.create_rate() <= create_max + 1e-9);
        }
        for width in [0.5, 1.0, 5.0] {
            // A create takes its turn of the rate when admitted and may go later, when
            // its slot comes: it may then come close to the next call.
            prop_assert!(most_in_window(&went, width) as f64 <= share * width + 2.0 + 1e-6);
            prop_assert!(most_in_window(&others, width) as f64 <= share * width + 1.0 + 1e-6);
            prop_assert!(most_in_window(&creates, width) as f64 <= create_max * width + 1.0 + 1e-6);
        }
    }

    /// A `Rate exceeded` or "too many requests processing" answer never lets a call go
    /// sooner than it would have gone without that answer, whatever came before: a cut
    /// once did, by turning reserved time into kept turns. A deferral's delay is not
    /// compared: it places the step in a line (a create held back by a cut rate joins the
    /// calls' line, which may be shorter than the creates'), and no call goes until the
    /// step comes back and is admitted. A busy answer may let a create wait for its turn
    /// where it was deferred before: a slower create rate waits longer for its turns.
    #[test]
    fn a_throttling_answer_never_lets_a_call_go_sooner(
        steps in proptest::collection::vec(
            (0u64..3_000, 0u8..3, 0u8..4, 0u64..4_000),
            0..100,
        ),
        processes in 1u32..12,
        last_gap_ms in 0u64..3_000,
        throttled_kind in 0u8..3,
        asked_kind in 0u8..3,
        budget_ms in 0u64..4_000,
    ) {
        let kinds = [PacedCall::Create, PacedCall::Delete, PacedCall::Poll];
        let start = Instant::now();
        let mut pacer = Pacer::new(&production(processes), start);
        let mut now = start;
        let mut latest = start;
        for (gap_ms, kind, answer, budget_ms) in steps {
            now += Duration::from_millis(gap_ms);
            let call = kinds[usize::from(kind)];
            if let Admission::Go(wait) = pacer.admit(call, now, Duration::from_millis(budget_ms)) {
                let feedback = [Feedback::Accepted, Feedback::RateLimited, Feedback::Busy, Feedback::Other][usize::from(answer)];
                pacer.answered(call, feedback, now + wait);
                latest = latest.max(now + wait);
            }
        }
        let at = now.max(latest) + Duration::from_millis(last_gap_ms);
        let throttled = kinds[usize::from(throttled_kind)];
        let feedback = if throttled == PacedCall::Create { Feedback::Busy } else { Feedback::RateLimited };
        let mut answered = pacer.clone();
        answered.answered(throttled, feedback, at);
        let asked = kinds[usize::from(asked_kind)];
        let budget = Duration::from_millis(budget_ms);
        let (with, without) = (answered.admit(asked, at, budget), pacer.admit(asked, at, budget));
        match (with, without) {
            (Admission::Go(after), Admission::Go(before)) => prop_assert!(
                after.as_secs_f64() >= before.as_secs_f64() - 1e-6,
                "went after {after:?} with the answer, {before:?} without it"
            ),
            (Admission::Go(_), Admission::Defer { .. }) => prop_assert!(
                feedback == Feedback::Busy,
                "a Rate exceeded answer let a call go that was deferred without it"
            ),
            (Admission::Defer { .. }, _) => {}
        }
    }
}
