"""The 15 outstanding creates as a loss system, for BENCHMARKS.md: a pacer that cannot
see the slots offers creates at a rate, evenly spaced with +-50% jitter (three
processes' turns and batches make them no smoother); a create that finds all 15 in use
is answered busy and, for this model, dropped. Provisioning takes 1 to 6 s, uniform
(idc-sim's default). Prints, per offered rate, the creates started per second, the
share of the 15 slots' capacity that is (15 / 3.5 s = 4.29 a second), and the share of
attempts answered busy.

    python3 scripts/create_slots_model.py
"""

import heapq
import random

SLOTS = 15
MEAN_SECONDS = 3.5


def run(rate, seconds=20_000.0, jitter=0.5, seed=1):
    rng = random.Random(seed)
    ends, now, started, busy = [], 0.0, 0, 0
    while now < seconds:
        now += (1 + jitter * (2 * rng.random() - 1)) / rate
        while ends and ends[0] <= now:
            heapq.heappop(ends)
        if len(ends) < SLOTS:
            heapq.heappush(ends, now + rng.uniform(1.0, 6.0))
            started += 1
        else:
            busy += 1
    return started / seconds, busy / (started + busy)


if __name__ == "__main__":
    capacity = SLOTS / MEAN_SECONDS
    print("| offered creates/s | started/s | of the slots' capacity | answered busy |")
    print("|---|---|---|---|")
    for rate in (3.5, 3.8, 4.0, 4.3, 4.5, 5.0, 5.5, 6.0):
        started, busy = run(rate)
        print(f"| {rate:.1f} | {started:.2f} | {started / capacity:.0%} | {busy:.1%} |")
