"""What closing out other local users costs a server: each accepted connection's peer looked up
(``sagetwin.emulation.peers.from_owner``) against the same accept loop without the lookup, in the
same run, alternating rounds. A client opens a connection, sends one byte, reads one byte back
(the pattern of `curl` and `urllib`, a new connection per request).

Usage: python bench/bench_peer_check.py [--connections 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sagetwin.emulation.peers import from_owner  # noqa: E402


def serve(listener: socket.socket, count: int, check: bool) -> None:
    for _ in range(count):
        conn, _ = listener.accept()
        with conn:
            if check and not from_owner(conn):
                continue
            conn.recv(1)
            conn.sendall(b"y")


def round_trip_s(count: int, check: bool) -> float:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        server = threading.Thread(target=serve, args=(listener, count, check))
        server.start()
        started = time.perf_counter()
        for _ in range(count):
            with socket.create_connection(listener.getsockname()) as client:
                client.sendall(b"x")
                client.recv(1)
        elapsed = time.perf_counter() - started
        server.join()
    return elapsed / count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    without, with_check = [], []
    for _ in range(args.rounds):
        without.append(round_trip_s(args.connections, check=False))
        with_check.append(round_trip_s(args.connections, check=True))
    base, checked = statistics.median(without), statistics.median(with_check)
    print(f"new connection + 1-byte exchange, median of {args.rounds} rounds of {args.connections}:")
    print(f"  without the peer check: {base * 1e6:.1f} us")
    added = (checked - base) * 1e6
    print(f"  with the peer check:    {checked * 1e6:.1f} us  ({checked / base:.2f}x, +{added:.1f} us)")


if __name__ == "__main__":
    main()
