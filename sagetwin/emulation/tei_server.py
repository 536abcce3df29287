"""A Text Embeddings Inference container's HTTP side on 127.0.0.1, emulated (``tei``):
SageMaker's ``POST /invocations`` and TEI's ``/embed``, on ``router_server``.

    python -m sagetwin.emulation.tei_server --model-dir DIR [--host H] [--port P] [--port-file F]
"""

from __future__ import annotations

from typing import Any

from sagetwin.emulation import router_server
from sagetwin.emulation.tei import EMULATED_VERSION, Embedder


class TeiHandler(router_server.RouterHandler):
    unhealthy, failed = "Unhealthy", ("Backend", 424)  # TEI's ErrorType names and statuses

    def info(self) -> dict[str, Any]:
        embedder: Embedder = self.state.model
        return {"model_id": embedder.model_id, "model_type": {"embedding": {"pooling": embedder.pooling}},
                "max_input_length": embedder.max_input_length, "max_client_batch_size": embedder.max_batch,
                "version": EMULATED_VERSION}

    def route(self, path: str, payload: dict[str, Any]) -> None:
        if path not in ("/invocations", "/embed"):
            self._json(404, {"error": f"no route POST {path}", "error_type": "not_found"})
            return
        embedder: Embedder = self.state.model
        self._json(200, embedder.embed(payload.get("inputs"), normalize=payload.get("normalize", True) is not False,
                                       truncate=bool(payload.get("truncate"))))


def main(argv: list[str] | None = None) -> None:
    router_server.main(argv, "sagetwin-tei", f"emulating TEI {EMULATED_VERSION}'s HTTP contract", TeiHandler, Embedder)


if __name__ == "__main__":
    main()
