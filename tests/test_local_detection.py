"""GPU and compose detection for the local backend, from recorded command outputs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sagetwin.backends.local.backend import compose_command, detect_gpu, docker_reachable

NVIDIA_SMI_TWO = ("GPU 0: NVIDIA A10G (UUID: GPU-1f0c2e4a-2b9d-4c1e-9d8a-3f0b5c6d7e8f)\n"
                  "GPU 1: NVIDIA A10G (UUID: GPU-2a1b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d)\n")
RUNTIMES_WITH_NVIDIA = ('{"io.containerd.runc.v2":{"path":"runc"},"nvidia":{"path":"nvidia-container-runtime"},'
                        '"runc":{"path":"runc"}}')
RUNTIMES_PLAIN = '{"io.containerd.runc.v2":{"path":"runc"},"runc":{"path":"runc"}}'


def recorded(outputs: dict[tuple[str, ...], tuple[int, str]]):
    """A runner that answers known commands with recorded (exit code, stdout)."""

    def run(cmd, timeout=10):
        for prefix, (code, out) in outputs.items():
            if tuple(cmd[:len(prefix)]) == prefix:
                return subprocess.CompletedProcess(cmd, code, out, "")
        return subprocess.CompletedProcess(cmd, 127, "", f"{cmd[0]}: not found")

    return run


def test_gpu_with_the_nvidia_runtime(tmp_path: Path):
    run = recorded({("nvidia-smi",): (0, NVIDIA_SMI_TWO), ("docker", "info"): (0, RUNTIMES_WITH_NVIDIA)})
    info = detect_gpu(run, cdi_dirs=(str(tmp_path / "none"),))
    assert info.usable and info.gpus == 2 and "nvidia runtime" in info.reason


def test_gpu_through_cdi(tmp_path: Path):
    (tmp_path / "cdi").mkdir()
    (tmp_path / "cdi" / "nvidia.yaml").write_text("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\n")
    run = recorded({("nvidia-smi",): (0, NVIDIA_SMI_TWO.splitlines()[0]), ("docker", "info"): (0, RUNTIMES_PLAIN)})
    info = detect_gpu(run, cdi_dirs=(str(tmp_path / "cdi"),))
    assert info.usable and info.gpus == 1 and "CDI" in info.reason


def test_gpu_without_container_toolkit_says_what_to_install(tmp_path: Path):
    run = recorded({("nvidia-smi",): (0, NVIDIA_SMI_TWO), ("docker", "info"): (0, RUNTIMES_PLAIN)})
    info = detect_gpu(run, cdi_dirs=(str(tmp_path),))
    assert not info.usable and "NVIDIA Container Toolkit" in info.reason


def test_no_gpu_when_nvidia_smi_is_missing_or_fails(tmp_path: Path):
    assert not detect_gpu(recorded({}), cdi_dirs=()).usable
    failing = recorded({("nvidia-smi",): (9, "NVIDIA-SMI has failed because it couldn't communicate with the "
                                               "NVIDIA driver.")})
    info = detect_gpu(failing, cdi_dirs=())
    assert not info.usable and "nvidia-smi lists none" in info.reason


def test_compose_v2_is_recognised_by_the_text_v2():
    run = recorded({("docker", "compose", "version"): (0, "Docker Compose version v2.29.7\n")})
    assert compose_command(run)[0] == ["docker", "compose"]


def test_compose_v1_fallback(monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/docker-compose" if name == "docker-compose" else None)
    run = recorded({("docker", "compose", "version"): (1, ""), ("docker-compose", "version"): (0, "1.29.2\n")})
    assert compose_command(run) == (["docker-compose"], "docker-compose 1.29.2")


def test_docker_unreachable_names_the_reason(monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/docker")

    def run(cmd, timeout=10):
        return subprocess.CompletedProcess(cmd, 1, "", "Cannot connect to the Docker daemon at "
                                                       "unix:///var/run/docker.sock. Is the docker daemon running?")

    ok, why = docker_reachable(run)
    assert not ok and "Docker not reachable" in why and "Is the docker daemon running?" in why


def test_debians_compose_v2_plugin_is_recognised_by_its_version_number():
    from sagetwin.backends.local.docker import compose_command

    compose_command.cache_clear()
    run = recorded({("docker", "compose", "version"): (0, "Docker Compose version 2.26.1-4\n")})
    assert compose_command(run)[0] == ["docker", "compose"]
    compose_command.cache_clear()


def test_gpu_runs_make_the_sdk_use_compose_v2_and_give_its_choice_back():
    from sagemaker.local.image import _SageMakerContainer

    from sagetwin.backends.local.docker import sdk_compose

    original = _SageMakerContainer.__dict__["_get_compose_cmd_prefix"]
    with sdk_compose(["docker", "compose"]):
        assert _SageMakerContainer._get_compose_cmd_prefix() == ["docker", "compose"]
    assert _SageMakerContainer.__dict__["_get_compose_cmd_prefix"] is original
