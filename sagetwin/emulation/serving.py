"""The Hugging Face inference contract, served on 127.0.0.1 with the toolkit's own handler.

The cloud container runs multi-model-server with ``HuggingFaceHandlerService`` from the
sagemaker-huggingface-inference-toolkit. Here the same handler class runs behind a small
HTTP server with MMS's routes and error shape (``GET /ping``, ``POST /invocations``,
client errors as HTTP 400 with a JSON body), so task inference, content types and
``code/inference.py`` overrides behave exactly as on SageMaker.

Run as ``python -m sagetwin.emulation.serving --model-dir DIR --port N``.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import queue
import sys
import threading
import traceback
from typing import Any

from sagetwin.emulation.http_server import PredictionError, ServerState, announce_port, make_server

log = logging.getLogger("sagetwin.serving")

ARCHITECTURE_SUFFIX_TO_TASK = {  # what the toolkit infers; kept here for `sagetwin check` messages
    "ForSequenceClassification": "text-classification",
    "ForTokenClassification": "token-classification",
    "ForQuestionAnswering": "question-answering",
    "ForMaskedLM": "fill-mask",
    "ForCausalLM": "text-generation",
    "ForConditionalGeneration": "text2text-generation",
}


def _ensure_toolkit_compat() -> None:
    """transformers 5 dropped ``file_utils.is_tf_available``, which toolkit 2.x imports."""
    import transformers.file_utils as file_utils

    if not hasattr(file_utils, "is_tf_available"):
        file_utils.is_tf_available = lambda: False  # TensorFlow support is gone in transformers 5


class _RequestProcessor:
    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def get_request_properties(self) -> dict[str, str]:
        return self._headers


class _Metrics:
    def add_time(self, name: str, value: float, *args: Any, **kwargs: Any) -> None:
        log.debug("%s: %s ms", name, value)


class ModelServerContext:
    """The subset of MMS's ``Context`` that the toolkit's handler reads."""

    def __init__(self, model_dir: str, headers: dict[str, str] | None = None) -> None:
        self.system_properties = {"model_dir": model_dir, "gpu_id": 0, "batch_size": 1}
        self.request_processor = [_RequestProcessor(headers or {})]
        self.metrics = _Metrics()
        self.response_content_type: str | None = None

    def set_response_content_type(self, index: int, content_type: str) -> None:
        self.response_content_type = content_type


class FifoLock:
    """A lock granted in arrival order, as MMS's request queue serves a worker's requests.
    ``threading.Lock`` wakes an arbitrary waiter: under 16 concurrent clients some requests were
    passed over again and again, which stretched the slowest 1% (p99) well past the queue's length."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._waiting: collections.deque[threading.Event] = collections.deque()
        self._held = False

    def __enter__(self) -> FifoLock:
        with self._guard:
            if not self._held:
                self._held = True
                return self
            turn = threading.Event()
            self._waiting.append(turn)
        turn.wait()  # the holder hands the lock over directly: nobody can take it in between
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._guard:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._held = False


class ToolkitHandler:
    """Loads a model directory with the toolkit's handler and answers invocations."""

    def __init__(self, model_dir: str) -> None:
        _ensure_toolkit_compat()
        from sagemaker_huggingface_inference_toolkit.handler_service import HuggingFaceHandlerService

        self.model_dir = model_dir
        self.service = HuggingFaceHandlerService()
        self.service.initialize(ModelServerContext(model_dir))
        self._lock = FifoLock()  # MMS runs one request at a time per worker, in the order they came

    def invoke(self, body: bytes, headers: dict[str, str]) -> tuple[bytes, str]:
        """Return (response body, content type); raise PredictionError for client errors."""
        from mms.service import PredictionException

        context = ModelServerContext(self.model_dir, headers)
        try:
            with self._lock:
                self.service.context = context
                result = self.service.handle([{"body": body}], context)
        except PredictionException as exc:
            raise PredictionError(exc.message, exc.error_code) from exc
        payload = result[0]
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        return bytes(payload), context.response_content_type or "application/json"


class HandlerPool:
    """``SAGEMAKER_MODEL_SERVER_WORKERS`` handlers, as MMS runs that many workers on the DLC: each
    loads the model and answers one request at a time; a request waits for a free one."""

    def __init__(self, model_dir: str, workers: int) -> None:
        self.handlers = [ToolkitHandler(model_dir) for _ in range(workers)]
        self.service = self.handlers[0].service
        self._free: queue.SimpleQueue[ToolkitHandler] = queue.SimpleQueue()
        for handler in self.handlers:
            self._free.put(handler)

    def invoke(self, body: bytes, headers: dict[str, str]) -> tuple[bytes, str]:
        handler = self._free.get()
        try:
            return handler.invoke(body, headers)
        finally:
            self._free.put(handler)


def worker_count() -> int:
    """``SAGEMAKER_MODEL_SERVER_WORKERS`` (default 1, as sagetwin's local images default it)."""
    raw = os.environ.get("SAGEMAKER_MODEL_SERVER_WORKERS", "1").strip() or "1"
    try:
        workers = int(raw)
    except ValueError:
        raise SystemExit(f"sagetwin-serving: SAGEMAKER_MODEL_SERVER_WORKERS={raw!r} is not a whole number; "
                         "set it to 1 or more.") from None
    if workers < 1:
        raise SystemExit(f"sagetwin-serving: SAGEMAKER_MODEL_SERVER_WORKERS={workers} must be 1 or more.")
    return workers


def serve(model_dir: str, host: str, port: int, port_file: str | None = None) -> None:
    """Bind first (so /ping answers 503 while loading), then load the model and serve; the port
    bound goes to ``port_file``."""
    state = ServerState()
    server = make_server(host, port, state)
    bound_port = announce_port(server, port_file)
    print(f"sagetwin-serving: listening on http://{host}:{bound_port}", flush=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        workers = worker_count()
        state.handler = ToolkitHandler(model_dir) if workers == 1 else HandlerPool(model_dir, workers)
    except Exception as exc:
        state.load_error = f"model failed to load: {type(exc).__name__}: {exc}"
        traceback.print_exc()
        print(f"sagetwin-serving: {state.load_error}", file=sys.stderr, flush=True)
        server.shutdown()
        raise SystemExit(3) from None
    device = getattr(getattr(state.handler.service, "model", None), "device", "custom model_fn")
    print(f"sagetwin-serving: model loaded on {device}, ready", flush=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a model folder with the HF inference toolkit handler.")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0: any free port, reported in --port-file")
    parser.add_argument("--port-file", help="write the bound port here once listening")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("SAGETWIN_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve(args.model_dir, args.host, args.port, args.port_file)


if __name__ == "__main__":
    main()
