"""Readiness of a local serving container from its log, and the SDK config validation remembered;
no Docker needed: the log follower runs a stand-in command."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import jsonschema
import pytest

from sagetwin.backends.local import readiness as local_serving
from sagetwin.backends.local.readiness import EXITED, FAILED, LOADED, ContainerLogWatch
from sagetwin.sagemaker_sdk import sdk as _aws

# Prints the lines of the file named by the last argument, one every 10 ms, like `docker logs -f ID`.
PRINT_FILE = [sys.executable, "-c",
              "import sys, time\nfor line in open(sys.argv[1]):\n    print(line, end='', flush=True); time.sleep(0.01)"]
MMS_START = ("Model server started.\n"
             "[INFO ] W-9000-model-stdout com.amazonaws.ml.mms.wlm.WorkerLifeCycle - MMS worker started.\n")


def log_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "container.log"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("log", "status", "outcome"), [
    pytest.param(MMS_START + "[INFO ] W-9000-model-stdout - Model model loaded io_fd=0242acfffe\n"
                             "[INFO ] ACCESS_LOG - /172.18.0.1 \"GET /ping HTTP/1.1\" 200 24\n",
                 "running", LOADED, id="model-loaded-line-means-ready"),
    pytest.param(MMS_START + "[WARN ] W-9000-model-stderr - OSError: no file named model.safetensors\n"
                             "[INFO ] W-9000-model - Backend worker process died.\n",
                 "running", FAILED, id="failed-load-is-reported-not-waited-for"),
    pytest.param("Traceback (most recent call last):\nModuleNotFoundError: No module named 'torch'\n",
                 "exited", EXITED, id="container-that-stops-before-loading"),
])
def test_log_outcome(tmp_path: Path, log: str, status: str, outcome: str):
    watch = ContainerLogWatch(log_file(tmp_path, log), follow=PRINT_FILE, status=lambda cid: status)
    assert watch.wait(10) == outcome
    watch.close()


def test_container_created_but_not_started_is_followed_again(tmp_path: Path):
    """`docker logs -f` returns at once for a created container; the watch follows again once it runs."""
    log = Path(log_file(tmp_path, ""))
    statuses = iter(["created", "running"])

    def status(cid: str) -> str:
        state = next(statuses, "running")
        if state == "running":
            log.write_text(MMS_START + "Model model loaded io_fd=1\n")
        return state

    watch = ContainerLogWatch(str(log), follow=PRINT_FILE, status=status)
    assert watch.wait(10) == LOADED
    watch.close()


def test_close_stops_following(tmp_path: Path):
    sleeper = [sys.executable, "-c", "import time; print('starting', flush=True); time.sleep(60)"]
    watch = ContainerLogWatch("abc", follow=sleeper, status=lambda cid: "running")
    assert watch.wait(0.3) is None
    watch.close()
    assert watch._process is not None and watch._process.poll() is not None


def test_compose_that_ends_without_a_container_fails_at_once():
    with pytest.raises(RuntimeError, match="docker compose exited before it created the serving container"):
        local_serving.wait_for_model(lambda: [], lambda: False, serving_port=1, timeout=600)


def test_tracebacks_of_adopted_compose_threads_are_dropped(monkeypatch):
    reported: list[threading.Thread] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: reported.append(args.thread))

    def compose_killed_on_delete() -> None:
        raise RuntimeError("Failed to run: docker-compose up. Process exited with code: -15")

    adopted = threading.Thread(target=compose_killed_on_delete)
    local_serving.adopt({adopted})
    other = threading.Thread(target=compose_killed_on_delete)
    for thread in (adopted, other):
        thread.start()
        thread.join()
    assert reported == [other]  # only the thread nobody adopted reaches the hook


def test_valid_config_is_validated_once_and_invalid_ones_still_raise():
    checked: list[dict] = []

    def validate(config):
        checked.append(config)
        jsonschema.validate(config, {"type": "object", "required": ["SchemaVersion"]})

    remembering = _aws.remember_valid_configs(validate)
    for _ in range(3):
        remembering({"SchemaVersion": "1.0", "SageMaker": {}})
    assert len(checked) == 1
    for _ in range(2):
        with pytest.raises(jsonschema.ValidationError):
            remembering({"SageMaker": {}})
    assert len(checked) == 3


def test_the_sdk_uses_the_remembering_validation():
    sdk = _aws.import_sdk()
    import sagemaker.local.local_session
    import sagemaker.utils

    assert sdk.utils.validate_sagemaker_config is sagemaker.local.local_session.validate_sagemaker_config
    assert hasattr(sagemaker.utils.validate_sagemaker_config, "__wrapped__")
    with pytest.raises(jsonschema.ValidationError):
        sagemaker.utils.validate_sagemaker_config({"SchemaVersion": "1.0", "NotAKey": 1})


def test_a_container_that_could_not_start_is_dead(monkeypatch):
    """A wrong entrypoint leaves the container "created" with an error, for ever."""
    import subprocess

    answers = {"ok": "running|0|", "pending": "created|0|",
               "broken": 'created|127|OCI runtime create failed: exec: "serve": executable file not found'}

    def inspect(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 0, answers[cmd[-1]] + "\n", "")

    monkeypatch.setattr(local_serving.subprocess, "run", inspect)
    assert [local_serving.container_status(c) for c in answers] == ["running", "created", "dead"]


def test_an_interrupt_the_sdk_swallows_is_raised_again():
    """SDK v2's telemetry wrapper returns from `finally:`, dropping a KeyboardInterrupt raised inside."""
    import os
    import signal

    def sdk_call() -> str:
        try:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the SDK works
            for _ in range(1000):
                signal.getsignal(signal.SIGINT)  # let the handler run
            return "never"
        finally:
            return "carried on"  # noqa: B012  (what the SDK's decorator does)

    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C's, as the CLI takes it back
    try:
        assert sdk_call() == "carried on"  # the SDK's behaviour, on its own
        with pytest.raises(KeyboardInterrupt):
            with _aws.interrupts_kept():
                sdk_call()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_the_sdk_leaves_the_root_logger_alone():
    import subprocess

    code = ("import logging, sys\nfrom sagetwin.sagemaker_sdk import sdk\nsdk.import_sdk()\n"
            "import sagemaker.experiments\nroot = logging.getLogger()\n"
            "print(len(root.handlers), logging.getLevelName(root.level))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "WARNING"]  # without root_logging_kept: ["1", "INFO"]
