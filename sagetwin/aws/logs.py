"""A job's log, shipped to the twin's CloudWatch Logs as it is produced, where the SDK's
``fit()`` reads it exactly as it reads a cloud job's (``/aws/sagemaker/TrainingJobs``,
stream ``<job>/algo-N-<timestamp>`` per host)."""

from __future__ import annotations

import queue
import sys
import threading
import time
from typing import Any

from sagetwin.core.host_lines import FIRST_HOST, host_and_text

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
METRICS_NAMESPACE = "/aws/sagemaker/TrainingJobs"  # CloudWatch metrics of MetricDefinitions
BATCH_INTERVAL_S = 0.5  # as often as the SDK polls the log: each batch is a request the job competes with
MAX_BATCH = 5000  # PutLogEvents takes at most 10,000 events


class LogShipper:
    """Lines in, batched ``PutLogEvents`` out, from one background thread."""

    def __init__(self, client: Any, group: str, stream: str) -> None:
        self.client, self.group, self.stream = client, group, stream
        self._lines: queue.Queue[tuple[int, str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._ship, name=f"logs {stream}", daemon=True)

    def start(self) -> LogShipper:
        try:
            self.client.create_log_group(logGroupName=self.group)
        except self.client.exceptions.ResourceAlreadyExistsException:
            pass
        self.client.create_log_stream(logGroupName=self.group, logStreamName=self.stream)
        self._thread.start()
        return self

    def write(self, line: str) -> None:
        self._lines.put((int(time.time() * 1000), line.rstrip("\n") or " "))

    def close(self) -> None:
        """Ship what is left and stop; the SDK sees every line before the job's final status."""
        self._lines.put(None)
        self._thread.join(timeout=30)

    def _ship(self) -> None:
        done = False
        while not done:
            batch: list[dict[str, Any]] = []
            deadline = time.monotonic() + BATCH_INTERVAL_S
            while len(batch) < MAX_BATCH:
                try:
                    item = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    done = True
                    break
                batch.append({"timestamp": item[0], "message": item[1]})
            if batch:
                try:
                    self.client.put_log_events(logGroupName=self.group, logStreamName=self.stream, logEvents=batch)
                except Exception as exc:  # one refused batch must not silence the rest of the log
                    print(f"sagetwin aws: {len(batch)} log lines of {self.stream} were not stored: {exc}",
                          file=sys.stderr)


class HostLogs:
    """A job's log with one stream per host, ``<job>/algo-N-<start>`` as SageMaker names them:
    lines tagged ``algo-2 | text`` (``core.host_lines``) go to algo-2's stream without the tag,
    untagged lines to algo-1's. ``write`` and ``close`` as ``LogShipper``'s."""

    def __init__(self, client: Any, group: str, job_name: str, started: float) -> None:
        self.client, self.group, self.prefix, self.started = client, group, job_name, int(started)
        self._shippers: dict[str, LogShipper] = {}
        self._lock = threading.Lock()
        self._shipper(FIRST_HOST)  # the stream the SDK waits for exists from the job's start

    def _shipper(self, host: str) -> LogShipper:
        with self._lock:
            if host not in self._shippers:
                self._shippers[host] = LogShipper(self.client, self.group,
                                                  f"{self.prefix}/{host}-{self.started}").start()
            return self._shippers[host]

    def write(self, line: str) -> str:
        """Ship ``line`` to its host's stream; returns the line as the host wrote it."""
        host, text = host_and_text(line)
        self._shipper(host).write(text)
        return text

    def close(self) -> None:
        for shipper in list(self._shippers.values()):
            shipper.close()
