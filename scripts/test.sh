#!/usr/bin/env bash
# Set up and run the test suite: a virtualenv with the project and its test extras, a Docker
# engine and the local images when this machine can have them, then pytest.
# With SAGETWIN_REQUIRE_DOCKER=1 (CI) a missing Docker engine is an error; otherwise the
# Docker tests are skipped with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check torch==2.13.0 -e ".[test]"

if bash scripts/docker-engine.sh; then
    # the default stack's images and the getting-started guide's (transformers 4.26, PyTorch 1.13, py39);
    # a no-op when they exist (tags are content-addressed)
    .venv/bin/sagetwin image build
    .venv/bin/sagetwin image build --transformers 4.26 --pytorch 1.13 --py py39
elif [ "${SAGETWIN_REQUIRE_DOCKER:-0}" = "1" ]; then
    echo "test.sh: SAGETWIN_REQUIRE_DOCKER=1 but no Docker engine could be started" >&2
    exit 1
else
    echo "test.sh: no Docker engine; the local-backend tests will be skipped"
fi

exec .venv/bin/python -m pytest "$@"
