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

The third asks what seeing more than its own answers would buy a pacer: it offers
creates while the expected number outstanding is below a bound, knowing either every
create's submit time and its 3 s poll's answer (as a count shared by all processes
could, for free), or the in-progress creates themselves, from a
ListAccountAssignmentCreationStatus call every so often (each one an Identity Center
call; 2,570 calls make a 1,200-request run's 2.14 calls per request).

The fourth asks what a pacer that knew how many grants are left could gain by offering
the last ones more slowly, so that fewer of them are answered busy and held 15 s.

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


def makespan(rate, busy_backoff=15.0, polled=True, jitter=0.5, seed=1, end_rate=None,
             slow_last=0):
    """The 600 grants offered at `rate`, and at `end_rate` for the `slow_last` ones (a pacer
    that knew how many grants are left, as no process does, could spare the run's end
    the busy answers that each hold a grant 15 s). (end, busy answers)"""
    rng = random.Random(seed)
    ready, coming_back, ends = GRANTS, [], []
    now, accepted, busy, last = 0.0, 0, 0, 0.0
    while accepted < GRANTS:
        tapered = end_rate is not None and accepted >= GRANTS - slow_last
        now += offer_gap(rng, end_rate if tapered else rate, jitter)
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


def outstanding_after(age, known_at):
    """The chance that a create is still outstanding at `age` s, given that it was at
    `known_at` s (provisioning uniform in 1 to 6 s)."""
    low = max(1.0, known_at)
    if age <= low:
        return 1.0
    return max(0.0, (6.0 - age) / (6.0 - low))


def makespan_knowing(bound, list_every=None, busy_backoff=15.0, tick=0.05, seed=1):
    """The 600 grants, offered whenever the expected outstanding count is below `bound`:
    from every submit and its 3 s poll (`list_every` None), or from a list of the
    in-progress creates every `list_every` s. (end, busy answers, lists)."""
    rng = random.Random(seed)
    ready, coming_back, ends = GRANTS, [], []
    now, accepted, busy, last, lists, next_list = 0.0, 0, 0, 0.0, 0, 0.0
    known = []  # (submitted at, ends at, age at which it was last known outstanding)
    while accepted < GRANTS:
        now += tick
        while coming_back and coming_back[0] <= now:
            heapq.heappop(coming_back)
            ready += 1
        if list_every is None:
            # The poll 3 s after the submit tells whether it has ended.
            known = [(at, end, 3.0 if now - at >= 3.0 else 0.0) for at, end, _ in known
                     if not (now - at >= 3.0 and end <= at + 3.0)]
        elif now >= next_list:
            lists += 1
            next_list = now + list_every
            known = [(at, end, now - at) for at, end, _ in known if end > now]
        expected = sum(outstanding_after(now - at, seen) for at, _, seen in known)
        while ready and expected < bound:
            ready -= 1
            provisioning = start(ends, now, rng)
            if provisioning is None:
                busy += 1
                heapq.heappush(coming_back, now + busy_backoff)
                break
            accepted += 1
            expected += 1
            known.append((now, now + provisioning, 0.0))
            last = max(last, now + seen_done(provisioning, True))
    return last, busy, lists


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
    print()
    print("| the pacer knows | offers while fewer expected outstanding than |"
          " 600 grants end at | busy answers | list calls |")
    print("|---|---|---|---|---|")
    for list_every, bounds in ((None, (11, 12, 13)), (0.5, (12, 13)), (1.0, (12, 13)),
                               (2.0, (12, 13))):
        knows = ("every submit and its 3 s poll" if list_every is None
                 else f"the in-progress creates, listed every {list_every} s")
        for bound in bounds:
            runs = [makespan_knowing(bound, list_every, seed=seed) for seed in range(SEEDS)]
            end, busy, lists = (statistics.mean(r[i] for r in runs) for i in range(3))
            print(f"| {knows} | {bound} | {end:.0f} s | {busy:.0f} | {lists:.0f} |")
    print()
    print("| offered creates/s | for the last grants | the last | 600 grants end at |"
          " busy answers |")
    print("|---|---|---|---|---|")
    for rate, end_rate, last in ((4.2, 4.2, 0), (4.2, 3.0, 60), (4.6, 4.6, 0),
                                 (4.6, 3.0, 60), (5.0, 5.0, 0), (5.0, 3.0, 60),
                                 (5.0, 3.0, 100)):
        end, busy = mean_makespan(rate, end_rate=end_rate, slow_last=last)
        print(f"| {rate:.1f} | {end_rate:.1f} | {last} | {end:.0f} s | {busy:.0f} |")
