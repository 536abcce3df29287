"""What a `process` job's own /opt/ml costs at its start: the same job with its run folder seen at
/opt/ml in its own namespaces (``-o paths=opt_ml``) and with /opt/ml mapped onto the run folder
(``-o paths=mapped``), alternating, in the same run. Measured from ``fit()`` being called to the
script's first line of output reaching the reporter (a script that prints at once and exits), and
for the bare command: ``python -c 'print(1)'`` started under the lifeline with and without the namespace.

Usage: python bench/bench_opt_ml.py [--rounds 20] [--json bench/results/opt_ml.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sagetwin  # noqa: E402
from sagetwin.backends.process.opt_ml import namespace  # noqa: E402
from sagetwin.core.progress import SilentReporter  # noqa: E402
from sagetwin.emulation.processes import spawn  # noqa: E402

SCRIPT = "print('first line', flush=True)\n"


class FirstLine(SilentReporter):
    def __init__(self) -> None:
        self.at: float | None = None

    def log(self, line: str) -> None:
        if self.at is None and line.startswith("first line"):
            self.at = time.perf_counter()


def job_start_s(source: Path, work: Path, paths: str) -> float:
    reporter = FirstLine()
    job = sagetwin.HuggingFaceJob("train.py", source_dir=source, backend="process", reporter=reporter,
                                  backend_options={"work_dir": str(work), "paths": paths})
    started = time.perf_counter()
    job.fit()
    assert reporter.at is not None
    return reporter.at - started


def command_start_s(scratch: Path, wrapped: bool, index: int) -> float:
    """``python -c 'print(1)'`` as a backend starts it (under its lifeline), in the namespace or not."""
    paths: tuple[str, ...] = ()
    if wrapped:
        run = scratch / f"run-{index}"
        (run / "code").mkdir(parents=True)
        paths = namespace(run, scratch / f"state-{index}")
    started = time.perf_counter()
    proc = spawn([sys.executable, "-c", "print(1, flush=True)"], opt_ml=paths)
    assert proc.stdout is not None
    proc.stdout.readline()
    seconds = time.perf_counter() - started
    proc.wait()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        source = scratch / "source"
        source.mkdir()
        (source / "train.py").write_text(SCRIPT)
        job = {"opt_ml": [], "mapped": []}
        bare = {"wrapped": [], "plain": []}
        for paths in ("opt_ml", "mapped"):  # warm-up of both (imports, page cache): not counted
            job_start_s(source, scratch / "work", paths)
        for index in range(args.rounds):
            for paths in ("opt_ml", "mapped") if index % 2 == 0 else ("mapped", "opt_ml"):
                job[paths].append(job_start_s(source, scratch / "work", paths))
            for wrapped in (True, False) if index % 2 == 0 else (False, True):
                bare["wrapped" if wrapped else "plain"].append(command_start_s(scratch, wrapped, index))
    ms = {name: round(statistics.median(values) * 1000, 1) for name, values in {**job, **bare}.items()}
    report = {"rounds": args.rounds, "median_ms": ms,
              "job_start_added_ms": round(ms["opt_ml"] - ms["mapped"], 1),
              "command_start_added_ms": round(ms["wrapped"] - ms["plain"], 1), "target": "<= 50 ms added"}
    print(json.dumps(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
