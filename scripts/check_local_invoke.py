"""Local invoke check: `cargo lambda watch` serves the Lambda runtime and invoke APIs on
loopback, the real function binary (debug build) runs against them and against moto's
server, and `cargo lambda invoke --data-file` sends it every file in events/.

cargo-lambda 1.9.2's emulator sends `Lambda-Runtime-Deadline-Ms: 600000` (a duration, not
the Unix-epoch milliseconds Lambda sends), which the handler reads as a deadline in 1970
and so starts no AWS call. The function therefore runs beside `cargo lambda watch
--only-lambda-apis`, behind a small loopback relay that replaces such a value with now +
the template's 60 s timeout; a real epoch value passes through untouched.

Each response must have an empty batchItemFailures, and each record's next step must be
stored: with the outcome queue configured, every record leaves exactly one new message on
the work queue (a re-enqueued step) or the outcome queue (its outcome; a dead-lettered
request also leaves its dead letter). Run by scripts/check-deploy with .venv-deploy's python (it needs boto3); moto's
server comes from .venv (scripts/bootstrap).

AWS_ENDPOINT_URL_SSO_ADMIN, when set, sends the Identity Center calls there instead of to
moto (for a simulator); SQS always goes to moto.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
MOTO = ROOT / ".venv" / "bin" / "moto_server"
REGION = "us-east-1"
FUNCTION_TIMEOUT_MS = 60_000  # template.yaml: Timeout: 60
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


class DeadlineRelay(BaseHTTPRequestHandler):
    """Forwards the function's runtime-API calls to `cargo lambda watch`, fixing the
    deadline header of each invocation (see the module comment)."""

    protocol_version = "HTTP/1.1"
    upstream_port = 0
    rewritten = 0

    def do_GET(self):
        self.forward()

    def do_POST(self):
        self.forward()

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else None

    def forward(self):
        body = self.read_body()
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in ("host", "connection", "transfer-encoding", "content-length")
        }
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            # `cargo lambda watch` stopped while the function waited for its next event.
            self.close_connection = True
            return
        finally:
            upstream.close()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() in ("content-length", "transfer-encoding", "connection", "date", "server"):
                continue
            if key.lower() == "lambda-runtime-deadline-ms" and int(value) < 10**12:
                value = str(int(time.time() * 1000) + FUNCTION_TIMEOUT_MS)
                DeadlineRelay.rewritten += 1
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def function_peak_rss_kib(pid):
    """VmHWM (peak resident memory) of the function process."""
    try:
        found = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    except OSError:
        return None
    return int(found.group(1)) if found else None


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
    moto = watch = function = None
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
        # Loopback only: no profile, no real credentials, SQS always on moto.
        for name in (
            "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ENDPOINT_URL_SQS", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        ):
            env.pop(name, None)
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

        # The Lambda control plane: runtime API for the function, invoke API for
        # `cargo lambda invoke`, on one loopback port.
        port = free_port()
        watch_log = workdir / "watch.log"
        watch = subprocess.Popen(
            [
                "cargo", "lambda", "watch", "--only-lambda-apis",
                "--invoke-address", "127.0.0.1", "--invoke-port", str(port),
                "--timeout", str(FUNCTION_TIMEOUT_MS // 1000),
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

        DeadlineRelay.upstream_port = port
        relay = ThreadingHTTPServer(("127.0.0.1", 0), DeadlineRelay)
        relay.daemon_threads = True
        threading.Thread(target=relay.serve_forever, daemon=True).start()

        log("building the function (debug)")
        subprocess.run(
            ["cargo", "build", "--locked", "--quiet", "--bin", "assignment-worker"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        binary = ROOT / "target" / "debug" / "assignment-worker"
        if os.environ.get("CARGO_TARGET_DIR"):
            binary = Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "assignment-worker"
        function_env = dict(env)
        function_env.update(
            {
                # What `cargo lambda watch` gives the functions it starts, with the
                # template's memory size.
                "AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{relay.server_address[1]}/.rt",
                "AWS_LAMBDA_FUNCTION_NAME": "_",
                "AWS_LAMBDA_FUNCTION_VERSION": "1",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            }
        )
        function_log = workdir / "function.log"
        function = subprocess.Popen(
            [str(binary)],
            cwd=ROOT,
            env=function_env,
            stdin=subprocess.DEVNULL,
            stdout=open(function_log, "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

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
            if response is not None:
                if response.get("batchItemFailures") != []:
                    problems.append(f"batchItemFailures: {response.get('batchItemFailures')!r}")
            # Each record's next step is stored: a re-enqueued step on the work queue, or
            # an outcome event (a dead-lettered request has its dead letter as well).
            if delta["work"] + delta["outcomes"] != records or delta["dead-letter"] > delta["outcomes"]:
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
        peak = function_peak_rss_kib(function.pid)
        if peak:
            print(f"function process peak RSS (VmHWM, x86_64 debug build): {peak} KiB")
        log(f"deadline headers rewritten by the relay: {DeadlineRelay.rewritten} of {len(rows)}")
        passed = len(rows) - len({f.split(':')[0] for f in failures})
        print(f"{passed} passed, {len(rows) - passed} failed")
        if failures:
            print(f"logs kept in {workdir}", file=sys.stderr)
            print("\n".join(failures), file=sys.stderr)
            print("--- function log (tail) ---\n" + tail(function_log), file=sys.stderr)
            print("--- cargo lambda watch log (tail) ---\n" + tail(watch_log), file=sys.stderr)
            return 1
        shutil.rmtree(workdir, ignore_errors=True)
        return 0
    finally:
        stop(function)
        stop(watch)
        stop(moto)


if __name__ == "__main__":
    sys.exit(main())
