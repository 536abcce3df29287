"""Archives are unpacked by sagetwin's own member checks, not by the interpreter's patch level:
link, device and escaping members are refused wherever sagetwin unpacks (served models with and
without the cache, the twin's code fetch, the twin's CreateEndpoint), nothing is written outside
the target, unpacked size and member counts are capped, and a good model still unpacks."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sagetwin.emulation.archives import LIMIT_ENV, MEMBERS_ENV, ArchiveTooLarge, UnsafeMember, extract_archive
from sagetwin.emulation.artifacts import FICLONE, pack_model, unpack_model
from tests import test_aws_twin as twin_tests

# the twin tests' own fixtures and helpers: one twin for this module, started as they start theirs
twin, sdk, data_uri = twin_tests.twin, twin_tests.sdk, twin_tests.data_uri

LENGTHS = [20, 200, 1000, 2000]  # characters in the target's path


def add(tar: tarfile.TarFile, name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", linkname: str = "",
        mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.size = kind, linkname, mode, len(data)
    tar.addfile(info, io.BytesIO(data) if data else None)


def cve_2025_4517(tar: tarfile.TarFile, ups: int, outside: Path) -> None:
    """The tarfile realpath overflow (CVE-2025-4517): 16 nested folders with 247-character names,
    each reached through a one-letter symlink, so the member names stay short while their resolved
    path passes PATH_MAX (4096); ``realpath`` stops resolving there and judges the rest lexically.
    A symlink at the bottom points back up 16 levels, ``escape`` goes through it and then ``ups``
    more levels, out of the target, and a file is written through ``escape``."""
    long_name, steps, prefix = "d" * 247, "abcdefghijklmnop", ""
    for step in steps:
        add(tar, os.path.join(prefix, long_name), tarfile.DIRTYPE, mode=0o755)
        add(tar, os.path.join(prefix, step), tarfile.SYMTYPE, linkname=long_name)
        prefix = os.path.join(prefix, step)
    bottom = os.path.join(*steps, "l" * 254)
    add(tar, bottom, tarfile.SYMTYPE, linkname="../" * len(steps))
    add(tar, "escape", tarfile.SYMTYPE, linkname=bottom + "/.." * ups)
    add(tar, f"escape/{outside.name}", data=b"written outside the target\n")


def dot_dot(tar: tarfile.TarFile, ups: int, outside: Path) -> None:
    add(tar, "../" * ups + outside.name, data=b"x")


def absolute(tar: tarfile.TarFile, ups: int, outside: Path) -> None:
    add(tar, str(outside), data=b"x")  # the data filter strips the '/' and unpacks it: no error before


def symlink(tar: tarfile.TarFile, ups: int, outside: Path) -> None:
    add(tar, "escape", tarfile.SYMTYPE, linkname="../" * ups)
    add(tar, f"escape/{outside.name}", data=b"x")


def hardlink(tar: tarfile.TarFile, ups: int, outside: Path) -> None:
    add(tar, "config.json", data=b"{}")
    add(tar, "weights.bin", tarfile.LNKTYPE, linkname="config.json")  # inside: the data filter unpacked it


def nul_name(tar: tarfile.TarFile, ups: int, outside: Path) -> None:
    info = tarfile.TarInfo("placeholder")
    info.pax_headers = {"path": f"config.json\x00/{'../' * ups}{outside.name}"}
    info.size = 1
    tar.addfile(info, io.BytesIO(b"x"))


def fifo(tar: tarfile.TarFile, ups: int, outside: Path) -> None:
    add(tar, "pipe", tarfile.FIFOTYPE)


def device(tar: tarfile.TarFile, ups: int, outside: Path) -> None:
    add(tar, "null", tarfile.CHRTYPE)


ESCAPES: dict[str, tuple[Callable[[tarfile.TarFile, int, Path], None], str]] = {
    # name: (builder, the member the error must name)
    "cve-2025-4517": (cve_2025_4517, "'a'"), "dot-dot": (dot_dot, "'../"), "absolute": (absolute, "'/"),
    "symlink": (symlink, "'escape'"), "hardlink": (hardlink, "'weights.bin'"),
}
OTHERS = {"nul": (nul_name, "\\x00"), "fifo": (fifo, "'pipe'"), "device": (device, "'null'")}


def build(path: Path, builder: Callable[[tarfile.TarFile, int, Path], None], ups: int, outside: Path) -> Path:
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        builder(tar, ups, outside)
    return path


@pytest.fixture
def sandbox() -> Iterator[Path]:
    """A fresh folder straight under /tmp (so a target ~20 characters long fits), removed after."""
    folder = Path(tempfile.mkdtemp(prefix="st", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def nested_target(sandbox: Path, length: int) -> tuple[Path, int]:
    """A target path about ``length`` characters long under ``sandbox``, its parents made, and how
    many levels above it ``sandbox`` is."""
    target, depth = sandbox, 0
    while depth == 0 or len(str(target)) < length - 1:
        target, depth = target / ("t" * max(1, min(200, length - len(str(target)) - 1))), depth + 1
    target.parent.mkdir(parents=True, exist_ok=True)
    return target, depth


def everything_under(folder: Path) -> set[Path]:
    return {Path(root) / name for root, dirs, files in os.walk(folder) for name in dirs + files}


def nowhere(name: str, *roots: Path) -> bool:
    """No file ``name`` in any of ``roots`` (searched through) nor in any folder above them."""
    places = {parent / name for root in roots for parent in (root, *root.parents)}
    return not any(p.exists() for p in places) and not any(found for root in roots for found in root.rglob(name))


@pytest.mark.parametrize("cached", [False, True], ids=["direct", "cached"])
@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("case", list(ESCAPES))
def test_an_escaping_or_link_member_is_refused_and_nothing_is_written_outside(case, length, cached, sandbox,
                                                                             tmp_path):
    """Each archive is refused through ``unpack_model``, naming the archive, the member and the fix;
    nothing new is left in the sandbox but the cache's lock file. Before, ``filter="data"`` unpacked
    the CVE-2025-4517 archive here and wrote its file outside the target at every one of these
    lengths (checked on this Python, 3.11.7, first: see the test below), and unpacked the absolute,
    symlink and hard-link archives without an error."""
    builder, member = ESCAPES[case]
    target, depth = nested_target(sandbox, length)
    outside = sandbox / f"sentinel-{uuid.uuid4().hex}"
    archive = build(tmp_path / "model.tar.gz", builder, depth, outside)
    cache = sandbox / "cache" if cached else None
    before = everything_under(sandbox)
    with pytest.raises(UnsafeMember) as caught:
        unpack_model(archive, target, cache_dir=cache)
    message = str(caught.value)
    assert str(archive) in message and member in message and "Fix:" in message
    assert not target.exists()
    assert everything_under(sandbox) - before <= ({cache, cache / ".lock"} if cache else set())
    assert nowhere(outside.name, sandbox)


@pytest.mark.parametrize("case", list(OTHERS))
def test_nul_names_fifos_and_devices_are_refused(case, sandbox, tmp_path):
    builder, member = OTHERS[case]
    target, depth = nested_target(sandbox, 200)
    outside = sandbox / f"sentinel-{uuid.uuid4().hex}"
    archive = build(tmp_path / "model.tar.gz", builder, depth, outside)
    for cache in (None, sandbox / "cache"):
        with pytest.raises(UnsafeMember) as caught:
            unpack_model(archive, target, cache_dir=cache)
        assert member in str(caught.value) and not target.exists() and nowhere(outside.name, sandbox)
    assert [p.name for p in (sandbox / "cache").iterdir()] == [".lock"]  # the .partial folder is gone


@pytest.mark.parametrize("length", LENGTHS)
def test_the_cve_archive_really_fools_this_pythons_data_filter(length, sandbox, tmp_path):
    """Why the module exists: this interpreter's ``extractall(filter="data")`` writes the CVE
    archive's file outside the target (skipped where tarfile is patched: 3.11.13, 3.12.11, 3.13.4)."""
    target, depth = nested_target(sandbox, length)
    target.mkdir()
    outside = sandbox / f"sentinel-{uuid.uuid4().hex}"
    archive = build(tmp_path / "model.tar.gz", cve_2025_4517, depth, outside)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as exc:
        pytest.skip(f"this Python's tarfile refuses the archive ({type(exc).__name__}): it is patched")
    assert outside.is_file()


