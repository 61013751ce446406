"""The 15 outstanding creates as a loss system, for BENCHMARKS.md. A pacer that cannot
see the slots offers creates at a rate, evenly spaced with +-50% jitter (three
processes' turns and batches make them no smoother); a create that finds all 15 in use
is answered busy. Provisioning takes 1 to 6 s, uniform (idc-sim's default).

The first table drops a busy create and prints, per offered rate, the creates started
per second, the share of the 15 slots' capacity that is (15 / 3.5 s = 4.29 a second),
and the share of attempts answered busy.

The second runs the benchmark's 600 grants, all ready at the start, with nothing else
in the way (no queue, no deletes, no polls taking the rate): a busy grant is offered
again after the busy backoff (SPEC §3: at least 15 s), and a grant is done at the poll
that sees it end (3 s after the submit, then 6 s later). It prints the mean time to the
last grant's end over 40 seeds, and the busy answers, per offered rate; then the same
with a 1 s busy backoff and with a poll that sees the end at once, to show what those
two cost.

    python3 scripts/create_slots_model.py
"""

import heapq
import random
import statistics

SLOTS = 15
MEAN_SECONDS = 3.5
GRANTS = 600
SEEDS = 40


def offer_gap(rng, rate, jitter):
    return (1 + jitter * (2 * rng.random() - 1)) / rate


def start(ends, now, rng):
    """Offers a create at `now` to the slots whose operations end at `ends`: its
    provisioning time if a slot was free, None if it was answered busy."""
    while ends and ends[0] <= now:
        heapq.heappop(ends)
    if len(ends) >= SLOTS:
        return None
    provisioning = rng.uniform(1.0, 6.0)
    heapq.heappush(ends, now + provisioning)
    return provisioning


def run(rate, seconds=20_000.0, jitter=0.5, seed=1):
    rng = random.Random(seed)
    ends, now, started, busy = [], 0.0, 0, 0
    while now < seconds:
        now += offer_gap(rng, rate, jitter)
        if start(ends, now, rng) is None:
            busy += 1
        else:
            started += 1
    return started / seconds, busy / (started + busy)


def seen_done(provisioning, polled):
    """When a grant that provisions this long is known to be done."""
    if not polled:
        return provisioning
    wait = 3.0
    while wait < provisioning:
        wait += 6.0
    return wait


def makespan(rate, busy_backoff=15.0, polled=True, jitter=0.5, seed=1):
    rng = random.Random(seed)
    ready, coming_back, ends = GRANTS, [], []
    now, accepted, busy, last = 0.0, 0, 0, 0.0
    while accepted < GRANTS:
        now += offer_gap(rng, rate, jitter)
        while coming_back and coming_back[0] <= now:
            heapq.heappop(coming_back)
            ready += 1
        if ready == 0:
            continue
        ready -= 1
        provisioning = start(ends, now, rng)
        if provisioning is None:
            busy += 1
            heapq.heappush(coming_back, now + busy_backoff)
        else:
            accepted += 1
            last = max(last, now + seen_done(provisioning, polled))
    return last, busy


def mean_makespan(rate, **options):
    runs = [makespan(rate, seed=seed, **options) for seed in range(SEEDS)]
    return statistics.mean(r[0] for r in runs), statistics.mean(r[1] for r in runs)


if __name__ == "__main__":
    capacity = SLOTS / MEAN_SECONDS
    print("| offered creates/s | started/s | of the slots' capacity | answered busy |")
    print("|---|---|---|---|")
    for rate in (3.5, 3.8, 4.0, 4.3, 4.5, 5.0, 5.5, 6.0):
        started, busy = run(rate)
        print(f"| {rate:.1f} | {started:.2f} | {started / capacity:.0%} | {busy:.1%} |")
    print()
    print("| offered creates/s | 600 grants end at | busy answers | of create attempts |"
          " with a 1 s busy backoff | with the end seen at once | with both |")
    print("|---|---|---|---|---|---|---|")
    for rate in (3.8, 4.2, 4.6, 5.0, 5.5, 6.0):
        end, busy = mean_makespan(rate)
        short, _ = mean_makespan(rate, busy_backoff=1.0)
        unpolled, _ = mean_makespan(rate, polled=False)
        both, _ = mean_makespan(rate, busy_backoff=1.0, polled=False)
        print(f"| {rate:.1f} | {end:.0f} s | {busy:.0f} | {busy / (GRANTS + busy):.0%} |"
              f" {short:.0f} s | {unpolled:.0f} s | {both:.0f} s |")
