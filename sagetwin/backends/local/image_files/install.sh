#!/bin/sh
# Installs the image's Python packages from the wheelhouse mounted at /wheelhouse, with no network:
# the one step of a sagetwin image build that runs inside the image.
set -eu
python3 -m venv /opt/venv
/opt/venv/bin/pip install --no-index --no-cache-dir --find-links /wheelhouse -r /wheelhouse/requirements.txt
if [ -f /tmp/sagetwin-files/dockerd-entrypoint.py ]; then
    install -m 0755 /tmp/sagetwin-files/dockerd-entrypoint.py /usr/local/bin/dockerd-entrypoint.py
fi
mkdir -p /opt/ml/code
# the bytecode pip compiled stays: without it every start recompiles torch and transformers (seconds)
