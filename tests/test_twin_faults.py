"""A fault in the AWS side mid-training: the service (here the twin, moto underneath) stops
answering while the `sagemaker` backend follows a running job. Its own module: it starts and
stops a twin of its own, and only one runs per process."""

from __future__ import annotations

import pytest

from tests.test_aws_twin import VERSIONS, leftovers


@pytest.mark.slow
def test_the_service_lost_mid_training_names_the_job_its_cost_and_how_to_stop_it(sagetwin_home, tmp_path, monkeypatch,
                                                                                 no_leftover_processes):
    """A moto/twin fault mid-training: the service stops answering while the `sagemaker` backend
    follows a running job. Neither following nor StopTrainingJob can reach it; the error says the
    job may bill on, at what price, and the command that stops it. The twin's own job ends with it."""
    import threading
    import time

    import sagetwin
    import sagetwin.aws
    from sagetwin.aws.twin import Twin
    from sagetwin.core.progress import SilentReporter

    since = time.time() - 0.1
    (tmp_path / "train.py").write_text("import time\nprint('started', flush=True)\ntime.sleep(600)\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.txt").write_text("one\n")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # botocore's retries of a refused connection: seconds, not minutes
    twin = sagetwin.aws.start(backend="process", persist=False)
    pulled = threading.Event()

    def pull_the_plug() -> None:
        deadline = time.monotonic() + 120
        while not any(job.proc for job in twin.jobs.jobs.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        Twin.stop(twin)  # the service is gone; the client side still points at it
        pulled.set()

    try:
        job = sagetwin.HuggingFaceJob("train.py", source_dir=tmp_path, backend="sagemaker",
                                      role=twin.role_arn, reporter=SilentReporter(), **VERSIONS)
        threading.Thread(target=pull_the_plug, daemon=True).start()
        with pytest.raises(sagetwin.SagetwinError) as info:
            job.fit({"train": str(tmp_path / "data")})
    finally:
        twin.stop()
    assert pulled.is_set()
    text = str(info.value)
    assert "could not be reached" in text and "could not be stopped" in text and "bill at $3.825/h" in text, text
    assert "aws sagemaker stop-training-job --training-job-name huggingface-" in text
    assert not leftovers(since)
