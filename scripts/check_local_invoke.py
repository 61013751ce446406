"""Local invoke check: `cargo lambda watch` runs the real function binary against moto's
server on loopback; `cargo lambda invoke --data-file` sends it every file in events/.

Each response must have an empty batchItemFailures, and each record's next step must be
stored: with the outcome queue configured, every record leaves exactly one new message in
the work, dead-letter or outcome queue (a re-enqueued step, a dead letter or an outcome
event). Run by scripts/check-deploy with .venv-deploy's python (it needs boto3); moto's
server comes from .venv (scripts/bootstrap).

AWS_ENDPOINT_URL_SSO_ADMIN, when set, sends the Identity Center calls there instead of to
moto (for a simulator); SQS always goes to moto.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
MOTO = ROOT / ".venv" / "bin" / "moto_server"
REGION = "us-east-1"
# Generous: the first invoke waits for `cargo lambda watch` to compile the debug binary.
FIRST_INVOKE_TIMEOUT = 1800
INVOKE_TIMEOUT = 120

LOCAL_ENV = {
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def log(message):
    print(f"check-local-invoke: {message}", file=sys.stderr, flush=True)


def start_moto(workdir):
    err = open(workdir / "moto.log", "w")
    proc = subprocess.Popen(
        [str(MOTO), "-H", "127.0.0.1", "-p", "0"],
        stdout=subprocess.DEVNULL,
        stderr=err,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(
            r"Running on http://127\.0\.0\.1:(\d+)", (workdir / "moto.log").read_text()
        )
        if found:
            return proc, int(found.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise SystemExit("moto_server did not start:\n" + (workdir / "moto.log").read_text())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, seconds, logfile):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("cargo lambda watch exited:\n" + tail(logfile))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"cargo lambda watch did not listen on {port}:\n" + tail(logfile))


def tail(path, lines=60):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def queue_count(sqs, url):
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes.get(name, 0)) for name in names)


def function_peak_rss_kib(watch_pid):
    """VmHWM of the function process started under `cargo lambda watch`, if found."""
    peak = None
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if not re.search(r"^Name:\s+assignment-work", text, re.M):
            continue
        found = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
        if found:
            peak = max(peak or 0, int(found.group(1)))
    return peak


def stop(proc):
    if proc and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main():
    events = sorted((ROOT / "events").glob("*.json"))
    if not events:
        raise SystemExit("no events/*.json")
    workdir = Path(tempfile.mkdtemp(prefix="check-local-invoke."))
    moto = watch = None
    try:
        moto, moto_port = start_moto(workdir)
        endpoint = f"http://127.0.0.1:{moto_port}"
        log(f"moto on {endpoint}")
        sqs = boto3.client(
            "sqs",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"max_attempts": 2}),
        )
        queues = {
            name: sqs.create_queue(QueueName=f"assignment-{name}")["QueueUrl"]
            for name in ("work", "dead-letter", "outcomes")
        }

        env = dict(os.environ)
        env.update(LOCAL_ENV)
        env.update(
            {
                "AWS_ENDPOINT_URL": endpoint,
                "WORK_QUEUE_URL": queues["work"],
                "DEAD_LETTER_QUEUE_URL": queues["dead-letter"],
                "OUTCOME_QUEUE_URL": queues["outcomes"],
                "BACKOFF_BASE_SECONDS": "1",
                "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
            }
        )
        if os.environ.get("AWS_ENDPOINT_URL_SSO_ADMIN"):
            log(f"Identity Center calls go to {os.environ['AWS_ENDPOINT_URL_SSO_ADMIN']}")

        port = free_port()
        watch_log = workdir / "watch.log"
        watch = subprocess.Popen(
            [
                "cargo", "lambda", "watch", "--locked", "--ignore-changes",
                "--invoke-address", "127.0.0.1", "--invoke-port", str(port),
                "--bin", "assignment-worker",
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=open(watch_log, "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(port, watch, 600, watch_log)
        log(f"cargo lambda watch on 127.0.0.1:{port}")

        failures = []
        rows = []
        for index, event in enumerate(events):
            records = len(json.loads(event.read_text())["Records"])
            before = {name: queue_count(sqs, url) for name, url in queues.items()}
            started = time.monotonic()
            result = subprocess.run(
                [
                    "cargo", "lambda", "invoke",
                    "--invoke-address", "127.0.0.1", "--invoke-port", str(port),
                    "--data-file", str(event), "--output-format", "json",
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=FIRST_INVOKE_TIMEOUT if index == 0 else INVOKE_TIMEOUT,
            )
            seconds = time.monotonic() - started
            after = {name: queue_count(sqs, url) for name, url in queues.items()}
            delta = {name: after[name] - before[name] for name in queues}
            problems = []
            response = None
            if result.returncode != 0:
                problems.append(f"invoke exited {result.returncode}: {result.stderr.strip()[-2000:]}")
            else:
                try:
                    response = json.loads(result.stdout)
                except json.JSONDecodeError:
                    problems.append(f"response is not JSON: {result.stdout[:500]!r}")
            if response is not None:
                if response.get("batchItemFailures") != []:
                    problems.append(f"batchItemFailures: {response.get('batchItemFailures')!r}")
            if sum(delta.values()) != records:
                problems.append(
                    f"{records} records but {sum(delta.values())} messages stored ({delta})"
                )
            rows.append((event.name, records, response, delta, seconds, problems))
            failures.extend(f"{event.name}: {p}" for p in problems)

        print(f"{'event':<20} {'records':>7} {'failures':>8} {'work':>5} {'dlq':>4} {'outcome':>7} {'seconds':>7}  result")
        for name, records, response, delta, seconds, problems in rows:
            listed = "-" if response is None else len(response.get("batchItemFailures") or [])
            print(
                f"{name:<20} {records:>7} {listed:>8} {delta['work']:>5} {delta['dead-letter']:>4} "
                f"{delta['outcomes']:>7} {seconds:>7.1f}  {'ok' if not problems else 'FAILED'}"
            )
        peak = function_peak_rss_kib(watch.pid)
        if peak:
            print(f"function process peak RSS (VmHWM, debug build, x86_64): {peak} KiB")
        passed = len(rows) - len({f.split(':')[0] for f in failures})
        print(f"{passed} passed, {len(rows) - passed} failed")
        if failures:
            print("\n".join(failures), file=sys.stderr)
            print("--- cargo lambda watch log (tail) ---\n" + tail(watch_log), file=sys.stderr)
            return 1
        return 0
    finally:
        stop(watch)
        stop(moto)


if __name__ == "__main__":
    sys.exit(main())
