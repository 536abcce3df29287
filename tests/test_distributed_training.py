"""Several hosts as the SageMaker SDK v2 distributed examples ask for them (`instance_count=2`,
`distribution={"torch_distributed": {"enabled": True}}`), through `sagetwin exec`: on `local` two
containers launched by the PyTorch toolkit's torchrun, on `process` two processes in namespaces of
their own launched by torchrun; one log stream per host, the model from rank 0."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

import sagetwin
from sagetwin.core.errors import ConfigurationError
from sagetwin.core.progress import SilentReporter
from tests.conftest import run_cli
from tests.test_aws_twin import leftovers
from tests.test_local_backend import no_leftover_containers, require_docker  # noqa: F401 - fixture
from tests.test_opt_ml_paths import KERNEL_ALLOWS_NAMESPACES

DISTRIBUTED_SDK = Path(__file__).parent / "sdk_workflow" / "distributed_training.py"
DDP_SOURCE = Path(__file__).parent / "sdk_workflow" / "ddp"
TORCH_DISTRIBUTED = {"torch_distributed": {"enabled": True}}


def run_distributed_cells(backend: str) -> tuple[int, str, str]:
    since = time.time() - 0.1
    result = run_cli("exec", "--backend", backend, "--no-persist", "--", sys.executable, str(DISTRIBUTED_SDK),
                     timeout=900)
    assert not leftovers(since), "the twin of `sagetwin exec` and its jobs all end with it"
    return result.returncode, result.stdout, result.stderr


def check_two_hosts(result: dict, *, toolkit_lines: bool) -> None:
    assert result["status"] == "Completed" and result["instance_count"] == 2
    streams = result["streams"]
    hosts = sorted(name.split("/")[1].rsplit("-", 1)[0] for name in streams)
    assert hosts == ["algo-1", "algo-2"], list(streams)
    for name, lines in streams.items():
        rank = int(name.split("/")[1].split("-")[1]) - 1
        if toolkit_lines:  # the PyTorch toolkit in each container logs the command it starts
            launch = [line for line in lines if line.startswith("torchrun ")]
            assert launch and "--nnodes 2 --nproc_per_node 1 --master_addr algo-1-" in launch[0], lines[-40:]
            assert launch[0].split("--node_rank ")[1].startswith(f"{rank} train.py"), launch
        assert any(line.startswith(f"rank {rank} of 2 on algo-{rank + 1}") for line in lines), lines[-40:]
        assert f"rank {rank}: weights equal on every host: True" in lines
        assert not any(line.startswith(f"rank {1 - rank} of 2") for line in lines), "each host's lines in its stream"
    # the model as rank 0 saved it, from algo-1
    assert result["model"] == {"names": ["model.pt", "training.json"],
                               "summary": {"world_size": 2, "weights_equal": True}}


def result_of(out: str) -> dict:
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[len("RESULT "):])


@pytest.mark.docker
@pytest.mark.slow
def test_two_hosts_train_with_torchrun_on_local(no_leftover_containers):  # noqa: F811
    require_docker()
    code, out, err = run_distributed_cells("local")
    assert code == 0, (out + err)[-4000:]
    check_two_hosts(result_of(out), toolkit_lines=True)


@pytest.mark.slow
@pytest.mark.skipif(not KERNEL_ALLOWS_NAMESPACES, reason="this kernel refuses mount namespaces")
def test_two_hosts_train_with_torchrun_on_process():
    """Two processes, each in namespaces of its own (its /opt/ml, host name algo-N, the hosts on
    loopback), launched by torchrun as the toolkit launches it, one log stream each."""
    code, out, err = run_distributed_cells("process")
    assert code == 0, (out + err)[-4000:]
    result = result_of(out)
    check_two_hosts(result, toolkit_lines=False)
    first = next(lines for name, lines in result["streams"].items() if "/algo-1-" in name)
    assert any("on 2 hosts, algo-1, algo-2, launched by torchrun" in line for line in first), first[:20]


def test_two_hosts_on_process_without_namespaces_are_refused_naming_local(tmp_path):
    job = sagetwin.HuggingFaceJob("train.py", source_dir=DDP_SOURCE, backend="process", instance_count=2,
                                  distribution=TORCH_DISTRIBUTED, reporter=SilentReporter(),
                                  backend_options={"paths": "mapped", "work_dir": str(tmp_path)})
    with pytest.raises(ConfigurationError, match="instance_count=2 runs one process per host here") as info:
        job.fit()
    assert "--backend local" in info.value.fix


@pytest.mark.parametrize("distribution", [{"pytorchddp": {"enabled": True}}, {"mpi": {"enabled": True}}])
def test_process_refuses_a_launcher_it_does_not_run(tmp_path, distribution):
    job = sagetwin.HuggingFaceJob("train.py", source_dir=DDP_SOURCE, backend="process", distribution=distribution,
                                  reporter=SilentReporter(), backend_options={"work_dir": str(tmp_path)})
    with pytest.raises(ConfigurationError, match="does not run SageMaker's launcher for distribution=") as info:
        job.fit()
    assert "torch_distributed" in info.value.fix


@pytest.mark.parametrize(("options", "words"), [
    ({"instance_type": "ml.m5.xlarge"}, "supported only for GPU and Trainium instances"),
    ({"pytorch_version": "1.13", "transformers_version": "4.26", "py_version": "py39"},
     "framework_version 1.13 is not supported by torch_distributed"),
])
def test_local_refuses_what_the_cloud_estimator_refuses(options, words):
    """The SDK validates distribution= against the cloud instance type and the versions as given;
    the local image (an image_uri of its own) would skip that check, so the backend makes it."""
    job = sagetwin.HuggingFaceJob("train.py", source_dir=DDP_SOURCE, backend="local", instance_count=2,
                                  distribution=TORCH_DISTRIBUTED, reporter=SilentReporter(), **options)
    with pytest.raises(ConfigurationError, match="SageMaker's SDK refuses this distribution") as info:
        job.fit()
    assert words in info.value.problem


@pytest.mark.parametrize("distribution", [{"pytorchddp": {"enabled": True}}, {"mpi": {"enabled": True}},
                                          {"smdistributed": {"dataparallel": {"enabled": True}}}])
def test_local_refuses_launchers_its_images_do_not_have(distribution):
    job = sagetwin.HuggingFaceJob("train.py", source_dir=DDP_SOURCE, backend="local", instance_count=2,
                                  instance_type="ml.p4d.24xlarge", distribution=distribution,
                                  reporter=SilentReporter())
    with pytest.raises(ConfigurationError, match="which the local images do not have") as info:
        job.fit()
    assert "torch_distributed" in info.value.fix


def test_a_launcher_turned_off_is_no_launcher():
    from sagetwin.core.spec import enabled_launchers

    assert enabled_launchers({"mpi": {"enabled": False}, "torch_distributed": {"enabled": True}}) == \
        ["torch_distributed"]
    assert enabled_launchers({"smdistributed": {"dataparallel": {"enabled": True}}}) == ["smdistributed"]
    assert enabled_launchers({"smdistributed": {"dataparallel": {"enabled": False}}}) == []


def test_distribution_must_be_shaped_as_the_sdk_takes_it():
    with pytest.raises(ConfigurationError, match="dict of dicts"):
        sagetwin.HuggingFaceJob("train.py", source_dir=DDP_SOURCE, distribution={"torch_distributed": True})
