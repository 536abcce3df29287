"""Image builds reach the package index and nothing else (before: ``--network host``, which gave
the build every service on the machine's 127.0.0.1)."""

from __future__ import annotations

import contextlib
import http.server
import socket
import socketserver
import subprocess
import threading
from collections.abc import Iterator

import pytest

from sagetwin.backends.local import builder
from sagetwin.backends.local.egress import IndexProxy, index_only_network, internal, named_hosts
from sagetwin.core.progress import SilentReporter

ANSWER = b"index says hello"


class _Index(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        seen = f" host={self.headers['Host']} connection={self.headers['Connection']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(ANSWER + seen)))
        self.end_headers()
        self.wfile.write(ANSWER + seen)

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def index_on_loopback() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    with serving(server):
        yield server.server_address[1]


def ask(proxy: IndexProxy, request: bytes) -> bytes:
    with socket.create_connection(proxy.server_address[:2], timeout=10) as sock:
        sock.sendall(request)
        data, tunnelling = b"", False
        while chunk := sock.recv(65536):
            data += chunk
            if request.startswith(b"CONNECT") and not tunnelling and data.startswith(b"HTTP/1.1 200 "):
                tunnelling = True
                sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")  # through the tunnel
        return data


def resolver(table: dict[str, str]):
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(f"unknown host {host}")
        return [table[host]]
    return resolve


@pytest.fixture
def proxy(index_on_loopback: int) -> Iterator[IndexProxy]:
    """The named mirror lives on loopback, on the port named for it (allowed: the person named it);
    the default index host is made to resolve to loopback too (refused: a DNS answer must not open
    the machine)."""
    table = {"mirror.test": "127.0.0.1", "index.test": "127.0.0.1", "far.test": "203.0.113.9"}
    server = IndexProxy("127.0.0.1", {"mirror.test": frozenset({index_on_loopback})}, resolve=resolver(table),
                        defaults=("index.test", "far.test"))
    with serving(server):
        yield server


def test_a_named_host_is_reached_by_connect_and_by_plain_http(proxy: IndexProxy, index_on_loopback: int):
    tunnelled = ask(proxy, f"CONNECT mirror.test:{index_on_loopback} HTTP/1.1\r\n\r\n".encode())
    assert tunnelled.startswith(b"HTTP/1.1 200 Connection established") and ANSWER in tunnelled
    plain = ask(proxy, f"GET http://mirror.test:{index_on_loopback}/simple/ HTTP/1.1\r\nHost: elsewhere.test\r\n"
                       "Connection: keep-alive\r\n\r\n".encode())
    # the upstream gets the host that was checked, and one request per connection: a second
    # request on it (for another site behind the same CDN, say) cannot slip through unchecked
    assert plain.startswith(b"HTTP/1.0 200")
    assert plain.endswith(ANSWER + f" host=mirror.test:{index_on_loopback} connection=close".encode())


@pytest.mark.parametrize("request_line, why", [
    (b"CONNECT elsewhere.test:443", b"elsewhere.test is not the package index"),
    (b"CONNECT index.test:443", b"index.test resolves to an internal address (127.0.0.1)"),
    (b"CONNECT far.test:22", b"port 22 of far.test: only 80/443 (name another with SAGETWIN_EGRESS_ALLOW=far.test:22)"),
    (b"GET http://elsewhere.test/", b"elsewhere.test is not the package index"),
    (b"GET /relative", b"send plain-HTTP requests as absolute URIs"),
    (b"CONNECT 127.0.0.1:22", b"127.0.0.1 is not the package index"),
    (b"CONNECT mirror.test:22", b"port 22 of mirror.test: only "),  # a named host: only its named port
])
def test_everything_else_is_refused_with_the_reason(proxy: IndexProxy, request_line: bytes, why: bytes):
    answer = ask(proxy, request_line + b" HTTP/1.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 403 Forbidden") and why in answer, answer


def test_the_hosts_a_person_names_are_allowed_on_their_ports_only():
    environ = {"PIP_INDEX_URL": "https://mirror.example/simple", "PIP_EXTRA_INDEX_URL": "http://10.0.0.5:3141/x "
               "file:///opt/wheels", "PIP_FIND_LINKS": "/opt/wheels https://wheels.example/",
               "SAGETWIN_EGRESS_ALLOW": "Apt.Example, devpi.lan:3141"}
    web = frozenset({80, 443})
    assert named_hosts(environ) == {"mirror.example": web, "10.0.0.5": frozenset({3141}), "apt.example": web,
                                    "devpi.lan": frozenset({3141}), "wheels.example": web}


@pytest.mark.parametrize("request_line", [b"CONNECT far.test:99999", b"GET http://far.test:notaport/"])
def test_a_port_that_is_not_one_is_a_400_not_a_traceback(proxy: IndexProxy, request_line: bytes):
    assert ask(proxy, request_line + b" HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request")


def test_where_the_proxy_cannot_listen_the_way_out_is_named():
    from sagetwin.backends.local.egress import _bind
    from sagetwin.core.errors import SagetwinError

    with pytest.raises(SagetwinError) as info:
        _bind("192.0.2.1")  # not an address of this machine: as under rootless Docker or a remote engine
    assert "is not an address of this machine" in info.value.problem
    assert "SAGETWIN_BUILD_NETWORK=host" in info.value.fix


def test_the_host_network_stays_available_by_choice(monkeypatch):
    monkeypatch.setenv("SAGETWIN_BUILD_NETWORK", "host")
    with index_only_network() as (network, proxy):
        assert (network, proxy) == ("host", {})


@pytest.mark.parametrize("address, expected", [("127.0.0.1", True), ("::ffff:127.0.0.1", True), ("10.1.2.3", True),
                                               ("172.20.0.1", True), ("169.254.169.254", True), ("::1", True),
                                               # a documentation range, yet where the index lives on some
                                               # networks (this machine's resolves it there): not internal
                                               ("203.0.113.80", False),
                                               ("151.101.0.223", False), ("8.8.8.8", False),
                                               ("2a04:4e42::223", False)])
def test_internal_addresses(address: str, expected: bool):
    assert internal(address) is expected


@pytest.mark.parametrize("address, expected", [
    ("::7f00:1", True), ("::a9fe:a9fe", True), ("::808:808", True),  # IPv4-compatible ::/96: denied, all of it
    ("::ffff:0:7f00:1", True), ("::ffff:0:808:808", True),  # IPv4-translated ::ffff:0:0:0/96: denied
    ("64:ff9b:1::7f00:1", True), ("64:ff9b:1::808:808", True),  # local-use NAT64 64:ff9b:1::/48: denied
    ("64:ff9b::7f00:1", True), ("64:ff9b::a9fe:a9fe", True), ("64:ff9b::c0a8:101", True),  # well-known NAT64:
    ("64:ff9b::9765:df", False),  # judged by the IPv4 it carries (an IPv6-only network's route to the index)
    ("2002:7f00:1::1", True), ("2002:a00:1::", True), ("2002:a9fe:a9fe::1", True),  # 6to4: by its IPv4 too
    ("2002:9765:df::1", False),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", True), ("2001:0:9765:df::1", True),  # Teredo: denied
    ("fe80::1%eth0", True), ("fec0::1", True), ("ff02::1", True), ("fd00::1", True),
])
def test_ipv6_forms_that_carry_or_hide_an_internal_address(address: str, expected: bool):
    """Each IPv6 range that can reach this machine or its network is refused; those that carry an
    IPv4 address in a fixed place (NAT64's well-known prefix, 6to4) are judged by that address."""
    assert internal(address) is expected


def test_builder_steps_use_the_index_only_network(monkeypatch, tmp_path):
    """The builder image's apt step and the wheel step: a build network and the proxy, never the host's."""
    from sagetwin.backends.local import recipes
    from sagetwin.core.versions import resolve_stack

    @contextlib.contextmanager
    def fake_network():
        yield "sagetwin-build-test", {"https_proxy": "http://172.30.0.1:3128"}

    calls: list[list[str]] = []
    monkeypatch.setattr(builder, "index_only_network", fake_network)
    monkeypatch.setattr(builder, "docker", lambda *a, **k: subprocess.CompletedProcess(a, 1, "", ""))
    monkeypatch.setattr(builder, "engine_is_rootless", lambda: False)
    rec = recipes.recipe("training", resolve_stack("4.26", "1.13", "py39"))
    builder._wheels_in_builder(rec, tmp_path, SilentReporter(), lambda argv, reporter, what: calls.append(argv))
    assert len(calls) == 2  # the builder image, then pip wheel
    assert "chown -R" in calls[1][-1]  # rootful: what the container wrote is handed back to the user
    monkeypatch.setattr(builder, "engine_is_rootless", lambda: True)
    builder._wheels_in_builder(rec, tmp_path, SilentReporter(), lambda argv, reporter, what: calls.append(argv))
    assert "chown" not in calls[-1][-1]  # rootless: it is the user's already; a chown would give it away
    for argv in calls:
        assert argv[argv.index("--network") + 1] == "sagetwin-build-test"
        assert "host" not in argv
    assert "https_proxy=http://172.30.0.1:3128" in calls[0] and calls[0][calls[0].index(
        "https_proxy=http://172.30.0.1:3128") - 1] == "--build-arg"
    assert calls[1][calls[1].index("https_proxy=http://172.30.0.1:3128") - 1] == "-e"


PROBE = """
import socket, sys, urllib.request
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
    print("loopback: reached")
except OSError:
    print("loopback: unreachable")
for url in ("http://example.com/", f"http://127.0.0.1:{sys.argv[1]}/"):
    try:
        print(url, urllib.request.urlopen(url, timeout=10).read().decode())
    except urllib.error.HTTPError as exc:
        print(url, exc.code, exc.read().decode().strip())
"""


@pytest.mark.docker
def test_a_container_on_the_build_network_reaches_only_what_the_proxy_allows(index_on_loopback: int, monkeypatch):
    from tests.test_local_backend import require_docker

    require_docker()
    from sagetwin.backends.local import images
    from sagetwin.core.versions import resolve_stack

    image = images.recipe("training", resolve_stack()).base_tag
    monkeypatch.setenv("SAGETWIN_EGRESS_ALLOW", f"127.0.0.1:{index_on_loopback}")  # a mirror the person named
    with pytest.raises(RuntimeError) as failed, index_only_network() as (network, proxy):
        env = [arg for key, value in proxy.items() for arg in ("-e", f"{key}={value}")]
        internal = subprocess.run(["docker", "network", "inspect", "--format", "{{.Internal}}", network],
                                  capture_output=True, text=True).stdout.strip()
        assert internal == "true"  # no route out but the proxy, whatever the engine's NAT (this engine has none)
        probe = subprocess.run(["docker", "run", "--rm", "--network", network, *env, image, "python3", "-c", PROBE,
                                str(index_on_loopback)], capture_output=True, text=True, timeout=120)
        raise RuntimeError("the build step failed")  # as pip does after a 403: the refusals are added to it
    assert "sagetwin: the build network refused: example.com is not the package index" in failed.value.__notes__[0]
    assert probe.returncode == 0, probe.stderr[-2000:]
    lines = probe.stdout.splitlines()
    assert lines[0] == "loopback: unreachable"  # the machine's own services: not on this network
    assert lines[1].startswith("http://example.com/ 403 sagetwin build network: example.com is not the package index")
    assert lines[2].startswith(f"http://127.0.0.1:{index_on_loopback}/ {ANSWER.decode()}")  # the named mirror
    networks = subprocess.run(["docker", "network", "ls", "--format", "{{.Name}}"], capture_output=True, text=True)
    assert network not in networks.stdout.split()
