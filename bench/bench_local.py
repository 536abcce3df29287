"""Benchmarks for the local backend, each against a baseline measured in the same run.

1. cold image build time (no sagetwin images; `--cold` removes them first) and a no-op rebuild
   (target <= 3 s);
2. `local` fit wall time / `process` fit wall time on the same tiny job;
3. `local` deploy time to first answer / the SDK's own local-mode deploy of the same artifact
   with the same image (target <= 15 s).

Usage: python bench/bench_local.py [--cold] [--json bench/results/local.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import sagetwin  # noqa: E402
from sagetwin.backends.local import images  # noqa: E402
from sagetwin.core.progress import SilentReporter  # noqa: E402
from sagetwin.guide.data import prepare_datasets, resolve_model  # noqa: E402

SAGETWIN = str(Path(sys.executable).with_name("sagetwin"))


def timed(cmd: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def bench_build(cold: bool) -> dict:
    result = {}
    if cold:
        tags = [images.recipe(s).tag for s in ("training", "inference")] + [images.recipe("training").base_tag]
        subprocess.run(["docker", "rmi", "-f", *tags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result["cold_build_s"] = timed([SAGETWIN, "image", "build"])
    result["noop_rebuild_s"] = timed([SAGETWIN, "image", "build"])
    result["target"] = "no-op rebuild <= 1 s"
    for scope in ("training", "inference"):
        rec = images.recipe(scope)
        size = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", rec.tag], capture_output=True,
                              text=True).stdout.strip()
        result[f"{scope}_image"] = {"tag": rec.tag, "size_gb": round(int(size or 0) / 1e9, 2),
                                    "parity": rec.parity_line()}
    return result


def job(backend: str, hps: dict) -> sagetwin.HuggingFaceJob:
    return sagetwin.HuggingFaceJob("train.py", source_dir=REPO / "train_scripts", hyperparameters=hps,
                                   backend=backend, reporter=SilentReporter())


def bench_fit(channels: dict[str, str], hps: dict) -> tuple[dict, str]:
    started = time.monotonic()
    job("process", hps).fit(channels)
    process_s = time.monotonic() - started
    started = time.monotonic()
    local = job("local", hps).fit(channels)
    local_s = time.monotonic() - started
    return {"local_fit_s": local_s, "process_fit_s": process_s, "ratio": local_s / process_s}, local.model_data


def bench_deploy(model_data: str, rounds: int = 3) -> dict:
    """Deploy → first answer, sagetwin and the SDK's own local mode (``wait=False``: like for like)
    alternating, ``rounds`` each; medians and ranges, since one container start varies by seconds here.
    Each sagetwin round is a new job, as a program's first deploy is. The SDK as people run it
    (``wait=True``, a 30 s sleep inside) is measured once."""
    ours: list[float] = []
    sdk: list[float] = []
    for round_ in range(rounds):
        for side in (("ours", "sdk") if round_ % 2 == 0 else ("sdk", "ours")):
            if side == "ours":
                started = time.monotonic()
                with job("local", {}).deploy(model_data=model_data) as predictor:
                    predictor.predict({"inputs": "a wonderful film"})
                    ours.append(time.monotonic() - started)
            else:
                sdk.append(sdk_deploy_to_first_answer(model_data, wait=False))
    as_people_run_it_s = sdk_deploy_to_first_answer(model_data, wait=True)
    sagetwin_s, like_for_like_s = statistics.median(ours), statistics.median(sdk)
    return {"sagetwin_deploy_to_first_answer_s": sagetwin_s, "sagetwin_rounds_s": ours,
            "sdk_wait_false_s": like_for_like_s, "sdk_wait_false_rounds_s": sdk,
            "ratio_like_for_like": sagetwin_s / like_for_like_s,
            "sdk_wait_true_s": as_people_run_it_s, "ratio_as_people_run_it": sagetwin_s / as_people_run_it_s,
            "target": "<= 15 s (median)"}


@contextlib.contextmanager
def sdk_as_shipped() -> Iterator[None]:
    """Undo sagetwin's one change to the SDK in this process (config validation remembered), so the
    baseline measures the SDK as people get it."""
    import importlib

    modules = [importlib.import_module(name) for name in ("sagemaker.config.config", "sagemaker.config",
                                                          "sagemaker.session", "sagemaker.utils",
                                                          "sagemaker.local.local_session")]
    patched = {m: m.validate_sagemaker_config for m in modules if hasattr(m.validate_sagemaker_config, "__wrapped__")}
    for module, function in patched.items():
        module.validate_sagemaker_config = function.__wrapped__
    try:
        yield
    finally:
        for module, function in patched.items():
            module.validate_sagemaker_config = function


def sdk_deploy_to_first_answer(model_data: str, *, wait: bool = True) -> float:
    """The baseline: the SDK's own local-mode deploy of the same artifact, same image, no sagetwin.
    ``wait=True`` is how people call it (a 30 s sleep before its first DescribeEndpoint);
    ``wait=False`` is like for like with sagetwin, which deploys that way."""
    with sdk_as_shipped():
        return _sdk_deploy_to_first_answer(model_data, wait)


def _sdk_deploy_to_first_answer(model_data: str, wait: bool) -> float:
    import boto3
    from sagemaker.huggingface import HuggingFaceModel
    from sagemaker.local import LocalSession

    from sagetwin.backends.local import backend as local
    from sagetwin.backends.local import containers
    from sagetwin.sagemaker_sdk import sdk as _aws

    session = LocalSession(boto_session=boto3.Session(region_name="us-east-1", aws_access_key_id="x",
                                                      aws_secret_access_key="x"),
                           default_bucket="bench-local", sagemaker_config=_aws.SDK_CONFIG)
    run_id, labels = containers.new_run_labels()
    session.config = {"local": {"local_code": True, "container_config": {"labels": labels}}}
    rec = images.recipe("inference")
    model = HuggingFaceModel(model_data=model_data, image_uri=rec.tag, role=local.LOCAL_ROLE,
                             transformers_version=rec.stack.transformers, pytorch_version=rec.stack.pytorch,
                             py_version=rec.stack.py, sagemaker_session=session, code_location="s3://bench-local/code")
    started = time.monotonic()
    predictor = model.deploy(1, "local", wait=wait)
    try:
        from sagemaker.deserializers import JSONDeserializer
        from sagemaker.serializers import JSONSerializer

        predictor.serializer, predictor.deserializer = JSONSerializer(), JSONDeserializer()
        predictor.predict({"inputs": "a wonderful film"})
        return time.monotonic() - started
    finally:
        predictor.delete_endpoint()
        containers.remove_containers(containers.our_containers(run_id))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cold", action="store_true", help="remove the images first and time a cold build")
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "local.json"))
    args = parser.parse_args()
    report: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    report["build"] = bench_build(args.cold)
    print(f"build: {json.dumps(report['build'])}")
    model = resolve_model("tiny")
    channels = {**prepare_datasets("sample", model.tokenizer_source, train_size=200, test_size=50),
                **model.channels()}
    hps = {"epochs": 1, "max_steps": 20, "train_batch_size": 16, "model_name": model.hyperparameter,
           "warmup_steps": 0}
    report["fit"], model_data = bench_fit(channels, hps)
    print(f"fit: {json.dumps(report['fit'])}")
    report["deploy"] = bench_deploy(model_data)
    print(f"deploy: {json.dumps(report['deploy'])}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
