"""The SageMaker training-container contract, as the sagemaker-training toolkit implements it.

A run folder shaped like ``/opt/ml``, the ``SM_*`` environment, and hyperparameters
turned into ``--key value`` arguments. Backends that do not run inside a real container
(``process``) use this to give a script exactly what it would see on SageMaker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagetwin.core.errors import ConfigurationError
from sagetwin.core.paths import inside
from sagetwin.core.spec import TrainingSpec
from sagetwin.emulation import channels as channel_data
from sagetwin.emulation.artifacts import local_input
from sagetwin.emulation.requirements import unmet_requirements

OPT_ML = "/opt/ml"
CURRENT_HOST = "algo-1"
INSTANCE_GROUP = "homogeneousCluster"  # the group name SageMaker gives a job without instance_groups
NETWORK_INTERFACE = "eth0"


def encode_hyperparameters(hyperparameters: dict[str, Any]) -> dict[str, str]:
    """Encode values the way the SageMaker SDK does before CreateTrainingJob: JSON strings."""
    return {key: json.dumps(value) for key, value in hyperparameters.items()}


def decode_hyperparameters(encoded: dict[str, str]) -> dict[str, Any]:
    """Decode as the toolkit does: ``json.loads`` each value, keeping plain strings as they are."""
    decoded: dict[str, Any] = {}
    for key, value in encoded.items():
        try:
            decoded[key] = json.loads(value)
        except (TypeError, ValueError):
            decoded[key] = value
    return decoded


def user_hyperparameters(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """The toolkit hides its own ``sagemaker_*`` keys from the user script."""
    return {k: v for k, v in hyperparameters.items() if not k.startswith("sagemaker_")}


def to_cmd_args(hyperparameters: dict[str, Any]) -> list[str]:
    """``--key value`` pairs sorted by key, values with ``str()``, as the toolkit passes them."""
    args: list[str] = []
    for key in sorted(hyperparameters):
        value = hyperparameters[key]
        args += [f"--{key}", value if isinstance(value, str) else _arg_str(value)]
    return args


def _arg_str(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def map_opt_ml(value: Any, root: Path) -> Any:
    """Point ``/opt/ml/...`` strings (also inside lists and dicts) at ``root`` instead."""
    if isinstance(value, str) and (value == OPT_ML or value.startswith(OPT_ML + "/")):
        return str(root) + value[len(OPT_ML):]
    if isinstance(value, list):
        return [map_opt_ml(v, root) for v in value]
    if isinstance(value, dict):
        return {k: map_opt_ml(v, root) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class RunFolder:
    """An ``/opt/ml``-shaped folder for one training run."""

    root: Path

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def data_dir(self) -> Path:
        return self.root / "input" / "data"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.root / "output" / "data"

    @property
    def intermediate_dir(self) -> Path:
        return self.root / "output" / "intermediate"

    @property
    def code_dir(self) -> Path:
        return self.root / "code"

    def channel_dir(self, channel: str) -> Path:
        return inside(self.data_dir, channel)

    def create(self) -> RunFolder:
        for path in (self.config_dir, self.data_dir, self.model_dir, self.output_data_dir,
                     self.intermediate_dir, self.code_dir):
            path.mkdir(parents=True, exist_ok=True)
        return self

    def add_channel(self, channel: str, source: Path, copy_limit: int | None = None) -> str | None:
        """Expose a local folder or file as ``input/data/<channel>`` (see :mod:`channels`)."""
        return channel_data.expose(channel, source, self.channel_dir(channel), copy_limit)

    def remove_channel_copies(self) -> None:
        """Inputs are not outputs: SageMaker discards them with the job; so does the run folder."""
        channel_data.remove_all(self.data_dir)

    def copy_code(self, source_dir: Path) -> None:
        if self.code_dir.exists():
            shutil.rmtree(self.code_dir)
        shutil.copytree(source_dir, self.code_dir,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git"))

    def write_config(self, hyperparameters: dict[str, Any], channels: list[str],
                     hosts: list[str] | None = None, current_host: str = CURRENT_HOST,
                     instance_type: str = "local") -> None:
        hosts = hosts or [current_host]
        files = {
            "hyperparameters.json": encode_hyperparameters(hyperparameters),
            "resourceconfig.json": {  # as SageMaker writes it for a cluster of one instance group
                "current_host": current_host, "current_instance_type": instance_type,
                "current_group_name": INSTANCE_GROUP, "hosts": hosts,
                "instance_groups": [{"instance_group_name": INSTANCE_GROUP, "instance_type": instance_type,
                                     "hosts": hosts}],
                "network_interface_name": NETWORK_INTERFACE,
            },
            "inputdataconfig.json": {c: {"TrainingInputMode": "File"} for c in channels},
        }
        for name, content in files.items():
            (self.config_dir / name).write_text(json.dumps(content, indent=2))


def count_gpus() -> int:
    """GPUs as the toolkit counts them: lines of ``nvidia-smi --list-gpus``."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "--list-gpus"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return gpus_listed(out.stdout) if out.returncode == 0 else 0


