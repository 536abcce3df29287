"""pytest plugin: test your own train/deploy/predict code offline, on any sagetwin backend.

Installed with sagetwin (entry point ``pytest11``). Choose the backend with
``--sagetwin-backend NAME`` (default ``process``; ``local`` for Docker, ``sagemaker`` for
AWS or an emulation of it). Fixtures:

- ``sagetwin_backend``: the backend name under test;
- ``sagetwin_tiny_model``: a tiny offline BERT (``.hyperparameter`` for ``model_name``,
  ``.channels()`` to ship it as the ``model`` channel);
- ``sagetwin_sample_data``: small tokenized ``train``/``test`` channels;
- ``sagetwin_channels``: both of the above, ready for ``job.fit(...)``;
- ``sagetwin_endpoint``: ``sagetwin_endpoint(job)`` deploys and returns a Predictor that is
  always deleted when the test ends, pass or fail;
- ``sagetwin_aws``: an AWS twin for one test (``sagetwin.aws.start(backend=<the backend>)``), with
  this process's AWS clients pointed at it: SageMaker SDK code under test runs unchanged;
- ``sagetwin_register_plugin``: ``sagetwin_register_plugin(plugin)`` registers a plugin object
  (a module or an instance with ``@sagetwin.hookimpl`` methods) for this test only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REQUIRE_FLAGS = ("SAGETWIN_REQUIRE_BACKEND", "SAGETWIN_REQUIRE_DOCKER")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sagetwin")
    group.addoption("--sagetwin-backend", default=os.environ.get("SAGETWIN_TEST_BACKEND", "process"),
                    help="sagetwin backend the sagetwin_* fixtures use (default: process)")
    group.addoption("--sagetwin-train-size", type=int, default=64, help="examples in sagetwin_sample_data")
    group.addoption("--sagetwin-allow-billed", action="store_true",
                    help="let the tests launch what a paid backend bills (e.g. sagemaker's training jobs and "
                         "endpoints); each launch reports its plan and worst-case cost")


def pytest_report_header(config: pytest.Config) -> str | None:
    """The backend under test, and for a paid one what its launches cost, before any test runs."""
    from sagetwin.core.backend import Plans
    from sagetwin.core.plugins import get_backend_entry

    name = config.getoption("--sagetwin-backend")
    try:
        entry = get_backend_entry(name)
    except Exception:
        return None  # an unknown name is reported by the sagetwin_backend fixture, with the installed ones
    if not isinstance(entry.cls, Plans):
        return f"sagetwin: backend {name}"
    if against_the_twin():
        twin = os.environ['SAGETWIN_AWS_ENDPOINT']
        return f"sagetwin: backend {name}, against the AWS twin at {twin} (nothing billed)"
    allowed = "allowed (--sagetwin-allow-billed)" if config.getoption("--sagetwin-allow-billed") else \
        "not allowed: tests that use it fail until --sagetwin-allow-billed is given"
    return f"sagetwin: backend {name} launches billed resources; {allowed}"


def against_the_twin() -> bool:
    """AWS calls go to sagetwin's AWS twin on this machine (`sagetwin exec`, `sagetwin aws`): nothing bills."""
    endpoint = os.environ.get("SAGETWIN_AWS_ENDPOINT", "")
    return bool(endpoint) and os.environ.get("AWS_ENDPOINT_URL") == endpoint


