"""A local-mode endpoint: the serving container behind a runtime front on 127.0.0.1:port, and what
deleting it removes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sagetwin.backends.local.containers import remove_containers, remove_network
from sagetwin.backends.local.sdk_folders import remove_folders_of_run
from sagetwin.core.errors import ConfigurationError
from sagetwin.emulation.http_endpoint import LocalHttpEndpoint
from sagetwin.emulation.processes import choose_port
from sagetwin.emulation.runtime_front import RuntimeFront
from sagetwin.sagemaker_sdk.boto import delete_endpoint_resources

DEFAULT_SERVING_PORT = 8080  # the SDK's local mode default

# how much longer the client waits than the front waits for the container: the front's answer
# (SageMaker's timeout message) arrives first
CLIENT_GRACE_S = 5.0


def open_front(requested: int | None, container_port: int, timeout: float) -> RuntimeFront:
    """The endpoint's address, listening: the requested port (a clear error if taken), else 8080
    as in SDK local mode, else any free port."""
    if requested:
        return RuntimeFront("127.0.0.1", choose_port(requested, "127.0.0.1"), container_port, timeout)
    try:
        return RuntimeFront("127.0.0.1", DEFAULT_SERVING_PORT, container_port, timeout)
    except ConfigurationError:  # 8080 is often taken (a notebook server, another endpoint)
        return RuntimeFront("127.0.0.1", 0, container_port, timeout)


class LocalEndpoint(LocalHttpEndpoint):
    """The serving container of one deploy, known by its run id."""

    def __init__(self, name: str, front: RuntimeFront, session: Any, timeout: float, *, run_id: str,
                 work_dir: Path, image: str) -> None:
        super().__init__(name, front.host, front.port, log_hint="see `docker logs` of the serving container.",
                         timeout=timeout + CLIENT_GRACE_S)
        self.front = front  # what clients call: the container's own port is published for the front only
        self.session = session
        self.run_id, self.work_dir, self.image = run_id, work_dir, image
        # what deploying started, removed on delete; nothing else: other endpoints may share the image
        self.containers: set[str] = set()

    def _release(self) -> None:
        """Remove the serving container first (MMS ignores SIGTERM, so compose's graceful stop would
        wait 10 s for nothing), then let the SDK's local client forget the endpoint and its compose run,
        and remove the folder the SDK made for it."""
        self.front.close()
        remove_containers(self.containers)
        delete_endpoint_resources(self.session.sagemaker_client, self.name, missing_ok=lambda exc: True)
        remove_network()
        remove_folders_of_run(self.work_dir, self.run_id, self.image)

    def delete_after(self, original: BaseException) -> None:
        """Delete after a failed start; if that fails too, the start's error stays the one raised."""
        try:
            self.delete()
        except Exception as exc:  # the engine gone, say: said as a note on the error that explains why
            original.add_note(f"sagetwin: also, endpoint {self.name} could not be removed: {exc}")
