"""Endpoints under load and under bad requests: the `process` endpoint and, where Docker runs,
the `local` endpoint (the DLC's toolkit on multi-model-server) serving the same model.tar.gz,
measured in the same run.

For each endpoint:
1. load: N good requests (default 1000) at concurrency C (default 16), one keep-alive connection
   per client thread, and again with a new connection per request (as urllib and curl do):
   errors, throughput, p50 and p99, the median of alternating rounds (both endpoints up at once);
2. bad requests, sent raw (a wrong Content-Length, none, chunked, unknown methods, not HTTP, a
   body over 6 MB, a body the model rejects, ...): the status of each answer and whether it
   is JSON;
3. afterwards, /ping must still answer 200.

The ratios compare `process` with `local` (throughput: process / local; p99: process / local), and the
local endpoint through its runtime front with the same load sent to the container's own port.

Usage: python bench/bench_endpoints.py [--requests 1000] [--concurrency 16] [--rounds 3] [--no-local]
       [--json bench/results/endpoints.json]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

from bench_connections import keep_alive_client, new_connection_client  # noqa: E402 - the same clients
from bench_connections import load as load_calls  # noqa: E402

import sagetwin  # noqa: E402
from sagetwin.core.progress import SilentReporter  # noqa: E402
from sagetwin.guide.data import prepare_datasets, resolve_model  # noqa: E402

TRAIN_SCRIPTS = REPO / "train_scripts"
GOOD_BODY = json.dumps({"inputs": "a wonderful, moving film"}).encode()
SIX_MB = 6 * 1024 * 1024

# (name, raw request bytes after the request line's host is filled in)
BAD_REQUESTS: list[tuple[str, bytes]] = [
    ("Content-Length: abc", b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                            b"Content-Length: abc\r\n\r\n{}"),
    ("Content-Length: -1", b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           b"Content-Length: -1\r\n\r\n{}"),
    ("Content-Length: 10^12", b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                              b"Content-Length: 1000000000000\r\n\r\n{}"),
    ("no Content-Length", b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          b"Connection: close\r\n\r\n"),
    ("Transfer-Encoding: chunked", b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                   b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   b"2\r\n{}\r\n0\r\n\r\n"),
    ("DELETE /invocations", b"DELETE /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"),
    ("BREW /pot", b"BREW /pot HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"),
    ("not HTTP", b"this is not http\r\n\r\n"),
    ("GET /nowhere", b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    ("a body the model rejects", b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: 8\r\n\r\n{\"a\": 1}"),
    ("not JSON", b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 9\r\n\r\n{not json"),
]


def oversized_request() -> bytes:
    body = b'{"inputs": "' + b"x" * (SIX_MB + 1 - 14) + b'"}'
    return (b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


def load(host: str, port: int, requests: int, concurrency: int, new_connection: bool = False) -> dict:
    """``requests`` good calls from ``concurrency`` threads, each on its own keep-alive connection,
    or (``new_connection``) on a new connection per request, as urllib, curl and many load tools do."""
    client = (new_connection_client if new_connection else keep_alive_client)(host, port)
    return {"requests": requests, "concurrency": concurrency, **load_calls(client, requests, concurrency)}


def send_raw(host: str, port: int, raw: bytes, timeout: float = 30.0) -> dict:
    """One raw request; the answer's status and whether its body is JSON."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            sock.sendall(raw)
        except OSError as exc:  # the server answered and closed before taking the whole body
            sent_all = f"send stopped: {type(exc).__name__}"
        else:
            sent_all = "sent"
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                data = b"".join(chunks)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), None)
                if length is not None and len(body) >= length:
                    break
        except (TimeoutError, OSError) as exc:
            return {"status": None, "json": False, "note": f"{sent_all}; no answer ({type(exc).__name__})"}
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n")[0].decode("latin-1") if head else ""
    try:
        status = int(status_line.split()[1])
    except (IndexError, ValueError):
        return {"status": None, "json": False, "note": f"{sent_all}; no status line ({status_line[:40]!r})"}
    try:
        json.loads(body)
        is_json = True
    except ValueError:
        is_json = False
    return {"status": status, "json": is_json, "note": sent_all}


def ping(host: str, port: int) -> int:
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status
    except OSError:
        return 0
    finally:
        connection.close()


PATTERNS = {"keep_alive": False, "new_connection": True}


