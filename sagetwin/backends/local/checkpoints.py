"""A job's checkpoint folder in its containers: ``CheckpointConfig.LocalPath`` (default
``/opt/ml/checkpoints``) mounted from the host folder the caller syncs with ``S3Uri``.

SDK local mode has no checkpoint channel, so the volume is added where it builds each host's
``/opt/ml`` volumes, for this run's containers only (those under its container root). Every host
of a job mounts the same folder: on SageMaker each host syncs its own folder to the same S3 URI.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sagetwin.core.spec import TrainingSpec


@contextlib.contextmanager
def checkpoint_volume(spec: TrainingSpec, container_root: str) -> Iterator[None]:
    """While it is open, containers of the run under ``container_root`` mount the spec's
    ``checkpoint_dir`` at its ``checkpoint_local_path``; nothing changes when it has none."""
    checkpoint_dir, local_path = spec.checkpoint_dir, spec.checkpoint_local_path
    if not checkpoint_dir:
        yield
        return
    from sagemaker.local.image import _SageMakerContainer, _Volume

    original = _SageMakerContainer._build_optml_volumes
    host_dir = str(Path(checkpoint_dir).resolve())

    def with_checkpoints(self: Any, host: str, subdirs: Any) -> list[Any]:
        volumes = original(self, host, subdirs)
        if str(self.container_root).startswith(str(container_root)):
            volumes.append(_Volume(host_dir, local_path))
        return volumes

    _SageMakerContainer._build_optml_volumes = with_checkpoints
    try:
        yield
    finally:
        _SageMakerContainer._build_optml_volumes = original
