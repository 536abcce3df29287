"""Where an offline endpoint's model comes from: a ``model.tar.gz`` (``model_data``), or the
``HF_MODEL_ID`` the inference toolkit would load — a Hub id, downloaded here as the container
would download it at start, or a local folder (offline use) — packed once into an archive.

As in the toolkit (``mms_model_server.start_model_server``), ``HF_MODEL_ID`` wins over
``model_data`` when both are given.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from sagetwin.core.errors import ConfigurationError
from sagetwin.core.paths import building, home_folder
from sagetwin.emulation.artifacts import local_model_archive, pack_model

MODEL_ID = "HF_MODEL_ID"
# read by the toolkit to download; meaningless once packed (and a token must not travel further)
TOOLKIT_DEFAULT_PROGRAM = "inference.py"  # sagemaker_inference's module name when SAGEMAKER_PROGRAM is absent
HUB_ONLY = (MODEL_ID, "HF_MODEL_REVISION", "HF_API_TOKEN", "HF_TOKEN")
MODEL_DATA_FOLDER = "/opt/ml/model"  # where SageMaker unpacks model_data in a serving container


def hosted_environment(env: dict[str, str]) -> dict[str, str]:
    """The container environment SageMaker hosting gives the model server: variables with an
    empty value are not there. Evidence: the SDK sends ``SAGEMAKER_PROGRAM=""`` for every
    ``HuggingFaceModel`` without ``entry_point``; the toolkit reads the variable as-is
    (``os.environ.get("SAGEMAKER_PROGRAM", "inference.py")``, and ``""`` means "no module"),
    nothing in the DLC's entrypoint or MMS changes it — yet on SageMaker a ``model.tar.gz`` with
    ``code/inference.py`` runs its handlers (the Hugging Face custom-inference example's saved
    output is its ``predict_fn``'s shape). So the empty value never reaches the container."""
    return {name: value for name, value in env.items() if value != ""}
# what the toolkit leaves out of a Hub download for a PyTorch container (other frameworks' weights)
IGNORED_ON_DOWNLOAD = ["*.h5", "*.msgpack", "*.ot", "*.onnx", "*.tflite", "tf_model*", "flax_model*", "rust_model*"]
KEEP_ARCHIVES = 5


def _no_model() -> ConfigurationError:
    return ConfigurationError(
        "there is no model to serve: neither model_data nor env['HF_MODEL_ID'] was given.",
        "pass model_data='model.tar.gz' (a path, file:// or s3:// URI), or env={'HF_MODEL_ID': "
        "'a-hub-id-or-local-folder', 'HF_TASK': 'text-classification'}.")


def cloud_model(model_data: str | None, env: dict[str, str]) -> tuple[str | None, dict[str, str]]:
    """What a real endpoint can load: a Hub id stays an id (the container downloads it at start);
    a local folder named by HF_MODEL_ID becomes an archive to upload, as SageMaker cannot see it."""
    model_id = env.get(MODEL_ID)
    if model_id and Path(model_id).expanduser().is_dir():
        return str(archive_of_folder(Path(model_id).expanduser())), {k: v for k, v in env.items()
                                                                       if k not in HUB_ONLY}
    if not model_data and not model_id:
        raise _no_model()
    return model_data, dict(env)


def served_model(model_data: str | None, env: dict[str, str], say: Callable[[str], None] = lambda _: None,
                 server: str = "inference-toolkit") -> tuple[Path, dict[str, str]]:
    """The local archive to serve and the environment to serve it with. The TGI and TEI containers
    load ``HF_MODEL_ID`` as their launcher's ``MODEL_ID``: ``/opt/ml/model`` is the unpacked
    ``model_data``, and the id stays in their environment (their answers name it; unset, their
    entrypoint refuses to start, as on SageMaker)."""
    model_id = env.get(MODEL_ID)
    router = server != "inference-toolkit"
    if router and model_id and model_id.rstrip("/") == MODEL_DATA_FOLDER:
        if not model_data:
            raise ConfigurationError(f"{MODEL_ID}={model_id} names the unpacked model_data, but no model_data "
                                     "is given.", "pass model_data (the model.tar.gz or S3 prefix), or set "
                                     "HF_MODEL_ID to a Hub id.")
        return local_model_archive(model_data), hosted_environment(env)
    if not model_id:
        if not model_data:
            raise _no_model()
        return local_model_archive(model_data), hosted_environment(env)
    if model_data:
        say(f"HF_MODEL_ID={model_id} is set: the container loads it and ignores model_data, as on SageMaker")
    folder = Path(model_id).expanduser()
    if not folder.is_dir():
        folder = _download(model_id, env.get("HF_MODEL_REVISION"), env.get("HF_API_TOKEN") or env.get("HF_TOKEN"),
                           say)
    dropped = [name for name in HUB_ONLY if not (router and name == MODEL_ID)]
    rest = hosted_environment({k: v for k, v in env.items() if k not in dropped})
    return archive_of_folder(folder), rest


def archive_of_folder(folder: Path) -> Path:
    """``folder`` as a ``model.tar.gz``, packed once per content (names, sizes, modification times)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())  # symlinks to files count as files
    if not any(p.name == "config.json" for p in files):
        raise ConfigurationError(f"HF_MODEL_ID folder {folder} has no config.json: it is not a saved model.",
                                 "point it at a folder written by save_pretrained() (config.json, weights, "
                                 "tokenizer files).")
    digest = hashlib.sha256(str(folder.resolve()).encode())
    for path in files:
        info = path.stat()
        digest.update(f"{path.relative_to(folder)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    cache = home_folder("model-archives")
    target = cache / digest.hexdigest()[:16]
    if not (target / "model.tar.gz").is_file():
        with building(target) as tmp:
            pack_model(folder, tmp / "model.tar.gz", dereference=True)
    os.utime(target)  # most recently used: kept longest
    for old in sorted((p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")),
                      key=lambda p: p.stat().st_mtime, reverse=True)[KEEP_ARCHIVES:]:
        shutil.rmtree(old, ignore_errors=True)
    return target / "model.tar.gz"


def _download(model_id: str, revision: str | None, token: str | None, say: Callable[[str], None]) -> Path:
    """The Hub snapshot the toolkit would fetch at container start, through the Hugging Face cache
    (``HF_HOME`` / ``HF_HUB_CACHE``; with ``HF_HUB_OFFLINE=1`` from the cache only)."""
    from huggingface_hub import constants, snapshot_download

    say(f"fetching {model_id} through the Hugging Face cache, as the container does at start")
    try:
        return Path(snapshot_download(model_id, revision=revision, token=token or None,
                                      ignore_patterns=IGNORED_ON_DOWNLOAD))
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        offline = " (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else ""
        raise ConfigurationError(
            f"HF_MODEL_ID={model_id!r} is neither a local folder nor a model the Hugging Face Hub could give "
            f"here{offline}, and it is not in the Hugging Face cache {constants.HF_HUB_CACHE}: {reason}",
            f"fill the cache where the Hub is reachable (huggingface-cli download {model_id}) and point HF_HOME "
            "at it, or pass a folder written by save_pretrained() as HF_MODEL_ID, or model_data='model.tar.gz'."
        ) from None