def test_a_tar_bomb_is_refused_at_the_cap_and_leaves_nothing(monkeypatch, sandbox, tmp_path):
    """100 MB of zeros in a ~0.1 MB archive, one file and many small ones, against a 10 MB cap: refused
    before the cap is passed on disk, naming the archive, the cap and the variable; nothing kept."""
    monkeypatch.setenv(LIMIT_ENV, "10")
    one_file, many_files = tmp_path / "one.tar.gz", tmp_path / "many.tar.gz"
    with tarfile.open(one_file, "w:gz") as tar:
        add(tar, "weights.bin", data=bytes(100_000_000))
    with tarfile.open(many_files, "w:gz") as tar:
        for number in range(40):
            add(tar, f"shard-{number}.bin", data=bytes(1_000_000))
    assert one_file.stat().st_size < 1_000_000
    for archive in (one_file, many_files):
        for cache in (None, sandbox / "cache"):
            target = sandbox / "endpoint" / "model"
            with pytest.raises(ArchiveTooLarge) as caught:
                unpack_model(archive, target, cache_dir=cache)
            message = str(caught.value)
            assert str(archive) in message and "more than 10 MB" in message and f"raise {LIMIT_ENV} (now 10)" in message
            assert not target.exists()
            assert sum(p.stat().st_size for p in everything_under(sandbox) if p.is_file()) == 0
            assert not (cache and [p for p in cache.iterdir() if p.name.endswith(".partial")])


