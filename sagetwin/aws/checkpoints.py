"""``CheckpointConfig`` carried out as SageMaker does it: what is under ``S3Uri`` is copied into the
job's checkpoint folder before the script starts (a restarted or second job resumes from it),
and files the script writes there reach ``S3Uri`` while it runs — new and changed ones, checked
every second, and deletions — and once more when it ends, however it ends."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

from sagetwin.aws.s3 import MissingData, download_prefix, split_uri

SYNC_EVERY_S = 1.0
DEFAULT_LOCAL_PATH = "/opt/ml/checkpoints"


class CheckpointSync:
    def __init__(self, s3: Any, uri: str, folder: Path) -> None:
        self.s3, self.uri, self.folder = s3, uri.rstrip("/"), folder
        self.bucket, self.prefix = split_uri(self.uri)
        self._sent: dict[str, tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def restore(self) -> int:
        """The checkpoints already in S3 into the folder; how many files there were."""
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            count = download_prefix(self.s3, self.uri + "/", self.folder)
        except MissingData:
            return 0
        self._sent = self._scan()  # what came from S3 need not go back
        return count

    def start(self) -> CheckpointSync:
        self._thread = threading.Thread(target=self._run, name=f"checkpoints {self.uri}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop syncing, after a last pass (the files the script wrote just before it ended)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.sync()

    def _run(self) -> None:
        while not self._stop.wait(SYNC_EVERY_S):
            try:
                self.sync()
            except Exception as exc:  # the next pass tries again; the job goes on
                print(f"sagetwin: checkpoint upload to {self.uri} failed, retrying: {exc}", file=sys.stderr)

    def sync(self) -> int:
        """Upload what is new or changed since the last pass, and delete from S3 what was deleted
        from the folder (as the service does: a Trainer's ``save_total_limit`` prunes both);
        how many files went."""
        sent = 0
        found = self._scan()
        for relative in set(self._sent) - set(found):
            self.s3.delete_object(Bucket=self.bucket, Key=f"{self.prefix}/{relative}".lstrip("/"))
            del self._sent[relative]
        for relative, stamp in found.items():
            if self._sent.get(relative) == stamp:
                continue
            self.s3.upload_file(str(self.folder / relative), self.bucket, f"{self.prefix}/{relative}".lstrip("/"))
            self._sent[relative] = stamp
            sent += 1
        return sent

    def _scan(self) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        for directory, _, files in os.walk(self.folder):
            for name in files:
                path = Path(directory) / name
                try:
                    info = path.stat()
                except FileNotFoundError:  # the script replaced it meanwhile: the next pass sends it
                    continue
                found[path.relative_to(self.folder).as_posix()] = (info.st_size, info.st_mtime_ns)
        return found
