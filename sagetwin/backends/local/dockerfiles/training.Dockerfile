# sagetwin training image: the Hugging Face training DLC's contract on a CPU (or GPU) host.
# `train` is the sagemaker-training toolkit's console script, exactly as in the DLC.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY wheelhouse /tmp/wheelhouse
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --no-cache-dir --find-links /tmp/wheelhouse -r /tmp/wheelhouse/requirements.txt \
 && rm -rf /tmp/wheelhouse
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_DISABLE_TELEMETRY=1
WORKDIR /opt/ml/code
LABEL org.sagetwin.scope=training