def warm(endpoint) -> None:
    for _ in range(20):  # the first calls load lazily on some servers
        endpoint.invoke(GOOD_BODY, "application/json", "application/json")


def measure(endpoint, requests: int, concurrency: int, new_connection: bool) -> dict:
    return load(endpoint.host, endpoint.port, requests, concurrency, new_connection)


def bad_requests(endpoint) -> dict:
    host, port = endpoint.host, endpoint.port
    result: dict = {}
    front = getattr(endpoint, "front", None)
    if front is not None:  # a local endpoint: the same load on the container's own port, without the front
        result["load_container_direct"] = load("127.0.0.1", front.upstream.port, 1000, 16)
    bad = {name: send_raw(host, port, raw) for name, raw in BAD_REQUESTS}
    bad["6 MB + 1 byte"] = send_raw(host, port, oversized_request())
    result["bad_requests"] = bad
    result["ping_after"] = ping(host, port)
    result["good_call_after"] = endpoint.invoke(GOOD_BODY, "application/json", "application/json")[0][:80].decode()
    return result


def median_of(rounds: list[dict]) -> dict:
    """The median round by throughput, with every round's figures kept beside it."""
    ordered = sorted(rounds, key=lambda r: r["req_per_s"])
    return {**ordered[len(ordered) // 2], "rounds_req_per_s": [r["req_per_s"] for r in rounds],
            "rounds_p99_ms": [r["p99_ms"] for r in rounds],
            "errors_all_rounds": sum(r["errors"] for r in rounds)}


def deploy(backend: str, model_data: str):
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend=backend, reporter=SilentReporter())
    return job.deploy(model_data=model_data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-local", action="store_true", help="only the process endpoint (no Docker)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per endpoint and pattern")
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "endpoints.json"))
    args = parser.parse_args()
    model = resolve_model("tiny")
    channels = {**prepare_datasets("sample", model.tokenizer_source, train_size=64, test_size=32), **model.channels()}
    hyperparameters = {"epochs": 1, "max_steps": 2, "model_name": "/opt/ml/input/data/model"}
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="process", reporter=SilentReporter(),
                                  hyperparameters=hyperparameters)
    model_data = job.fit(channels).model_data
    report: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "model": "tiny BERT (trained 2 steps)"}
    backends = ["process"] if args.no_local else ["process", "local"]
    with contextlib.ExitStack() as stack:
        endpoints = {}
        for backend in backends:
            print(f"{backend}: deploying", flush=True)
            endpoints[backend] = stack.enter_context(deploy(backend, model_data)).endpoint
            warm(endpoints[backend])
        # rounds alternate the endpoints and the connection patterns: both see the same machine
        rounds: dict = {(b, p): [] for b in backends for p in PATTERNS}
        for number in range(args.rounds):
            for pattern, new_connection in PATTERNS.items():
                for backend in backends:
                    figures = measure(endpoints[backend], args.requests, args.concurrency, new_connection)
                    rounds[(backend, pattern)].append(figures)
                    print(f"round {number + 1} {backend:8} {pattern:15} {figures['req_per_s']:7.1f} req/s  "
                          f"p99 {figures['p99_ms']:6.1f} ms  errors {figures['errors']}", flush=True)
        for backend in backends:
            report[backend] = {f"load_{pattern}": median_of(rounds[(backend, pattern)]) for pattern in PATTERNS}
            report[backend]["load"] = report[backend]["load_keep_alive"]
            report[backend].update(bad_requests(endpoints[backend]))
            for name, answer in report[backend]["bad_requests"].items():
                print(f"  {backend} {name:28} {answer}")
            print(f"  {backend} /ping after: {report[backend]['ping_after']}", flush=True)
    if "local" in report:
        ratios = {}
        for pattern in PATTERNS:
            ours, theirs = report["process"][f"load_{pattern}"], report["local"][f"load_{pattern}"]
            ratios[f"{pattern}_throughput_process_over_local"] = round(ours["req_per_s"] / theirs["req_per_s"], 2)
            ratios[f"{pattern}_p99_process_over_local"] = round(ours["p99_ms"] / theirs["p99_ms"], 2)
        ratios["throughput_local_front_over_direct"] = round(
            report["local"]["load"]["req_per_s"] / report["local"]["load_container_direct"]["req_per_s"], 2)
        report["ratios"] = ratios
        print("ratios", json.dumps(ratios))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
