"""Who is on the other end of a loopback TCP connection: the user owning the peer's socket, as the
kernel keeps it (asked through ``NETLINK_SOCK_DIAG``, as ``ss`` asks, ~20 µs; else read from
``/proc/net/tcp``), which no local user can forge. sagetwin's servers run code and models as the
person who started them, so a connection from another local user is closed before anything it
sends is read."""

from __future__ import annotations

import os
import socket
import struct

NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST = 4, 20, 1
NO_COOKIE = 0xFFFFFFFF
TCP_TIME_WAIT, TCP_LISTEN = 6, 10  # states in which the kernel names no owner


def _diag_uid(family: int, theirs: tuple[str, int], ours: tuple[str, int]) -> int | None:
    """One ``inet_diag`` lookup of the peer's socket by its exact four-tuple."""
    def address(host: str) -> bytes:
        return socket.inet_pton(family, host).ljust(16, b"\0")

    sockid = struct.pack("!HH16s16s", theirs[1], ours[1], address(theirs[0]), address(ours[0])) \
        + struct.pack("=III", 0, NO_COOKIE, NO_COOKIE)
    request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid
    header = struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as netlink:
        netlink.settimeout(1.0)
        netlink.sendto(header + request, (0, 0))
        answer = netlink.recv(65536)
    if struct.unpack_from("=H", answer, 4)[0] != SOCK_DIAG_BY_FAMILY:
        return None  # an error answer: no such socket here
    state = answer[17]  # nlmsghdr (16 bytes), then inet_diag_msg: family, state, ...
    uid, inode = struct.unpack_from("=II", answer, 16 + 4 + 48 + 12)  # idiag_uid, idiag_inode
    return _owner(state, uid, inode)



def _owner(state: int, uid: int, inode: int) -> int | None:
    """A peer already closed (TIME_WAIT) or a listener is reported as uid 0 with no inode by the
    kernel: that says nothing of who connected, so it is no one's (the check fails closed)."""
    if state in (TCP_TIME_WAIT, TCP_LISTEN) or inode == 0:
        return None
    return uid


def _proc_address(host: str, port: int, family: int) -> str:
    """An address as the kernel's table writes it: each 32-bit word in host byte order, in hex."""
    packed = socket.inet_pton(family, host)
    words = "".join(f"{struct.unpack('=I', packed[i:i + 4])[0]:08X}" for i in range(0, len(packed), 4))
    return f"{words}:{port:04X}"


def _table_uid(family: int, theirs: tuple[str, int], ours: tuple[str, int]) -> int | None:
    table = "/proc/net/tcp" if family == socket.AF_INET else "/proc/net/tcp6"
    wanted = (_proc_address(*theirs, family), _proc_address(*ours, family))
    with open(table, encoding="ascii") as lines:
        next(lines, None)
        for line in lines:
            fields = line.split()
            if (fields[1], fields[2]) == wanted:
                return _owner(int(fields[3], 16), int(fields[7]), int(fields[9]))
    return None


def peer_uid(sock: socket.socket) -> int | None:
    """The uid owning the other end of ``sock``; None when it is not in this network namespace
    (not loopback, or already gone)."""
    if sock.family == socket.AF_UNIX:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", creds)[1]
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        ours, theirs = sock.getsockname()[:2], sock.getpeername()[:2]
    except OSError:
        return None
    for lookup in (_diag_uid, _table_uid):
        try:
            return lookup(sock.family, theirs, ours)
        except Exception:  # no netlink here (another OS), an odd answer: the next way, then no one
            continue
    return None


def from_owner(sock: socket.socket) -> bool:
    """True when the peer runs as the user running this process (fails closed when unknown)."""
    return peer_uid(sock) == os.geteuid()
