"""The `process` endpoint under the two ways clients connect, and under abuse.

1. load, per connection pattern, N good requests at concurrency C (default 1000 at 16), with the
   model server's own CPU time per request (less sensitive than req/s to what else the machine runs):
   - keep-alive: one persistent connection per client thread (the SDK's pool, bench_endpoints.py);
   - new connection: a new TCP connection per request, closed after the answer (curl style);
   - urllib: ``urllib.request.urlopen`` per request (sends ``Connection: close``);
   each pattern is run ``--rounds`` times, interleaved, so drift hits every pattern alike;
2. ``--abuse``: the model server's RSS and thread count (``/proc/<pid>/status``) before and while
   K connections (default 60) each declare a 6 MB body and send all of it but one byte; how long a
   normal client's /ping and /invocations take meanwhile; then how long a sender of one byte per
   second is held before the server lets it go (observed for at most ``--slow-max`` seconds).

Usage: python bench/bench_connections.py [--requests 1000] [--concurrency 16] [--rounds 2]
       [--abuse] [--slow-max 90] [--model-data PATH] [--json bench/results/connections.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import sagetwin  # noqa: E402
from sagetwin.core.progress import SilentReporter  # noqa: E402
from sagetwin.guide.data import prepare_datasets, resolve_model  # noqa: E402

TRAIN_SCRIPTS = REPO / "train_scripts"
GOOD_BODY = json.dumps({"inputs": "a wonderful, moving film"}).encode()
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
SIX_MB = 6 * 1024 * 1024


def keep_alive_client(host: str, port: int) -> Callable[[], bool]:
    """One connection per thread, kept for every request (made again after an error)."""
    local = threading.local()

    def call() -> bool:
        connection = getattr(local, "connection", None) or http.client.HTTPConnection(host, port, timeout=60)
        local.connection = connection
        try:
            connection.request("POST", "/invocations", body=GOOD_BODY, headers=HEADERS)
            answer = connection.getresponse()
            return answer.status == 200 and isinstance(json.loads(answer.read()), list)
        except Exception:
            connection.close()
            local.connection = None
            raise
    return call


def new_connection_client(host: str, port: int) -> Callable[[], bool]:
    """A new TCP connection per request, closed once the answer is read (curl's pattern)."""
    def call() -> bool:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        try:
            connection.request("POST", "/invocations", body=GOOD_BODY, headers=HEADERS)
            answer = connection.getresponse()
            return answer.status == 200 and isinstance(json.loads(answer.read()), list)
        finally:
            connection.close()
    return call


def urllib_client(host: str, port: int) -> Callable[[], bool]:
    """``urlopen`` per request: a new connection with ``Connection: close``."""
    url = f"http://{host}:{port}/invocations"

    def call() -> bool:
        request = urllib.request.Request(url, data=GOOD_BODY, headers=HEADERS, method="POST")
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status == 200 and isinstance(json.loads(answer.read()), list)
    return call


PATTERNS = {"keep-alive": keep_alive_client, "new connection": new_connection_client, "urllib": urllib_client}


def load(call: Callable[[], bool], requests: int, concurrency: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            started = time.perf_counter()
            try:
                ok, note = call(), "not a 200 with a JSON list"
            except Exception as exc:
                ok, note = False, f"{type(exc).__name__}: {exc}"
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if not ok:
                    errors.append(note[:200])

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {"req_per_s": round(requests / wall, 1), "p50_ms": round(statistics.median(ordered) * 1000, 1),
            "p99_ms": round(ordered[max(int(len(ordered) * 0.99) - 1, 0)] * 1000, 1), "errors": len(errors),
            "first_errors": errors[:3]}


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS (MB) and Threads of ``pid``."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss_mb": int(fields["VmRSS"].split()[0]) // 1024, "threads": int(fields["Threads"])}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (and its ended threads): the server's cost, whatever else runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_call(host: str, port: int, method: str) -> tuple[int | str, float]:
    started = time.perf_counter()
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        if method == "GET":
            connection.request("GET", "/ping")
        else:
            connection.request("POST", "/invocations", body=GOOD_BODY, headers=HEADERS)
        status: int | str = connection.getresponse().status
    except OSError as exc:
        status = type(exc).__name__
    finally:
        connection.close()
    return status, round((time.perf_counter() - started) * 1000, 1)


def origin_status(host: str, port: int) -> int:
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("POST", "/invocations", body=GOOD_BODY, headers={**HEADERS, "Origin": "http://a.example"})
        return connection.getresponse().status
    finally:
        connection.close()


def abuse(host: str, port: int, pid: int, holders: int, slow_max: float) -> dict:
    """Large partial bodies held open (sent from threads, at once), then a one-byte-a-second sender."""
    result: dict = {"before": proc_status(pid)}
    head = (f"POST /invocations HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {SIX_MB}\r\n\r\n").encode()
    body = memoryview(b"x" * (SIX_MB - 1))
    sockets = [socket.create_connection((host, port), timeout=10) for _ in range(holders)]
    stopped: list[str] = []

    def hold(sock: socket.socket) -> None:
        try:
            sock.sendall(head)
            sock.sendall(body)
        except OSError as exc:  # the server answered (503, 408) and closed before taking the body
            stopped.append(type(exc).__name__)

    threads = [threading.Thread(target=hold, args=(sock,), daemon=True) for sock in sockets]
    for thread in threads:
        thread.start()
    peak = {"rss_mb": 0, "threads": 0}
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:  # the highest the server reached while the bodies came
        status = proc_status(pid)
        peak = {key: max(peak[key], status[key]) for key in peak}
        time.sleep(0.1)
    result["holding_peak"] = {**peak, "connections": holders}
    result["ping_while_holding"] = timed_call(host, port, "GET")
    result["invocation_while_holding"] = timed_call(host, port, "POST")
    for thread in threads:
        thread.join(15)
    result["holding_peak"]["sends_stopped_by_server"] = len(stopped)
    for sock in sockets:
        sock.close()
    time.sleep(1.0)
    result["after_release"] = proc_status(pid)

    sock = socket.create_connection((host, port), timeout=5)
    started = time.monotonic()
    data = head.replace(f"Content-Length: {SIX_MB}".encode(), b"Content-Length: 100000")
    held, answer = slow_max, "still held"
    for byte in data + b"x" * 100000:
        try:
            sock.sendall(bytes([byte]))
            sock.settimeout(1.0)
            got = sock.recv(4096)
        except TimeoutError:
            got = None
        except OSError as exc:
            held, answer = time.monotonic() - started, f"closed ({type(exc).__name__})"
            break
        if got is not None:
            held = time.monotonic() - started
            answer = got.split(b"\r\n", 1)[0].decode("latin-1") if got else "closed without an answer"
            break
        if time.monotonic() - started > slow_max:
            break
    sock.close()
    result["slow_sender"] = {"held_s": round(held, 1), "answer": answer, "observed_for_at_most_s": slow_max}
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--abuse", action="store_true")
    parser.add_argument("--holders", type=int, default=60)
    parser.add_argument("--slow-max", type=float, default=90.0)
    parser.add_argument("--model-data", help="a model.tar.gz to serve (default: train the tiny model for 2 steps)")
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "connections.json"))
    args = parser.parse_args()
    model_data = args.model_data
    if model_data is None:
        model = resolve_model("tiny")
        channels = {**prepare_datasets("sample", model.tokenizer_source, train_size=64, test_size=32),
                    **model.channels()}
        job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="process",
                                      reporter=SilentReporter(),
                                      hyperparameters={"epochs": 1, "max_steps": 2,
                                                       "model_name": "/opt/ml/input/data/model"})
        model_data = job.fit(channels).model_data
    report: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "model_data": str(model_data),
                    "requests": args.requests, "concurrency": args.concurrency, "load": {}}
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="process", reporter=SilentReporter())
    with job.deploy(model_data=model_data) as predictor:
        endpoint = predictor.endpoint
        host, port = endpoint.host, endpoint.port
        for _ in range(20):
            endpoint.invoke(GOOD_BODY, "application/json", "application/json")
        report["origin_header_answered"] = origin_status(host, port)  # 403 where web pages are refused
        print(f"a request with an Origin header: HTTP {report['origin_header_answered']}", flush=True)
        for round_ in range(1, args.rounds + 1):
            for name, make in PATTERNS.items():
                cpu_before = cpu_seconds(endpoint.proc.pid)
                result = load(make(host, port), args.requests, args.concurrency)
                result["server_cpu_ms_per_req"] = round((cpu_seconds(endpoint.proc.pid) - cpu_before)
                                                        / args.requests * 1000, 2)
                report["load"].setdefault(name, []).append(result)
                print(f"round {round_} {name:15} {json.dumps(result)}", flush=True)
        if args.abuse:
            report["abuse"] = abuse(host, port, endpoint.proc.pid, args.holders, args.slow_max)
            print("abuse", json.dumps(report["abuse"], indent=2), flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
