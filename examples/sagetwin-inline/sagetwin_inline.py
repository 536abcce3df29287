"""``inline``: an example third-party sagetwin backend.

It trains by running the entry point inside the calling Python process (under the same
SageMaker contract the ``process`` backend uses) and serves with the inference toolkit's
handler called directly, without HTTP. Breakpoints in ``train.py`` and ``inference.py``
therefore just work. It registers through the ``sagetwin`` entry-point group, exactly as
the built-in backends register through ``sagetwin_register_backends``.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
import time
import traceback
from pathlib import Path

from sagetwin import hookimpl
from sagetwin.core.backend import Check
from sagetwin.core.errors import InvocationError, TrainingError
from sagetwin.core.paths import home_dir
from sagetwin.core.progress import Reporter
from sagetwin.core.spec import DeploySpec, TrainingResult, TrainingSpec
from sagetwin.emulation import contract
from sagetwin.emulation.artifacts import local_model_archive, package_outputs, read_metrics, unpack_model


@hookimpl
def sagetwin_register_backends(register):
    register(InlineBackend)


@hookimpl
def sagetwin_register_commands(subparsers):
    runs = subparsers.add_parser("inline-runs", help="list the training runs of the inline backend")
    runs.set_defaults(func=_list_runs)


def _list_runs(args) -> int:
    root = InlineBackend().work_dir / "runs"
    names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    print("\n".join(names) if names else f"no inline runs under {root}")
    return 0


@contextlib.contextmanager
def _as_script(env: dict[str, str], argv: list[str], cwd: Path):
    """Run with the given environment, argv and working directory; restore them afterwards."""
    saved_env, saved_argv, saved_cwd, saved_path = dict(os.environ), sys.argv[:], os.getcwd(), sys.path[:]
    os.environ.update(env)
    sys.argv = argv
    sys.path.insert(0, str(cwd))
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        sys.argv, sys.path[:] = saved_argv, saved_path
        os.environ.clear()
        os.environ.update(saved_env)


class InlineBackend:
    name = "inline"
    description = "example plugin: train and serve inside this Python process (debugger-friendly)"
    # no auto_priority: `auto` never chooses it, since it shares the caller's process

    def __init__(self, work_dir: str | None = None) -> None:
        self.work_dir = Path(work_dir) if work_dir else home_dir() / "inline"

    @classmethod
    def availability(cls) -> Check:
        return Check(True, "runs inside the calling Python process")

    def fit(self, spec: TrainingSpec, reporter: Reporter) -> TrainingResult:
        run_dir = self.work_dir / "runs" / spec.job_name
        run = contract.prepare_run(spec, run_dir / "opt_ml")
        script = run.folder.code_dir / spec.entry_point
        reporter.step(f"inline: running {spec.entry_point} {' '.join(run.args)} in this process")
        started = time.monotonic()
        try:
            with _as_script(run.env, [str(script), *run.args], run.folder.code_dir):
                runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exc:
            if exc.code not in (None, 0):
                raise TrainingError(f"{spec.entry_point} exited with {exc.code!r}.", "see the output above.",
                                    exit_code=exc.code if isinstance(exc.code, int) else 1) from None
        except Exception as exc:
            raise TrainingError(f"{spec.entry_point} raised {type(exc).__name__}: {exc}",
                                "see the traceback below.", exit_code=1,
                                log_tail=traceback.format_exc(limit=-5)) from exc
        model_data, output_data = package_outputs(run.folder.model_dir, run.folder.output_data_dir,
                                                  run_dir / "output")
        return TrainingResult(spec.job_name, self.name, model_data, read_metrics(run.folder.output_data_dir),
                              output_data, time.monotonic() - started, {"run_dir": str(run_dir)})

    def deploy(self, spec: DeploySpec, reporter: Reporter) -> InlineEndpoint:
        from sagetwin.emulation.serving import ToolkitHandler

        model_dir = unpack_model(local_model_archive(spec.model_data),
                                 self.work_dir / "endpoints" / spec.endpoint_name / "model")
        with _as_script(spec.environment, sys.argv[:], Path.cwd()):
            handler = ToolkitHandler(str(model_dir))
        return InlineEndpoint(spec.endpoint_name, handler)


class InlineEndpoint:
    def __init__(self, name: str, handler) -> None:
        self.name = name
        self.handler = handler

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        from sagetwin.emulation.serving import PredictionError

        try:
            return self.handler.invoke(body, {"Content-Type": content_type, "Accept": accept})
        except PredictionError as exc:
            raise InvocationError(f"endpoint {self.name} answered {exc.status}: {exc.message}",
                                  'send JSON such as {"inputs": "text"}.', status=exc.status,
                                  body=exc.message) from None

    def delete(self) -> None:
        self.handler = None