def gpus_listed(nvidia_smi_list_gpus: str) -> int:
    """GPUs in the output of ``nvidia-smi --list-gpus`` (one ``GPU n: ...`` line each)."""
    return sum(1 for line in nvidia_smi_list_gpus.splitlines() if line.strip().startswith("GPU "))


def training_environment(
    folder: RunFolder,
    *,
    job_name: str,
    entry_point: str,
    hyperparameters: dict[str, Any],
    channels: list[str],
    instance_type: str = "local",
    num_gpus: int | None = None,
    num_cpus: int | None = None,
    log_level: int = 20,
    hosts: list[str] | None = None,
    current_host: str = CURRENT_HOST,
) -> dict[str, str]:
    """The ``SM_*`` variables the toolkit exports before running the user entry point."""
    hosts = hosts or [current_host]
    user_hps = user_hyperparameters(hyperparameters)
    args = to_cmd_args(user_hps)
    module_name = entry_point[:-3] if entry_point.endswith(".py") else entry_point
    env: dict[str, Any] = {
        "additional_framework_parameters": {},
        "channel_input_dirs": {c: str(folder.channel_dir(c)) for c in channels},
        "current_host": current_host,
        "current_instance_type": instance_type,
        "framework_module": None,
        "hosts": hosts,
        "hyperparameters": user_hps,
        "input_config_dir": str(folder.config_dir),
        "input_data_config": {c: {"TrainingInputMode": "File"} for c in channels},
        "input_dir": str(folder.input_dir),
        "is_master": current_host == hosts[0],
        "job_name": job_name,
        "log_level": log_level,
        "master_hostname": hosts[0],
        "model_dir": str(folder.model_dir),
        "module_dir": str(folder.code_dir),
        "module_name": module_name,
        "network_interface_name": NETWORK_INTERFACE,
        "num_cpus": num_cpus if num_cpus is not None else (os.cpu_count() or 1),
        "num_gpus": num_gpus if num_gpus is not None else count_gpus(),
        "output_data_dir": str(folder.output_data_dir),
        "output_dir": str(folder.output_dir),
        "output_intermediate_dir": str(folder.intermediate_dir),
        "resource_config": {"current_host": current_host, "hosts": hosts,
                            "network_interface_name": NETWORK_INTERFACE},
        "user_entry_point": entry_point,
    }
    return _sm_variables(env, user_hps, channels, folder, args)