def test_with_the_default_cap_a_tar_bomb_still_stops_before_the_disk_is_full(monkeypatch, sandbox, tmp_path):
    """The cap is 64 GB by default; the disk's free space (less a reserve) bounds unpacking too, so
    a bomb on a smaller disk is refused before it fills it. Here the disk is made to have 50 MB to spare."""
    from sagetwin.emulation import archives

    monkeypatch.delenv(LIMIT_ENV, raising=False)
    monkeypatch.setattr(archives, "DISK_RESERVE", shutil.disk_usage(sandbox).free - 50_000_000)
    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz") as tar:
        add(tar, "weights.bin", data=bytes(100_000_000))
    target = sandbox / "endpoint" / "model"
    with pytest.raises(ArchiveTooLarge, match="MB free on the disk of") as caught:
        unpack_model(bomb, target)
    assert str(bomb) in str(caught.value) and "SAGETWIN_HOME" in caught.value.render() and not target.exists()
    assert sum(p.stat().st_size for p in everything_under(sandbox) if p.is_file()) == 0


def test_an_archive_of_too_many_members_is_refused(monkeypatch, sandbox, tmp_path):
    monkeypatch.setenv(MEMBERS_ENV, "50")
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for number in range(100):
            add(tar, f"f{number}", data=b"x")
    with pytest.raises(ArchiveTooLarge) as caught:
        unpack_model(archive, sandbox / "model")
    assert "more than 50 members" in str(caught.value) and f"raise {MEMBERS_ENV} (now 50)" in str(caught.value)
    assert not (sandbox / "model").exists()


