"""A network for image builds that reaches the package index and nothing else.

Building needs pip's index and Debian's mirror. ``--network host`` would also give the build the
machine's own services on 127.0.0.1 (a twin, a database, a metadata endpoint). Instead each build
gets its own internal Docker network (no route out) and a proxy on that network's gateway that
forwards only to the index hosts: HTTPS by ``CONNECT``, Debian's plain-HTTP mirror by absolute-URI
requests (one per connection, to the host that was checked). It refuses every other host, and
loopback and private addresses unless the person named that host and port themselves (a mirror in
``PIP_INDEX_URL``, or ``SAGETWIN_EGRESS_ALLOW=host[:port],…``). Where the gateway is not an
address of this machine (rootless Docker, a remote engine), ``SAGETWIN_BUILD_NETWORK=host``
builds with the host's network, as before, by the person's choice.
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
from sagetwin.core.errors import SagetwinError

DEFAULT_HOSTS = ("pypi.org", "files.pythonhosted.org", "deb.debian.org", "security.debian.org")
INDEX_SETTINGS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS")
ALLOW_SETTING = "SAGETWIN_EGRESS_ALLOW"  # more hosts, comma-separated host[:port]: a mirror, a proxy of the index
NETWORK_SETTING = "SAGETWIN_BUILD_NETWORK"  # "host": the person's choice where the proxy cannot work
WEB_PORTS = frozenset({80, 443})
# Never the package index, whatever ``ipaddress`` of this Python knows (its tables grew across 3.10-3.13).
INTERNAL = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
    "::/96",  # IPv4-compatible (deprecated; ::7f00:1 is 127.0.0.1 to a stack that still routes them), :: and ::1
    "::ffff:0:0:0/96",  # IPv4-translated (SIIT): a translator's view of an IPv4 host
    "64:ff9b:1::/48",  # local-use NAT64: the network's own translator, prefix length unknown, so not decodable
    "2001::/32",  # Teredo: tunnels through a NAT to whatever its client part names; no index lives there
    "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8")]
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64: the IPv4 address is the last 32 bits
Resolver = Callable[[str, int], list[str]]


def named_hosts(environ: dict[str, str] | os._Environ = os.environ) -> dict[str, frozenset[int]]:
    """Hosts the person named, each with the ports named for it: the index URLs pip is told to use
    (their port, else 80/443), and ``SAGETWIN_EGRESS_ALLOW`` entries ``host`` or ``host:port``."""
    hosts: dict[str, set[int]] = {}
    for entry in environ.get(ALLOW_SETTING, "").split(","):
        host, _, port = entry.strip().lower().rpartition(":") if ":" in entry else ("", "", "")
        host = host or entry.strip().lower()
        if host:
            hosts.setdefault(host, set()).update({int(port)} if port.isdigit() else WEB_PORTS)
    for name in INDEX_SETTINGS:
        for url in environ.get(name, "").split():
            parts = urlsplit(url)
            if parts.hostname and parts.scheme in ("http", "https"):
                try:
                    port = parts.port
                except ValueError:
                    continue
                hosts.setdefault(parts.hostname.lower(), set()).update({port} if port else WEB_PORTS)
    return {host: frozenset(ports) for host, ports in hosts.items()}


def internal(address: str) -> bool:
    """Whether ``address`` reaches this machine or its networks rather than the internet. IPv6 forms
    that carry an IPv4 address (mapped, well-known NAT64, 6to4) are judged by that address: on an
    IPv6-only network behind DNS64 the index itself resolves to ``64:ff9b::<its IPv4>``."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (
            ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64 else None)
        if embedded is not None:
            ip = embedded
    # not ``not ip.is_global``: it counts the documentation ranges as private, and on networks that
    # route the index through such an address (203.0.113.80 here) every build would be refused
    return any(ip in net for net in INTERNAL) or ip.is_multicast or ip.is_reserved or ip.is_link_local \
        or ip.is_loopback or ip.is_unspecified


def system_resolver(host: str, port: int) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