@pytest.fixture(scope="session")
def sagetwin_backend(request: pytest.FixtureRequest) -> str:
    """The backend name under test; unknown names fail with the list of installed backends."""
    from sagetwin.core.plugins import get_backend_entry

    name = request.config.getoption("--sagetwin-backend")
    entry = get_backend_entry(name)
    availability = entry.availability()
    if not availability.usable:
        message = f"sagetwin backend {name!r} cannot run here: {availability.reason}"
        if any(os.environ.get(flag) == "1" for flag in REQUIRE_FLAGS):
            pytest.fail(f"{message} (and {' or '.join(REQUIRE_FLAGS)} is 1: a CI that means to test it must not "
                        "skip silently)", pytrace=False)
        pytest.skip(message)
    from sagetwin.core.backend import Plans

    if isinstance(entry.cls, Plans) and not (request.config.getoption("--sagetwin-allow-billed") or against_the_twin()):
        pytest.fail(f"sagetwin backend {name!r} launches billed resources (training jobs and endpoints, each with "
                    "its plan and worst-case cost in the test's log); pass --sagetwin-allow-billed once that is what "
                    "you want, or run the tests against the AWS twin: `sagetwin exec --backend process -- pytest ...`",
                    pytrace=False)
    return name


@pytest.fixture(scope="session")
def sagetwin_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private SAGETWIN_HOME for the session unless the person set one (then caches are shared);
    the environment is given back as it was when the session ends."""
    if os.environ.get("SAGETWIN_HOME"):
        yield Path(os.environ["SAGETWIN_HOME"])
        return
    home = tmp_path_factory.mktemp("sagetwin-home")
    os.environ["SAGETWIN_HOME"] = str(home)
    try:
        yield home
    finally:
        os.environ.pop("SAGETWIN_HOME", None)


@pytest.fixture(scope="session")
def sagetwin_tiny_model(sagetwin_home: Path) -> Any:
    from sagetwin.guide.data import resolve_model

    return resolve_model("tiny")


@pytest.fixture(scope="session")
def sagetwin_sample_data(sagetwin_tiny_model: Any, request: pytest.FixtureRequest) -> dict[str, str]:
    from sagetwin.guide.data import prepare_datasets

    size = request.config.getoption("--sagetwin-train-size")
    return prepare_datasets("sample", sagetwin_tiny_model.tokenizer_source, train_size=size,
                            test_size=max(8, size // 4))


@pytest.fixture(scope="session")
def sagetwin_channels(sagetwin_sample_data: dict[str, str], sagetwin_tiny_model: Any) -> dict[str, str]:
    return {**sagetwin_sample_data, **sagetwin_tiny_model.channels()}


@pytest.fixture
def sagetwin_endpoint() -> Iterator[Callable[..., Any]]:
    """Deploy with ``sagetwin_endpoint(job, **deploy_kwargs)``; every endpoint is deleted afterwards."""
    created: list[Any] = []

    def deploy(job: Any, **kwargs: Any) -> Any:
        predictor = job.deploy(**kwargs)
        created.append(predictor)
        return predictor

    yield deploy
    failures = []
    for predictor in created:  # every one, even when deleting an earlier one failed
        if not predictor.deleted:
            try:
                predictor.delete_endpoint()
            except Exception as exc:
                failures.append(exc)
    if failures:
        for later in failures[1:]:
            failures[0].add_note(f"sagetwin: another endpoint could not be deleted either: {later}")
        raise failures[0]


@pytest.fixture
def sagetwin_register_plugin() -> Iterator[Callable[..., Any]]:
    """Register plugin objects on sagetwin's plugin manager for one test; always unregistered after,
    so a plugin author tests a backend or hook without installing the package."""
    from sagetwin.core.plugins import get_plugin_manager

    pm = get_plugin_manager()
    added: list[Any] = []

    def register(plugin: Any, name: str | None = None) -> Any:
        pm.register(plugin, name=name)
        added.append(plugin)
        return plugin

    yield register
    for plugin in reversed(added):
        if pm.is_registered(plugin):
            pm.unregister(plugin)


@pytest.fixture
def sagetwin_aws(sagetwin_backend: str, sagetwin_home: Path) -> Iterator[Any]:
    """The SageMaker, S3, STS, IAM and CloudWatch Logs APIs on 127.0.0.1 for this test, jobs and
    endpoints run by the backend under test; everything it started is stopped afterwards."""
    import sagetwin.aws

    with sagetwin.aws.start(backend=sagetwin_backend, persist=False) as twin:
        yield twin
