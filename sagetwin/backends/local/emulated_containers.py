"""The LLM and embeddings containers (TGI, TEI) on ``local``: an image that serves sagetwin's
emulation of the container's HTTP contract, the same code ``process`` runs, in a Docker container
SDK local mode starts as it starts any serving image (``docker run IMAGE serve``, the model at
``/opt/ml/model``). It is not the TGI or TEI binary (those need the registry, and TGI a GPU): the
image is the default-stack inference image (Python, torch and transformers of the DLCs) with the
emulation's modules added, and nothing else."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sagetwin.backends.local import images
from sagetwin.backends.local.builder import DOCKER_BUILD
from sagetwin.backends.local.docker import docker
from sagetwin.core.errors import SagetwinError
from sagetwin.core.progress import Reporter
from sagetwin.core.spec import DeploySpec
from sagetwin.core.versions import default_stack
from sagetwin.emulation import tei, tgi
from sagetwin.emulation.archives import check_archive
from sagetwin.emulation.bounded_server import FRONT_TOKEN_ENV
from sagetwin.emulation.model_sources import served_model
from sagetwin.emulation.router_server import ROUTER_MODULES, VERSION_ENV

REPOSITORY = "sagetwin/{server}-emulation"
EMULATED = {"tgi": f"TGI {tgi.EMULATED_VERSION}", "tei": f"TEI {tei.EMULATED_VERSION}"}
BUILT_BY = "org.sagetwin.built-by-uid"  # whose builds these are: only one's own are ever removed
PACKAGE_HOME = "/opt/sagetwin"  # on the image's PYTHONPATH: nothing is installed into its environment
# what SageMaker runs is `docker run IMAGE serve`; the model is at /opt/ml/model, the port 8080
DOCKERFILE = """FROM {base}
COPY sagetwin {home}/sagetwin
ENV PYTHONPATH={home}
LABEL org.sagetwin.scope=emulation org.sagetwin.emulates="{emulates}" {built_by}={uid}
ENTRYPOINT ["python3", "-m", "{module}", "--model-dir", "/opt/ml/model", "--host", "0.0.0.0", "--port", "8080", \
"--behind-front"]
CMD ["serve"]
"""
# the modules a container emulation imports, listed by importing them in a fresh interpreter
LIST_MODULES = ("import importlib, json, sys\n"
                "for name in sys.argv[1:]: importlib.import_module(name)\n"
                "print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items()\n"
                "                        if n.split('.')[0] == 'sagetwin' and getattr(m, '__file__', None))))")


def parity_line(server: str) -> str:
    return (f"an emulation of {EMULATED[server]}'s HTTP contract (sagetwin's, the one `process` serves), "
            "not the container's own binary")


def emulation_files(module: str) -> dict[str, bytes]:
    """``module``'s own sagetwin modules and those it imports, by path under the package's parent."""
    root = Path(__import__("sagetwin").__file__).resolve().parent.parent
    # isolated (-I): neither the working folder nor PYTHON* variables can put other code first
    listed = subprocess.run([sys.executable, "-I", "-c", LIST_MODULES, module], capture_output=True, text=True,
                            timeout=120, cwd=root)
    if listed.returncode != 0:
        raise SagetwinError(f"the modules of {module} could not be listed: {listed.stderr.strip()[-300:]}",
                            "reinstall sagetwin (`pip install -e .`); `sagetwin doctor` checks the install.")
    return {str(Path(path).resolve().relative_to(root)): Path(path).read_bytes() for path in json.loads(listed.stdout)}


def emulation_image(server: str, reporter: Reporter, *, build_missing: bool = True) -> str:
    """The image serving ``server``'s emulation (``"tgi"``, ``"tei"``), built on the default-stack
    inference image when missing: a tag named by its content, so a changed sagetwin gets its own."""
    base, _ = images.choose_image("inference", default_stack(), None, reporter, build_missing=build_missing)
    module = ROUTER_MODULES[server]
    files = emulation_files(module)
    dockerfile = DOCKERFILE.format(base=base, home=PACKAGE_HOME, module=module, emulates=EMULATED[server],
                                   built_by=BUILT_BY, uid=os.getuid())
    digest = hashlib.sha256(dockerfile.encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    repository = REPOSITORY.format(server=server)
    tag = f"{repository}:{EMULATED[server].split()[1]}-{digest.hexdigest()[:12]}"
    if images.image_exists(tag):
        return tag
    reporter.step(f"local: building {tag}: {parity_line(server)}, on {base}")
    with tempfile.TemporaryDirectory(prefix="sagetwin-emulation-") as context:
        for name, content in files.items():
            (Path(context) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(context) / name).write_bytes(content)
        (Path(context) / "Dockerfile").write_text(dockerfile)
        built = subprocess.run([*DOCKER_BUILD, "--network", "none", "-q", "-t", tag, context], capture_output=True,
                               text=True, timeout=600)
    if built.returncode != 0:
        raise SagetwinError(f"the {EMULATED[server]} emulation image {tag} could not be built: "
                            f"{built.stderr.strip()[-300:]}", "check the Docker engine with `sagetwin doctor`.")
    _remove_older(repository, tag)
    return tag


def _remove_older(repository: str, kept: str) -> None:
    """This user's earlier builds (another sagetwin's code) go; one a container still uses stays
    (rmi refuses); other users' are theirs."""
    listed = docker("images", repository, "--filter", f"label={BUILT_BY}={os.getuid()}", "--format",
                    "{{.Repository}}:{{.Tag}}")
    for old in listed.stdout.split() if listed.returncode == 0 else []:
        if old != kept:
            docker("rmi", old)


def emulated_model(spec: DeploySpec, stage: Callable[[Path], Path], session: Any, reporter: Reporter, *,
                   role: str, build_missing: bool, front_token: str) -> Any:
    """The SDK's ``Model`` of the emulation image and the model (``HF_MODEL_ID`` or ``model_data``,
    staged privately and checked): SDK local mode serves it as any image. The container answers
    only requests that carry ``front_token`` (the runtime front's), given in its environment."""
    from sagemaker.model import Model

    image = emulation_image(spec.server, reporter, build_missing=build_missing)
    reporter.step(f"local: serving image {image} (parity: {parity_line(spec.server)})")
    archive, env = served_model(spec.model_data, spec.environment, reporter.step, spec.server)
    staged = stage(archive)
    check_archive(staged)  # before the SDK unpacks it
    env = {**env, FRONT_TOKEN_ENV: front_token, **({VERSION_ENV: spec.server_version} if spec.server_version else {})}
    return Model(image_uri=image, model_data=staged.as_uri(), role=role, env=env, sagemaker_session=session,
                 name=spec.endpoint_name)