class IndexProxy(socketserver.ThreadingTCPServer):
    """Forwards to the allowed hosts only; every refusal is an HTTP 403 that says why."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, bind: str, named: dict[str, frozenset[int]], resolve: Resolver = system_resolver,
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
        if port not in self.named.get(host, WEB_PORTS):
            allowed = "/".join(map(str, sorted(self.named.get(host, WEB_PORTS))))
            return None, f"port {port} of {host}: only {allowed} (name another with {ALLOW_SETTING}={host}:{port})"
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
        try:
            if method == "CONNECT":
                host, _, text_port = target.rpartition(":")
                port, first = int(text_port) if text_port.isdigit() else 443, b""
            else:
                parts = urlsplit(target)
                if parts.scheme != "http" or not parts.hostname:
                    return _refuse(client, self.server, f"{method} {target[:80]}: send plain-HTTP requests as "
                                                        "absolute URIs and HTTPS through CONNECT")
                host, port = parts.hostname, parts.port or 80
                first = _one_request_to(head, host, port)
        except ValueError as exc:  # a port that is not one
            return _refuse(client, self.server, f"{target[:80]}: {exc}", status=b"400 Bad Request")
        if not 0 < port < 65536:
            return _refuse(client, self.server, f"{target[:80]}: no such port", status=b"400 Bad Request")
        address, why = self.server.destination(host, port)
        if address is None:
            return _refuse(client, self.server, why)
        try:
            upstream = socket.create_connection((address, port), timeout=30)
        except OSError as exc:
            return _refuse(client, self.server, f"{host}: {exc}", status=b"502 Bad Gateway")
        with upstream:
            if method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                upstream.sendall(first)
            _pipe(client, upstream)


def _one_request_to(head: bytes, host: str, port: int) -> bytes:
    """The request, with the Host it was checked for and ``Connection: close``: the upstream answers
    this one request, so a second one on the same connection (for another host behind the same
    CDN, say) never goes through unchecked."""
    lines = head.split(b"\r\n")
    kept = [line for line in lines[1:] if line and line.split(b":", 1)[0].strip().lower() not in (
        b"host", b"connection", b"proxy-connection", b"keep-alive")]
    authority = host if port == 80 else f"{host}:{port}"
    return b"\r\n".join([lines[0], f"Host: {authority}".encode(), *kept, b"Connection: close", b"", b""])


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
    """A fresh internal Docker network and the proxy on its gateway; yields the network's name and
    the proxy variables a build or container needs. Both are gone afterwards. A step that fails
    gets the proxy's refusals as a note: pip and apt show only "403"."""
    if os.environ.get(NETWORK_SETTING) == "host":
        yield "host", {}
        return
    name = f"sagetwin-build-{uuid.uuid4().hex[:8]}"
    docker("network", "create", "--internal", "--label", "org.sagetwin.build=1", name, check=True)
    try:
        gateway = docker("network", "inspect", name, "--format", "{{(index .IPAM.Config 0).Gateway}}",
                         check=True).stdout.strip()
        proxy = _bind(gateway)
        thread = threading.Thread(target=proxy.serve_forever, name="sagetwin-index-proxy", daemon=True)
        thread.start()
        try:
            env = {key: proxy.url for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
            yield name, {**env, "no_proxy": "", "NO_PROXY": ""}
        except Exception as exc:
            if proxy.refused:
                exc.add_note("sagetwin: the build network refused: " + "; ".join(dict.fromkeys(proxy.refused)))
            raise
        finally:
            proxy.shutdown()
            proxy.server_close()
    finally:
        docker("network", "rm", name)


def _bind(gateway: str) -> IndexProxy:
    try:
        return IndexProxy(gateway, named_hosts())
    except (OSError, ValueError) as exc:
        raise SagetwinError(
            f"the build network's gateway {gateway or '(none)'} is not an address of this machine ({exc}), so "
            "the proxy to the package index cannot listen there (rootless Docker, Docker Desktop or a remote "
            "DOCKER_HOST?).",
            f"set {NETWORK_SETTING}=host to build with the host's network instead, or build where the engine runs.",
        ) from exc
