# sagetwin inference image: multi-model-server (Java) with the Hugging Face inference toolkit's
# handler, started by `serve` exactly as in the DLC.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY wheelhouse /tmp/wheelhouse
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --no-cache-dir --find-links /tmp/wheelhouse -r /tmp/wheelhouse/requirements.txt \
 && rm -rf /tmp/wheelhouse
COPY dockerd-entrypoint.py /usr/local/bin/dockerd-entrypoint.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_DISABLE_TELEMETRY=1
EXPOSE 8080
LABEL org.sagetwin.scope=inference
ENTRYPOINT ["python3", "/usr/local/bin/dockerd-entrypoint.py"]
CMD ["serve"]