def model_folder(folder: Path) -> Path:
    """A saved model as a Hub snapshot holds it: files that are symlinks into a blob store, a
    ``code/`` folder with an executable, and a setuid, group-writable file."""
    blobs, snapshot = folder / "blobs", folder / "snapshot"
    (snapshot / "code").mkdir(parents=True)
    blobs.mkdir()
    (blobs / "abc123").write_text('{"architectures": ["BertForSequenceClassification"]}')
    (snapshot / "config.json").symlink_to(blobs / "abc123")
    (snapshot / "code" / "inference.py").write_text("def model_fn(model_dir):\n    return model_dir\n")
    (snapshot / "code" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(snapshot / "code" / "run.sh", 0o6775)
    return snapshot


def test_a_good_model_unpacks_with_data_modes_directly_and_from_the_cache(tmp_path):
    """sagetwin's packer (Hub symlinks dereferenced) and a `tar -C dir .` archive still unpack;
    modes keep the owner's bits only (no setuid, nothing for group or other)."""
    snapshot = model_folder(tmp_path / "hub")
    packed = pack_model(snapshot, tmp_path / "packed.tar.gz", dereference=True)
    dotted = tmp_path / "dotted.tar.gz"
    with tarfile.open(dotted, "w:gz", dereference=True) as tar:
        tar.add(snapshot, arcname=".")
    for archive in (packed, dotted):
        for cache in (None, tmp_path / "cache"):
            model = unpack_model(archive, tmp_path / "endpoint" / "model", cache_dir=cache)
            assert sorted(str(p.relative_to(model)) for p in everything_under(model)) == [
                "code", "code/inference.py", "code/run.sh", "config.json"]
            assert "Bert" in (model / "config.json").read_text() and not (model / "config.json").is_symlink()
            assert stat.S_IMODE((model / "code" / "run.sh").stat().st_mode) == 0o700
            assert stat.S_IMODE((model / "config.json").stat().st_mode) == 0o600
            assert stat.S_IMODE((model / "code").stat().st_mode) == 0o700


def test_an_unpacked_copy_shares_no_inode_with_the_cache(tmp_path):
    """Hard links would let a handler's write reach the cache, even through a 0444 mode when run
    as root: every file of an endpoint's copy is its own inode, and a write there stays there."""
    model = pack_model(model_folder(tmp_path / "hub"), tmp_path / "model.tar.gz", dereference=True)
    one = unpack_model(model, tmp_path / "e1" / "model", cache_dir=tmp_path / "cache")
    (one / "config.json").write_text("changed by a handler")
    two = unpack_model(model, tmp_path / "e2" / "model", cache_dir=tmp_path / "cache")
    files = [p for folder in (one, two, tmp_path / "cache") for p in everything_under(folder) if p.is_file()]
    assert all(p.stat().st_nlink == 1 for p in files)
    assert "Bert" in (two / "config.json").read_text()


def reflink_dir(tmp_path: Path) -> Path | None:
    """``$SAGETWIN_TEST_REFLINK_DIR`` (a btrfs or XFS mount) or tmp_path, if its file system clones."""
    import fcntl

    folder = Path(os.environ.get("SAGETWIN_TEST_REFLINK_DIR") or tmp_path) / f"reflink-{uuid.uuid4().hex}"
    folder.mkdir(parents=True)
    (folder / "probe").write_bytes(b"x" * 4096)
    try:
        with open(folder / "probe", "rb") as source, open(folder / "clone", "wb") as clone:
            fcntl.ioctl(clone.fileno(), FICLONE, source.fileno())
        return folder
    except OSError:
        shutil.rmtree(folder)
        return None


def test_unpacking_twice_from_the_cache_does_not_double_the_bytes_where_reflinks_exist(tmp_path):
    folder = reflink_dir(tmp_path)
    if folder is None:
        pytest.skip("this file system cannot clone (FICLONE): copies from the cache are byte copies here; set "
                    "SAGETWIN_TEST_REFLINK_DIR to a btrfs or XFS folder to run this test")
    try:
        (folder / "src").mkdir()
        (folder / "src" / "weights.bin").write_bytes(os.urandom(64_000_000))
        archive = pack_model(folder / "src", folder / "model.tar.gz")
        unpack_model(archive, folder / "e1" / "model", cache_dir=folder / "cache")
        os.sync()
        free = os.statvfs(folder)
        before = free.f_bavail * free.f_frsize
        unpack_model(archive, folder / "e2" / "model", cache_dir=folder / "cache")
        unpack_model(archive, folder / "e3" / "model", cache_dir=folder / "cache")
        os.sync()
        free = os.statvfs(folder)
        assert before - free.f_bavail * free.f_frsize < 16_000_000  # two byte copies would take 128 MB
        assert (folder / "e3" / "model" / "weights.bin").read_bytes() == (folder / "src" / "weights.bin").read_bytes()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_extract_archive_refuses_a_target_that_is_not_empty(tmp_path):
    archive = pack_model(model_folder(tmp_path / "hub"), tmp_path / "model.tar.gz", dereference=True)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep me")
    with pytest.raises(Exception, match="not an empty folder"):
        extract_archive(archive, tmp_path / "taken")
    assert (tmp_path / "taken" / "mine.txt").read_text() == "keep me"


def test_the_local_backend_checks_the_archive_before_the_sdk_unpacks_it(monkeypatch, tmp_path):
    """SDK local mode unpacks ``model_data`` with ``filter="data"`` on the host: the local backend
    refuses the CVE archive before the SDK's model is even made (no Docker needed to show it)."""
    import sagemaker.huggingface

    from sagetwin.backends.local.backend import LocalBackend
    from sagetwin.core.progress import SilentReporter
    from sagetwin.core.spec import DeploySpec

    archive = build(tmp_path / "model.tar.gz", cve_2025_4517, 2, tmp_path / "sentinel")
    backend = LocalBackend(work_dir=str(tmp_path / "work"))
    monkeypatch.setattr(backend, "_image", lambda *args: ("an-image", []))
    monkeypatch.setattr(backend, "choose_instance_type", lambda *args: "local")
    monkeypatch.setattr(sagemaker.huggingface, "HuggingFaceModel", lambda **kwargs: pytest.fail("reached the SDK"))
    spec = DeploySpec(endpoint_name="e", model_data=archive.as_uri(), **twin_tests.VERSIONS)
    with pytest.raises(UnsafeMember, match="member 'a' of .* is a symbolic link"):
        backend._deploy_behind(None, spec, None, SilentReporter())


# --- through the twin: CreateTrainingJob's code fetch, CreateModel -> CreateEndpoint -------------


def upload_escapes(sdk, tmp_path: Path, prefix: str, outside: Callable[[str], Path]) -> dict[str, str]:
    """Each escaping archive in the twin's S3, built to land on ``outside(case)`` two levels above
    where the twin unpacks it; the S3 URI of each."""
    uris = {}
    for case, (builder, _) in ESCAPES.items():
        (tmp_path / case).mkdir()
        archive = build(tmp_path / case / "archive.tar.gz", builder, 2, outside(case))
        uris[case] = sdk["session"].upload_data(str(archive), key_prefix=f"{prefix}/{case}")
    return uris


def wait_for(describe: Callable[[], dict], field: str, deadline_s: float = 120) -> dict:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        described = describe()
        if described[field] not in ("InProgress", "Creating"):
            return described
        time.sleep(0.2)
    raise AssertionError(f"still {described[field]} after {deadline_s} s")


def test_the_twins_code_fetch_refuses_escaping_archives(sdk, twin, data_uri, tmp_path, sagetwin_home):
    """A ``sourcedir.tar.gz`` with a link or escaping member ends the job Failed, naming the member;
    before, the CVE archive's file landed beside the job's folder (the data filter let it through)."""
    sentinel = f"sentinel-{uuid.uuid4().hex}"
    uris = upload_escapes(sdk, tmp_path, "archive-tests/code", lambda case: twin.jobs.work_dir / f"{sentinel}-{case}")
    jobs = {}
    for case, uri in uris.items():
        job = twin_tests.estimator(sdk, uri)
        job.fit({"train": data_uri}, wait=False)
        jobs[case] = job.latest_training_job.name
    client = sdk["session"].sagemaker_client
    for case, name in jobs.items():
        described = wait_for(lambda n=name: client.describe_training_job(TrainingJobName=n), "TrainingJobStatus")
        assert described["TrainingJobStatus"] == "Failed", case
        assert described["FailureReason"].startswith("AlgorithmError: member " + ESCAPES[case][1]), described
        assert uris[case] in described["FailureReason"]
    assert not list(Path(sagetwin_home).rglob(f"{sentinel}*"))
    twin_tests.still_serving(twin)


def test_create_endpoint_refuses_escaping_archives(sdk, twin, tmp_path, sagetwin_home):
    """A ``model.tar.gz`` with a link or escaping member fails the endpoint at CreateEndpoint with the
    service's wording and the member named; before, the check only listed the members and the
    backend's unpack wrote the CVE archive's file outside the endpoint's folder."""
    sentinel = f"sentinel-{uuid.uuid4().hex}"
    uris = upload_escapes(sdk, tmp_path, "archive-tests/model", lambda case: Path(sagetwin_home) / f"{sentinel}-{case}")
    names = {}
    for case, uri in uris.items():
        model = twin_tests.hf_model(sdk, uri)
        model.deploy(1, "ml.g4dn.xlarge", wait=False)
        names[case] = model.endpoint_name
    client = sdk["session"].sagemaker_client
    for case, name in names.items():
        described = wait_for(lambda n=name: client.describe_endpoint(EndpointName=n), "EndpointStatus")
        assert described["EndpointStatus"] == "Failed", case
        reason = described["FailureReason"]
        assert reason.startswith(f'Failed to extract model data archive from URL "{uris[case]}": member '
                                 f"{ESCAPES[case][1]}"), reason
    assert not list(Path(sagetwin_home).rglob(f"{sentinel}*"))
    twin_tests.still_serving(twin)
