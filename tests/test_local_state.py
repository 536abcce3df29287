"""What local runs keep on disk and in Docker, without an engine: staged inputs are what they
claim to be, cache folders are published whole by concurrent first-time builds, containers
are judged by their owner label (another live run's are never touched), and an image build
whose `docker import` fails ends instead of hanging."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from sagetwin.backends.local.containers import owner_gone, owner_of
from sagetwin.core.paths import building


def test_a_staged_input_that_was_changed_is_staged_again_from_the_source(tmp_path: Path):
    """Item 3: ``stage`` trusts an ``inputs/<digest>`` folder only when its content has that digest."""
    from sagetwin.backends.local.backend import LocalBackend

    source = tmp_path / "data"
    source.mkdir()
    (source / "rows.txt").write_text("the real data\n")
    backend = LocalBackend(work_dir=str(tmp_path / "work"))
    staged = backend.stage(source, always=True)
    assert (staged / "rows.txt").read_text() == "the real data\n"
    (staged / "rows.txt").unlink()
    (staged / "rows.txt").write_text("planted by someone else\n")  # the same name, other content
    (staged / "extra.py").write_text("import os\n")
    again = backend.stage(source, always=True)
    assert again == staged and sorted(p.name for p in again.iterdir()) == ["rows.txt"]
    assert (again / "rows.txt").read_text() == "the real data\n"
    assert (source / "rows.txt").read_text() == "the real data\n"  # the person's folder was never written


def test_concurrent_first_builds_of_one_cache_folder_publish_it_whole(tmp_path: Path):
    """Item 9: each build works under its own temporary name and renames it into place; none
    deletes another's work, and the folder is never seen half-written."""
    target = tmp_path / "cache" / "wheelhouse"
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def build(index: int) -> None:
        try:
            start.wait()
            with building(target) as tmp:
                for part in range(20):
                    (tmp / f"part-{part}").write_text(f"{index}\n")
        except BaseException as exc:  # noqa: BLE001 (collected for the assertion below)
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    contents = {path.read_text() for path in target.iterdir()}
    assert len(list(target.iterdir())) == 20 and len(contents) == 1  # one build's whole result
    assert [p.name for p in target.parent.iterdir()] == ["wheelhouse"]  # no temporary folder left


def test_containers_are_judged_by_their_owner_and_a_live_runs_are_never_orphans():
    """Item 8: cleanup acts on containers whose owner label names a process of this host that no
    longer runs; a live run's (this process), a reused pid's, and another host's are told apart."""
    assert not owner_gone(owner_of(os.getpid()))  # a live run: its containers stay
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    dead_pid = int(finished.stdout)
    host = socket.gethostname()
    assert owner_gone(f"{host} {dead_pid} 12345")  # its process is gone
    me = owner_of(os.getpid()).split()
    assert owner_gone(f"{host} {me[1]} {int(me[2]) - 1}")  # the pid lives, but it is another process now
    assert not owner_gone(f"another-host {dead_pid} 12345")  # a shared Docker socket: not ours to judge
    assert not owner_gone("not an owner label")


def test_a_failed_docker_import_ends_the_build_instead_of_hanging(tmp_path: Path, monkeypatch):
    """Item 13: when `docker import` fails before reading its input, `tar` must get SIGPIPE, not
    block for ever on a full pipe (a fake debootstrap writes 4 MB; a fake docker refuses at once)."""
    from sagetwin.backends.local import images
    from sagetwin.backends.local.recipes import recipe
    from sagetwin.core.errors import SagetwinError
    from sagetwin.core.progress import SilentReporter

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "debootstrap").write_text('#!/bin/sh\nroot="$4"  # --variant --include SUITE ROOT URL\n'
                                         'head -c 4000000 /dev/urandom > "$root/big.bin"\n')
    (bin_dir / "docker").write_text('#!/bin/sh\nif [ "$1" = import ]; then echo "no space left" >&2; exit 1; fi\n'
                                    'exit 1\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("SAGETWIN_BASE_IMAGE", raising=False)
    outcome: list[BaseException] = []

    def build() -> None:
        try:
            images.ensure_base(recipe("training"), SilentReporter())
        except BaseException as exc:  # noqa: BLE001 (collected for the assertion below)
            outcome.append(exc)

    thread = threading.Thread(target=build, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the image build hung after docker import failed"
    assert outcome and isinstance(outcome[0], SagetwinError) and "no space left" in str(outcome[0])

