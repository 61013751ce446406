"""Cold-start cost of the release binary, as a whole process: exec, configuration,
clients, the TLS trust store, up to its first Runtime API request. A stand-in Runtime
API on 127.0.0.1 accepts that request's connection and closes it at once, so the
function exits right there; the wall time of the process is the figure.

Usage: python3 scripts/startup_time.py [BINARY] [RUNS]
Prints the median, the fastest and the slowest of RUNS runs (default 50), in ms.
"""

import os
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stand_in_runtime_api():
    """Accepts connections on a free loopback port and closes each at once."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)

    def serve():
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    return server


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/assignment-worker")
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    server = stand_in_runtime_api()
    address = "127.0.0.1:%d" % server.getsockname()[1]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": address,
        "AWS_LAMBDA_FUNCTION_NAME": "assignment-worker",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "WORK_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/work",
        "DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
        "LEDGER_TABLE": "assignment-ledger",
        "RUST_LOG": "off",
    }
    times = []
    for _ in range(runs + 3):
        started = time.perf_counter()
        result = subprocess.run([binary], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
        times.append((time.perf_counter() - started) * 1000)
        if result.returncode == 0:
            sys.exit("the function did not stop at the closed Runtime API; nothing was measured")
    server.close()
    times = sorted(times[3:])  # the first runs warm the page cache
    print("startup to first Runtime API request (%s, %d runs): median %.1f ms, fastest %.1f ms, slowest %.1f ms"
          % (os.path.basename(binary), runs, statistics.median(times), times[0], times[-1]))


if __name__ == "__main__":
    main()
