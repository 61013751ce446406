"""Local invoke check: `cargo lambda watch --only-lambda-apis` serves the Lambda runtime
and invoke APIs on loopback, the function (the debug build the tests run) is started here
against its runtime API, and `cargo lambda invoke --data-file` sends it every file in
events/. The function's environment points SQS and DynamoDB (the
ledger table, created here) at moto's server and Identity Center and Service Catalog at
idc-sim, this workspace's simulator, both on 127.0.0.1.

idc-sim is seeded with the instance, permission sets, principals and portfolio that
events/ refers to, at its default knobs (the portfolio list lags 2 s behind a change): operations stay IN_PROGRESS for a few seconds, so most records
end this run with a poll re-enqueued, which is all the check needs (events/poll.json
polls an operation idc-sim never saw, submitted long ago: it is dead-lettered timed-out).

Each response must have an empty batchItemFailures, and each record's next step must be
stored: with the outcome queue configured, every record leaves one new message on the
work queue (a re-enqueued step) or the outcome queue (its outcome; a dead-lettered
request also leaves its dead letter; a grant with notAfter that succeeded also leaves its
expiry step on the work queue). idc-sim must have seen the function's calls.

Run by scripts/check-deploy with .venv-deploy's python (it needs boto3, and its bin first
on PATH for `cargo lambda`); moto's server comes from .venv (scripts/bootstrap).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
MOTO = ROOT / ".venv" / "bin" / "moto_server"
REGION = "us-east-1"
FUNCTION_TIMEOUT_SECONDS = 60  # template.yaml: Timeout: 60
INVOKE_TIMEOUT = 180

# What events/ refers to (idc-sim/src/model.rs, Seed).
SEED = {
    "instances": ["arn:aws:sso:::instance/ssoins-722326ba6a8a6d40"],
    "permissionSets": [
        "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b",
        "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-9f8e7d6c5b4a3f2e",
    ],
    "principals": [
        "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10",  # a user
        "9067a1b2c3-7d1e2f3a-4b5c-4d6e-8f70-0a1b2c3d4e5f",  # a group
    ],
    "assignments": [],
    # events/associate.json, disassociate.json and mixed-batch.json change this portfolio.
    "portfolios": [
        {
            "portfolioId": "port-abcdefghijklm",
            "principals": [
                {"principalArn": "arn:aws:iam::111122223333:role/TeamA-dev", "principalType": "IAM"},
                {"principalArn": "arn:aws:iam:::role/Team*", "principalType": "IAM_PATTERN"},
            ],
        }
    ],
}

LOCAL_ENV = {
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}
# Inherited settings that could send a call anywhere but the two local servers.
DROPPED_ENV = (
    "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


def log(message):
    print(f"check-local-invoke: {message}", file=sys.stderr, flush=True)


def tail(path, lines=60):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_server(name, argv, ready, logfile, seconds=60):
    """Starts a loopback server in a session of its own and returns (process, port) once
    its output matches `ready`, a pattern whose group 1 is the port."""
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=open(logfile, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = re.search(ready, Path(logfile).read_text(errors="replace"))
        if found:
            return proc, int(found.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    stop(proc)
    raise SystemExit(f"{name} did not start:\n" + tail(logfile))


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


def queue_count(sqs, url):
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes.get(name, 0)) for name in names)


def process_start(pid):
    """The process's start time (clock ticks since boot), or None once it is gone; with
    the pid it names one process, even if the pid is later reused."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def descendants(pid):
    """(pid, start time) of every process below `pid`."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append((child, process_start(child)))
            todo.append(child)
    return found


def peak_rss_kib(pid):
    """VmHWM (peak resident memory) of a running process."""
    try:
        found = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    except OSError:
        return None
    return int(found.group(1)) if found else None


def stop(proc):
    """Stops a process started here with everything below it: SIGTERM to its process
    group (`cargo lambda watch` stops its function on SIGTERM), SIGKILL after 15 s, then
    SIGKILL to any descendant still running in another session."""
    if proc is None or proc.poll() is not None:
        return
    below = descendants(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for pid, started in below:
        if started is not None and process_start(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def build_test_binaries(env):
    """Builds what `cargo test --workspace` builds, idc-sim and the worker among it. After
    scripts/test this finds everything fresh: a `cargo build` of either binary would
    resolve their dependencies' features without the dev-dependencies, and rebuild the
    SDK crates (3 of this check's 4 minutes in CI)."""
    subprocess.run(
        ["cargo", "test", "--locked", "--quiet", "--workspace", "--no-run"],
        cwd=ROOT, env=env, check=True,
    )


def main():
    events = sorted((ROOT / "events").glob("*.json"))
    if not events:
        raise SystemExit("no events/*.json")
    workdir = Path(tempfile.mkdtemp(prefix="check-local-invoke."))
    moto = sim = watch = function = None
    passed_all = False
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
        for name in DROPPED_ENV:
            env.pop(name, None)
        env.update(LOCAL_ENV)

        # Built first, so that a slow build (or a target directory locked by another
        # build) does not count against an invoke.
        log("building idc-sim and the function (debug, as the tests build them)")
        build_test_binaries(env)

        moto, moto_port = start_server(
            "moto_server",
            [str(MOTO), "-H", "127.0.0.1", "-p", "0"],
            r"Running on http://127\.0\.0\.1:(\d+)",
            workdir / "moto.log",
        )
        moto_url = f"http://127.0.0.1:{moto_port}"
        (workdir / "seed.json").write_text(json.dumps(SEED))
        sim, sim_port = start_server(
            "idc-sim",
            [str(TARGET / "debug" / "idc-sim"), "--port", "0", "--seed", "1",
             "--seed-file", str(workdir / "seed.json")],
            r"idc-sim listening on http://127\.0\.0\.1:(\d+)",
            workdir / "idc-sim.log",
        )
        sim_url = f"http://127.0.0.1:{sim_port}"
        log(f"moto (SQS, DynamoDB) on {moto_url}, idc-sim (Identity Center, Service Catalog) on {sim_url}")

        sqs = boto3.client(
            "sqs",
            endpoint_url=moto_url,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"max_attempts": 2}),
        )
        queues = {
            name: sqs.create_queue(QueueName=f"assignment-{name}")["QueueUrl"]
            for name in ("work", "dead-letter", "outcomes")
        }
        # The ledger, keyed as template.yaml's LedgerTable (moto creates it ACTIVE).
        ledger_table = "assignment-ledger"
        boto3.client(
            "dynamodb",
            endpoint_url=moto_url,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"max_attempts": 2}),
        ).create_table(
            TableName=ledger_table,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )

        # The function's environment.
        env.update(
            {
                "AWS_ENDPOINT_URL": moto_url,  # any other service: loopback too
                "AWS_ENDPOINT_URL_SQS": moto_url,
                "AWS_ENDPOINT_URL_DYNAMODB": moto_url,
                "AWS_ENDPOINT_URL_SSO_ADMIN": sim_url,
                "AWS_ENDPOINT_URL_SERVICE_CATALOG": sim_url,
                "WORK_QUEUE_URL": queues["work"],
                "DEAD_LETTER_QUEUE_URL": queues["dead-letter"],
                "OUTCOME_QUEUE_URL": queues["outcomes"],
                "LEDGER_TABLE": ledger_table,
                "BACKOFF_BASE_SECONDS": "1",
                "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
            }
        )

        # The Lambda control plane on one loopback port: the runtime API for the function
        # and the invoke API for `cargo lambda invoke`. With --only-lambda-apis it builds
        # and starts nothing; the function, started below as Lambda starts it, polls it
        # for the invocations (with a deadline header of 600000, a duration where Lambda
        # sends a Unix time, which the handler ignores as already past).
        port = free_port()
        watch_log = workdir / "watch.log"
        watch = subprocess.Popen(
            [
                "cargo", "lambda", "watch", "--only-lambda-apis",
                "--invoke-address", "127.0.0.1", "--invoke-port", str(port),
                "--timeout", str(FUNCTION_TIMEOUT_SECONDS),
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=open(watch_log, "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(port, watch, 120, watch_log)
        log(f"cargo lambda watch on 127.0.0.1:{port}")
        # The variables `cargo lambda watch --only-lambda-apis` asks the function to have
        # (it prints them); "_" is the function `cargo lambda invoke` names by default.
        function_log = workdir / "function.log"
        function = subprocess.Popen(
            [str(TARGET / "debug" / "assignment-worker")],
            cwd=ROOT,
            env={
                **env,
                "AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{port}/.rt",
                "AWS_LAMBDA_FUNCTION_NAME": "_",
                "AWS_LAMBDA_FUNCTION_VERSION": "1",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",  # template.yaml: MemorySize
            },
            stdin=subprocess.DEVNULL,
            stdout=open(function_log, "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        failures = []
        rows = []
        for event in events:
            if function.poll() is not None:
                failures.append(f"the function exited ({function.returncode}) before {event.name}")
                break
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
                timeout=INVOKE_TIMEOUT,
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
            if response is not None and response.get("batchItemFailures") != []:
                problems.append(f"batchItemFailures: {response.get('batchItemFailures')!r}")
            # Each record's next step is stored: a re-enqueued step on the work queue, or
            # an outcome event (a dead-lettered request has its dead letter as well; a
            # grant with notAfter that succeeded has its expiry step as well).
            stored = delta["work"] + delta["outcomes"]
            if not records <= stored <= 2 * records or delta["dead-letter"] > delta["outcomes"]:
                problems.append(f"{records} records but stored {delta}")
            rows.append((event.name, records, response, delta, seconds, problems))
            failures.extend(f"{event.name}: {p}" for p in problems)

        print(f"{'event':<20} {'records':>7} {'failures':>8} {'work':>5} {'dlq':>4} {'outcome':>7} {'seconds':>7}  result")
        for name, records, response, delta, seconds, problems in rows:
            listed = "-" if response is None else len(response.get("batchItemFailures") or [])
            print(
                f"{name:<20} {records:>7} {listed:>8} {delta['work']:>5} {delta['dead-letter']:>4} "
                f"{delta['outcomes']:>7} {seconds:>7.1f}  {'ok' if not problems else 'FAILED'}"
            )

        # The requests reached the simulator, not some other endpoint.
        with urllib.request.urlopen(f"{sim_url}/_sim/state", timeout=10) as answer:
            calls = json.load(answer)["counters"]["calls"]
        print(f"idc-sim saw {sum(calls.values())} calls: {json.dumps(calls, sort_keys=True)}")
        for operation in ("CreateAccountAssignment", "AssociatePrincipalWithPortfolio",
                          "DisassociatePrincipalFromPortfolio", "ListPrincipalsForPortfolio"):
            if not calls.get(operation):
                failures.append(f"idc-sim saw no {operation} call")

        if function.poll() is not None:
            failures.append(f"the function exited ({function.returncode}) before the last invoke was checked")
        elif peak_rss_kib(function.pid):
            print(f"function process peak RSS (VmHWM, x86_64 debug build): {peak_rss_kib(function.pid)} KiB")

        passed = sum(1 for *_, problems in rows if not problems)
        print(f"{passed} of {len(rows)} event files passed")
        if failures:
            print("\n".join(failures), file=sys.stderr)
            print("--- cargo lambda watch log (tail) ---\n" + tail(watch_log), file=sys.stderr)
            print("--- function log (tail) ---\n" + tail(function_log), file=sys.stderr)
            return 1
        passed_all = True
        return 0
    finally:
        stop(function)
        stop(watch)
        stop(sim)
        stop(moto)
        if passed_all:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # in order with the log lines on stderr
    # A SIGTERM (e.g. CI cancelling the job) unwinds through main's `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
