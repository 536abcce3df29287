"""A network for image builds that reaches the package index and nothing else.

Building needs pip's index and Debian's mirror. ``--network host`` would also give the build the
machine's own services on 127.0.0.1 (a twin, a database, a metadata endpoint). Instead each build
gets its own Docker network, which has no route out, and a proxy on that network's gateway that
forwards only to the index hosts: HTTPS by ``CONNECT``, Debian's plain-HTTP mirror by absolute-URI
requests. It refuses every other host, and refuses loopback and private addresses unless the person
named that host themselves (a mirror in ``PIP_INDEX_URL`` or ``SAGETWIN_EGRESS_ALLOW``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import select
import socket
import socketserver
import threading
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

from sagetwin.backends.local.docker import docker

DEFAULT_HOSTS = ("pypi.org", "files.pythonhosted.org", "deb.debian.org", "security.debian.org")
INDEX_SETTINGS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")
ALLOW_SETTING = "SAGETWIN_EGRESS_ALLOW"  # more hosts, comma-separated: a mirror, a proxy of the index
INTERNAL = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.168.0.0/16", "::/128", "::1/128", "fc00::/7", "fe80::/10")]
Resolver = Callable[[str, int], list[str]]


def named_hosts(environ: dict[str, str] | os._Environ = os.environ) -> set[str]:
    """Hosts the person named: the index URLs pip is told to use, and ``SAGETWIN_EGRESS_ALLOW``."""
    hosts = {h.strip().lower() for h in environ.get(ALLOW_SETTING, "").split(",") if h.strip()}
    for name in INDEX_SETTINGS:
        for url in environ.get(name, "").split():
            if (host := urlsplit(url).hostname) and urlsplit(url).scheme in ("http", "https"):
                hosts.add(host.lower())
    return hosts


def internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in net for net in INTERNAL)


def system_resolver(host: str, port: int) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


class IndexProxy(socketserver.ThreadingTCPServer):
    """Forwards to the allowed hosts only; every refusal is an HTTP 403 that says why."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, bind: str, named: set[str], resolve: Resolver = system_resolver,
                 defaults: tuple[str, ...] = DEFAULT_HOSTS) -> None:
        self.named, self.defaults, self.resolve = named, {h.lower() for h in defaults}, resolve
        self.refused: list[str] = []
        super().__init__((bind, 0), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def destination(self, host: str, port: int) -> tuple[str | None, str]:
        """An address to connect to, or None and the reason for refusing."""
        host = host.lower().strip("[]")
        if host not in self.named and host not in self.defaults:
            return None, f"{host} is not the package index (allow it with {ALLOW_SETTING}={host})"
        if port not in (80, 443) and host not in self.named:
            return None, f"port {port} of {host}: only 80 and 443 are forwarded"
        try:
            addresses = self.resolve(host, port)
        except OSError as exc:
            return None, f"{host} does not resolve ({exc})"
        usable = [a for a in addresses if host in self.named or not internal(a)]
        if not usable:
            return None, f"{host} resolves to an internal address ({', '.join(addresses)})"
        return usable[0], ""


class _Handler(socketserver.BaseRequestHandler):
    server: IndexProxy

    def handle(self) -> None:
        client = self.request
        client.settimeout(60)
        head = _read_head(client)
        if head is None:
            return
        method, target = (head.split(b"\r\n", 1)[0].decode("latin-1").split(" ") + ["", ""])[:2]
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            relay_first, default_port = b"", 443
        else:
            parts = urlsplit(target)
            host, port = parts.hostname or "", str(parts.port or "")
            relay_first, default_port = head, 80
            if parts.scheme != "http":
                return _refuse(client, self.server, f"{method} {target[:80]}: send plain-HTTP requests as "
                                                    "absolute URIs and HTTPS through CONNECT")
        address, why = self.server.destination(host, int(port) if port.isdigit() else default_port)
        if address is None:
            return _refuse(client, self.server, why)
        try:
            upstream = socket.create_connection((address, int(port) if port.isdigit() else default_port), timeout=30)
        except OSError as exc:
            return _refuse(client, self.server, f"{host}: {exc}", status=b"502 Bad Gateway")
        with upstream:
            if method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                upstream.sendall(relay_first)
            _pipe(client, upstream)


def _read_head(sock: socket.socket, limit: int = 65536) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(4096)
        except OSError:
            return None
        if not chunk or len(data) > limit:
            return None
        data += chunk
    return data


def _refuse(client: socket.socket, server: IndexProxy, why: str, status: bytes = b"403 Forbidden") -> None:
    server.refused.append(why)
    body = f"sagetwin build network: {why}\n".encode()
    with contextlib.suppress(OSError):
        client.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                       b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Bytes both ways until either side closes or both are idle for five minutes."""
    peers = {a: b, b: a}
    while True:
        ready, _, _ = select.select(list(peers), [], [], 300)
        if not ready:
            return
        for sock in ready:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            try:
                peers[sock].sendall(chunk)
            except OSError:
                return


@contextlib.contextmanager
def index_only_network() -> Iterator[tuple[str, dict[str, str]]]:
    """A fresh Docker network and the proxy on its gateway; yields the network's name and the
    proxy variables a build or container needs. Both are gone afterwards."""
    name = f"sagetwin-build-{uuid.uuid4().hex[:8]}"
    docker("network", "create", "--label", "org.sagetwin.build=1", name, check=True)
    try:
        gateway = docker("network", "inspect", name, "--format", "{{(index .IPAM.Config 0).Gateway}}",
                         check=True).stdout.strip()
        proxy = IndexProxy(gateway, named_hosts())
        thread = threading.Thread(target=proxy.serve_forever, name="sagetwin-index-proxy", daemon=True)
        thread.start()
        try:
            env = {key: proxy.url for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
            yield name, {**env, "no_proxy": "", "NO_PROXY": ""}
        finally:
            proxy.shutdown()
            proxy.server_close()
    finally:
        docker("network", "rm", name)
