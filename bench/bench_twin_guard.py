"""The AWS twin under a stranger's load: what the owner's calls cost while another local user
tries to exhaust the twin, measured against the same calls on the quiet twin in the same run.

Cases (each against a fresh twin):
1. quiet: the owner's signed ListTrainingJobs, N calls on one client;
2. connections: 1,010 connections that trickle one header byte every second (what once took
   every slot), the owner's calls meanwhile;
3. bodies: 60 connections each announcing 6 MB - 1 byte and sending it unsigned;
4. slow sender: one connection trickling a byte every 0.5 s: how long the twin holds it.

For each: the owner's median and worst call, the twin process's RSS and thread count (the twin
runs as `sagetwin aws` in its own process, so the attackers' buffers are not counted), and for
(4) the seconds until the twin let go. Usage: python bench/bench_twin_guard.py [--calls 50]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("SAGETWIN_HOME", tempfile.mkdtemp(prefix="bench-twin-guard-"))

import psutil  # noqa: E402


class TwinProcess:
    """`sagetwin aws` in its own process, as a person runs it; ``env`` holds its exports."""

    def __init__(self) -> None:
        import signal
        import subprocess

        self.proc = subprocess.Popen([sys.executable, "-m", "sagetwin.cli", "aws", "--no-persist"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.env: dict[str, str] = {}
        while "PYTHONPATH" not in self.env:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit("sagetwin aws did not start")
            if line.startswith("export "):
                name, _, value = line[len("export "):].rstrip("\n").partition("=")
                self.env[name] = value.strip("'\"")
        self.url = self.env["AWS_ENDPOINT_URL"]
        self.port = int(self.url.rsplit(":", 1)[1])

    def client(self, service: str, **config):  # noqa: ANN201
        """A boto3 client with the credentials this twin handed out (its exports)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session(region_name="us-east-1", aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                                     aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
                                     aws_session_token=self.env["AWS_SESSION_TOKEN"]).client(
            service, endpoint_url=self.url, config=Config(**config) if config else None)

    def footprint(self) -> tuple[float, int]:
        me = psutil.Process(self.proc.pid)
        return me.memory_info().rss / 1e6, me.num_threads()

    def __enter__(self) -> TwinProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)


def owner_client(twin: TwinProcess):  # noqa: ANN201
    return twin.client("sagemaker", retries={"max_attempts": 1}, read_timeout=60)


def owner_calls(twin: TwinProcess, calls: int) -> list[float]:
    client = owner_client(twin)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        client.list_training_jobs()
        times.append(time.perf_counter() - started)
    return times


def trickle(conns: list[socket.socket], stop: threading.Event, interval: float) -> None:
    while not stop.is_set():
        for conn in list(conns):
            try:
                conn.send(b"P")
            except OSError:
                conns.remove(conn)
        stop.wait(interval)


def case(name: str, calls: int, attack) -> dict:  # noqa: ANN001
    with TwinProcess() as twin:
        owner_calls(twin, 5)  # warm
        rss0, threads0 = twin.footprint()
        stop = threading.Event()
        held = attack(twin, stop) if attack else None
        time.sleep(1.0)
        times = owner_calls(twin, calls)
        rss1, threads1 = twin.footprint()
        stop.set()
        extra = held() if callable(held) else {}
    return {"case": name, "median_ms": statistics.median(times) * 1e3, "worst_ms": max(times) * 1e3,
            "rss_mb": (rss0, rss1), "threads": (threads0, threads1), **extra}


def connections(twin: TwinProcess, stop: threading.Event):  # noqa: ANN201
    conns = []
    for _ in range(1010):
        conn = socket.create_connection(("127.0.0.1", twin.port), timeout=5)
        conn.send(b"P")
        conns.append(conn)
    threading.Thread(target=trickle, args=(conns, stop, 1.0), daemon=True).start()

    def result() -> dict:
        open_now = [c for c in psutil.Process(twin.proc.pid).net_connections("tcp")
                    if c.laddr and c.laddr.port == twin.port and c.status == "ESTABLISHED"]
        for conn in conns:
            conn.close()
        return {"twin_side_connections_open": len(open_now)}
    return result


def bodies(twin: TwinProcess, stop: threading.Event):  # noqa: ANN201
    size = 6 * 1024 * 1024 - 1
    refused = []

    def one() -> None:
        try:
            with socket.create_connection(("127.0.0.1", twin.port), timeout=10) as conn:
                conn.sendall(f"POST /endpoints/x/invocations HTTP/1.1\r\nHost: 127.0.0.1:{twin.port}\r\n"
                             f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n".encode())
                refused.append(conn.recv(64).split(b" ")[1])
                conn.sendall(b"x" * size)
        except OSError:
            pass
    threads = [threading.Thread(target=one, daemon=True) for _ in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return lambda: {"answers": sorted(set(a.decode() for a in refused)), "answered": len(refused)}


def slow_sender(twin: TwinProcess, stop: threading.Event):  # noqa: ANN201
    conn = socket.create_connection(("127.0.0.1", twin.port), timeout=2)
    started = time.monotonic()
    closed: list[float] = []

    def drip() -> None:
        for byte in b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n" * 40:
            try:
                conn.send(bytes([byte]))
                conn.settimeout(0.5)
                if conn.recv(1) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        closed.append(time.monotonic() - started)
    worker = threading.Thread(target=drip, daemon=True)
    worker.start()

    def result() -> dict:
        worker.join(30)
        return {"held_s": round(closed[0], 1) if closed else "still held after 30 s"}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    rows = [case("quiet", args.calls, None), case("1,010 trickling connections", args.calls, connections),
            case("60 unsigned 6 MB bodies", args.calls, bodies), case("a slow sender", args.calls, slow_sender)]
    quiet = rows[0]["median_ms"]
    print("| case | owner median (ms) | ratio to quiet | owner worst (ms) | RSS before → after (MB) | threads "
          "| other |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        other = {k: v for k, v in row.items() if k not in ("case", "median_ms", "worst_ms", "rss_mb", "threads")}
        print(f"| {row['case']} | {row['median_ms']:.1f} | {row['median_ms'] / quiet:.2f} | {row['worst_ms']:.1f} | "
              f"{row['rss_mb'][0]:.0f} → {row['rss_mb'][1]:.0f} | {row['threads'][0]} → {row['threads'][1]} | "
              f"{other or ''} |")


if __name__ == "__main__":
    main()
