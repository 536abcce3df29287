"""Where a ``process`` job finds ``/opt/ml``: its run folder mounted there in the job's own
namespaces (``emulation.container_paths``), as SageMaker's container shows it, or, where this
kernel does not allow that (or ``-o paths=mapped``), ``/opt/ml`` values mapped onto the run folder
in hyperparameters and ``SM_*`` variables, which literal paths in a script do not follow."""

from __future__ import annotations

import sys
from pathlib import Path

from sagetwin.core.errors import ConfigurationError
from sagetwin.core.progress import Reporter
from sagetwin.emulation import container_paths
from sagetwin.emulation.contract import CURRENT_HOST, OPT_ML

SETTINGS = ("auto", "opt_ml", "mapped")
_said: set[str] = set()


def check_setting(paths: str) -> str:
    if paths not in SETTINGS:
        raise ConfigurationError(f"the process backend takes paths 'auto', 'opt_ml' or 'mapped', not {paths!r}.",
                                 "leave it out (auto: /opt/ml where the kernel allows it), or pass -o paths=mapped.")
    return paths


def at_opt_ml(paths: str, reporter: Reporter, near: Path | None = None) -> bool:
    """Whether a job whose run folder is in ``near`` sees it at /opt/ml; where it cannot, said once
    per process."""
    if paths == "mapped":
        return False
    ok, why = container_paths.available(str(near) if near else None)
    if ok:
        return True
    if paths == "opt_ml":
        raise ConfigurationError(f"this kernel does not let a job see its run folder at /opt/ml ({why}).",
                                 "run it on --backend local (a container has the real paths), or use -o paths=auto.")
    if "said" not in _said:
        _said.add("said")
        reporter.step(f"process: this kernel does not allow mount namespaces ({why}): /opt/ml is mapped onto the run "
                      "folder in hyperparameters and SM_* variables only, so a literal '/opt/ml/...' in a script "
                      "will not work here; --backend local gives the container's real paths.")
    return False


def namespace(run_folder: Path, state: Path, hosts: list[str] | None = None, host: str = CURRENT_HOST,
              python: str | None = None) -> tuple[str, ...]:
    """What ``processes.spawn(opt_ml=...)`` takes: ``run_folder`` at /opt/ml, /opt/ml/code the
    working folder, the job's hosts on loopback; ``python``'s virtual environment kept unchanged
    (what the job installs in it goes with the job, as a container's changes do)."""
    state.mkdir(mode=0o700)  # new for each run: nothing in it was placed by anyone else
    environment = virtual_environment(python) if python else None
    if environment:
        (state / container_paths.OVERLAYS_FILE).write_text(environment + "\n")
    return str(run_folder), str(state), host, ",".join(hosts or [host]), f"{OPT_ML}/code"


def virtual_environment(python: str) -> str | None:
    """The virtual environment ``python`` runs in, if it is one (a system Python installs
    elsewhere than its prefix, e.g. Debian's /usr/local: left alone)."""
    if Path(python).absolute() == Path(sys.executable).absolute():
        return sys.prefix if sys.prefix != sys.base_prefix else None
    prefix = Path(python).absolute().parent.parent
    return str(prefix.resolve()) if (prefix / "pyvenv.cfg").is_file() else None

