"""Where a benchmark run's time went, from its worker logs (target/local-stack/bench,
written by the last `scripts/bench`), for BENCHMARKS.md: creates accepted and failed (in
the default runs every failure is a busy answer) in each 10 s of the run, how many
failures and pacer deferrals the grants met, and the history of the requests that
finished last.

    python3 scripts/bench_timeline.py [LOG_DIR] [LAST]
"""

import collections
import datetime
import glob
import json
import os
import sys

DEFAULT_DIR = os.path.join(os.path.dirname(__file__), "..", "target", "local-stack", "bench")


def events(log_dir):
    """(seconds since the first event, what) per correlation id."""
    by_request, first = collections.defaultdict(list), None
    for path in glob.glob(os.path.join(log_dir, "*.log")):
        with open(path) as log:
            for line in log:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                fields, span = entry.get("fields", {}), entry.get("span", {})
                message = fields.get("message")
                if not message or "correlation_id" not in span:
                    continue
                at = datetime.datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
                at = at.timestamp()
                first = at if first is None else min(first, at)
                if message == "re-enqueued":
                    what = f"{span.get('step')}->{fields.get('next_step')}({fields.get('delay_seconds')}s)"
                elif message.startswith("deferred by the pacer"):
                    what = "deferred"
                elif message == "call failed":
                    what = "failed"
                else:
                    what = message
                by_request[span["correlation_id"]].append((at, what))
    return {
        request: sorted((at - first, what) for at, what in history)
        for request, history in by_request.items()
    }


def per_10s(times):
    counts = collections.Counter(int(at // 10) for at in times)
    return [counts[i] for i in range(max(counts, default=-1) + 1)]


def main():
    log_dir = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_DIR
    last = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    history = events(log_dir)
    grants = {r: h for r, h in history.items() if r.startswith("GRANT")}
    accepted = [at for h in grants.values() for at, what in h if what.startswith("submit->poll")]
    failed = [at for h in grants.values() for at, what in h if what == "failed"]
    print("creates accepted per 10 s:", per_10s(accepted))
    print("creates that failed per 10 s:", per_10s(failed))
    print("grants by failed attempts:", sorted(collections.Counter(
        sum(what == "failed" for _, what in h) for h in grants.values()).items()))
    print("grants by deferrals:", sorted(collections.Counter(
        sum(what == "deferred" for _, what in h) for h in grants.values()).items()))
    print(f"the {last} requests that finished last:")
    for request, h in sorted(history.items(), key=lambda item: item[1][-1][0])[-last:]:
        print(f"  {h[-1][0]:6.1f} s {request}: " + ", ".join(f"{at:.0f} {what}" for at, what in h))


if __name__ == "__main__":
    main()
