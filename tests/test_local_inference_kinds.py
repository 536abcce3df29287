"""The inference cells beyond the guide through the twin on `local` (SDK local mode in the
DLC-parity image): custom code, batch transform, asynchronous endpoint and a Hub id answer as on
`process` — and the custom code answers the same through ``sagetwin.HuggingFaceModel``."""

from __future__ import annotations

import pytest

import sagetwin
from sagetwin.core.progress import SilentReporter
from tests.test_aws_twin import VERSIONS
from tests.test_local_backend import no_leftover_containers, require_docker  # noqa: F401 - fixture
from tests.test_twin_inference_kinds import check_kinds, files, run_kinds  # noqa: F401 - fixture

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def docker_engine():
    require_docker()


def test_the_sdks_inference_cells_run_through_the_twin_on_local(files, no_leftover_containers):  # noqa: F811
    result = run_kinds("local", files)
    check_kinds(result)
    model = sagetwin.HuggingFaceModel(model_data=str(files["custom"]), backend="local", reporter=SilentReporter(),
                                      **VERSIONS)
    with model.deploy() as predictor:
        direct = predictor.predict({"inputs": "a custom handler"})
    assert direct == result["custom"] == {"custom": "reldnah motsuc a"}  # the same answer as on process