def _sm_variables(env: dict[str, Any], user_hps: dict[str, Any], channels: list[str], folder: RunFolder,
                  args: list[str]) -> dict[str, str]:
    """The training environment flattened into ``SM_*`` variables, as the toolkit exports them."""
    out: dict[str, str] = {}
    for key, value in env.items():
        if key in ("channel_input_dirs", "hyperparameters"):
            continue
        out["SM_" + key.upper()] = value if isinstance(value, str) else json.dumps(value)
    out["SM_HPS"] = json.dumps(user_hps)
    for key, value in user_hps.items():
        out["SM_HP_" + key.upper()] = value if isinstance(value, str) else json.dumps(value)
    out["SM_CHANNELS"] = json.dumps(sorted(channels))
    for channel in channels:
        out["SM_CHANNEL_" + channel.upper()] = str(folder.channel_dir(channel))
    out["SM_USER_ARGS"] = json.dumps(args)
    out["SM_INPUT_CONFIG_DIR"] = str(folder.config_dir)
    out["SM_TRAINING_ENV"] = json.dumps(env)
    return out


@dataclass(frozen=True)
class PreparedRun:
    """A run folder filled in for one job: what to put in the environment and on the command line."""

    folder: RunFolder
    env: dict[str, str]
    args: list[str]
    hyperparameters: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # what the person should know about the layout


def link_checkpoints(folder: RunFolder, checkpoint_dir: str, local_path: str) -> None:
    """The job's checkpoint folder at ``local_path`` (under ``/opt/ml``, mapped onto the run folder)."""
    mapped = map_opt_ml(local_path.rstrip("/"), folder.root)
    target = Path(mapped)
    if mapped == local_path or target == folder.root or (target.exists() and any(target.iterdir())):
        raise ConfigurationError(
            f"checkpoint_local_path {local_path!r} is not a folder of its own under /opt/ml, which this backend "
            "maps onto the run folder.", "use the default /opt/ml/checkpoints, or another new folder under /opt/ml.")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.rmdir()
    target.symlink_to(Path(checkpoint_dir).resolve(), target_is_directory=True)


def prepare_run(spec: TrainingSpec, root: Path, *, num_gpus: int | None = None, at_opt_ml: bool = False,
                hosts: list[str] | None = None, current_host: str = CURRENT_HOST) -> PreparedRun:
    """Lay out ``root`` as ``/opt/ml`` for ``spec``: code, channels, config files, ``SM_*`` env.
    For backends that run the script outside a container (process, in-process plugins): local
    channels only. ``at_opt_ml``: the script will see ``root`` at ``/opt/ml`` (``container_paths``),
    so paths are SageMaker's own; otherwise ``/opt/ml`` values in hyperparameters and the
    environment are mapped onto ``root``. ``hosts``: the job's hosts, this run being ``current_host``'s.
    """
    channels = {name: local_input(uri, name) for name, uri in spec.inputs.items()}
    requirements = spec.source_dir / "requirements.txt"
    missing = unmet_requirements(requirements)
    if missing:
        raise ConfigurationError(
            f"{requirements} asks for packages not installed here: {', '.join(missing)}. In a container the "
            "toolkit would pip-install them; this backend does not change your environment.",
            f"pip install -r {requirements}",
        )
    folder = RunFolder(root).create()
    if spec.checkpoint_dir:
        link_checkpoints(folder, spec.checkpoint_dir, spec.checkpoint_local_path)
    folder.copy_code(spec.source_dir)
    notes = [note for name, path in channels.items() if (note := folder.add_channel(name, path))]
    hyperparameters = dict(spec.hyperparameters) if at_opt_ml else map_opt_ml(dict(spec.hyperparameters), folder.root)
    folder.write_config(hyperparameters, sorted(channels), hosts, current_host, spec.instance_type or "local")
    env = {**spec.environment, "TRAINING_JOB_NAME": spec.job_name}  # SageMaker's own, in every training container
    env.update(training_environment(
        RunFolder(Path(OPT_ML)) if at_opt_ml else folder, job_name=spec.job_name, entry_point=spec.entry_point,
        hyperparameters=hyperparameters,
        channels=sorted(channels), instance_type=spec.instance_type or "local", num_gpus=num_gpus,
        hosts=hosts, current_host=current_host,
    ))
    return PreparedRun(folder, env, to_cmd_args(user_hyperparameters(hyperparameters)), hyperparameters, notes)
