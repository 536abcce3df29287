"""A job's log lines reach one CloudWatch stream per host, named as SageMaker names them; the
local backend names the host of each container line as SageMaker does (algo-N), not compose."""

from __future__ import annotations

import io
import time

from sagetwin.aws.logs import HostLogs
from sagetwin.backends.local.docker import _WithoutEraseLine
from sagetwin.core.host_lines import host_and_text, tagged
from tests import test_aws_twin

twin, sdk = test_aws_twin.twin, test_aws_twin.sdk  # module-scoped fixtures: this module's own twin and SDK session


def test_each_hosts_lines_go_to_its_own_stream_without_the_tag(twin):
    started = time.time()
    logs = HostLogs(twin.clients.logs, "/aws/sagemaker/TrainingJobs", "two-hosts", started)
    said = [logs.write(line) for line in ["downloading", tagged("algo-2", "rank 1 ready"), "algo-1 | rank 0 ready"]]
    logs.close()
    assert said == ["downloading", "rank 1 ready", "rank 0 ready"]
    client = twin.clients.logs
    streams = sorted(s["logStreamName"] for s in client.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix="two-hosts/")["logStreams"])
    assert streams == [f"two-hosts/algo-1-{int(started)}", f"two-hosts/algo-2-{int(started)}"]
    lines = {name: [e["message"] for e in client.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs",
                                                               logStreamName=name)["events"]] for name in streams}
    assert lines == {streams[0]: ["downloading", "rank 0 ready"], streams[1]: ["rank 1 ready"]}


class FakeCompose:
    def __init__(self, output: bytes) -> None:
        self.stdout = io.BytesIO(output)


def test_compose_lines_name_their_host_as_sagemaker_does_without_the_terminals_carriage_return():
    output = (b" Container x7k2m9q1ab-algo-1-e9afc  Created\n"
              b"x7k2m9q1ab-algo-1-e9afc  | saved checkpoint-3\r\n"
              b"\x1b[2Kx7k2m9q1ab-algo-2-qu94x  | rank 1\r\n"
              b"x7k2m9q1ab-algo-1-e9afc  | \r\n")
    reader = _WithoutEraseLine(FakeCompose(output))
    lines = [reader.readline() for _ in range(5)]
    assert lines == [b" Container x7k2m9q1ab-algo-1-e9afc  Created\n", b"algo-1 | saved checkpoint-3\n",
                     b"algo-2 | rank 1\n", b"algo-1 | \n", b""]
    assert host_and_text(lines[2].decode().rstrip("\n")) == ("algo-2", "rank 1")
    assert host_and_text("no host named") == ("algo-1", "no host named")
