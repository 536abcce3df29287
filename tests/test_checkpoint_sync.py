"""The checkpoint folder's changes reach S3 as the service syncs them: new and changed files are
uploaded, deleted ones deleted, unchanged ones left alone."""

from __future__ import annotations

from sagetwin.aws.checkpoints import CheckpointSync


class RecordingS3:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def upload_file(self, path: str, bucket: str, key: str) -> None:
        self.calls.append(("put", key))

    def delete_object(self, Bucket: str, Key: str) -> None:  # noqa: N803 - boto3's names
        self.calls.append(("delete", Key))


def test_new_and_changed_files_go_up_deleted_ones_are_deleted(tmp_path):
    s3 = RecordingS3()
    sync = CheckpointSync(s3, "s3://bucket/run/checkpoints/", tmp_path)
    (tmp_path / "checkpoint-1").mkdir()
    (tmp_path / "checkpoint-1" / "model.bin").write_bytes(b"one")
    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "checkpoint-2" / "model.bin").write_bytes(b"two")
    assert sync.sync() == 2
    assert sync.sync() == 0 and len(s3.calls) == 2  # nothing changed: nothing sent again
    (tmp_path / "checkpoint-2" / "model.bin").write_bytes(b"two, longer")
    (tmp_path / "checkpoint-1" / "model.bin").unlink()  # a Trainer's save_total_limit at work
    sync.sync()
    assert sorted(s3.calls[2:]) == [("delete", "run/checkpoints/checkpoint-1/model.bin"),
                                    ("put", "run/checkpoints/checkpoint-2/model.bin")]
