"""What the twin promises to clean up: endpoints left up are deleted when the twin stops, in a
notebook (``twin.stop()``) and around a command (``sagetwin exec``)."""

from __future__ import annotations

import socket
import sys
import textwrap
import time

import pytest

from tests.aws import twin_client
from tests.conftest import run_cli

ENDPOINT_CONFIG = {"VariantName": "AllTraffic", "InstanceType": "ml.g4dn.xlarge", "InitialInstanceCount": 1}
IMAGE = ("763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:"
         "2.3.0-transformers4.48.0-gpu-py311-cu121-ubuntu22.04")


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


def wait_in_service(sm, name: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while (status := sm.describe_endpoint(EndpointName=name)["EndpointStatus"]) == "Creating":
        assert time.monotonic() < deadline, f"{name} still Creating"
        time.sleep(0.2)
    return status


@pytest.mark.slow
def test_stopping_the_twin_deletes_the_endpoints_left_up(sagetwin_home, trained_tiny, no_leftover_processes):
    import json

    from sagetwin.aws.twin import Twin
    from sagetwin.emulation.artifacts import local_path

    twin = Twin(persist=False).start()
    try:
        s3, sm = twin_client(twin, "s3"), twin_client(twin, "sagemaker")
        s3.create_bucket(Bucket="left-up")
        s3.upload_file(str(local_path(trained_tiny.model_data, "model")), "left-up", "model.tar.gz")
        ports = []
        for name in ("left-up-one", "left-up-two"):
            sm.create_model(ModelName=name, ExecutionRoleArn=twin.role_arn, PrimaryContainer={
                "Image": IMAGE, "ModelDataUrl": "s3://left-up/model.tar.gz"})
            sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{**ENDPOINT_CONFIG,
                                                                                    "ModelName": name}])
            sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
            assert wait_in_service(sm, name) == "InService"
            answer = twin_client(twin, "sagemaker-runtime").invoke_endpoint(
                EndpointName=name, Body=json.dumps({"inputs": "a fine film"}), ContentType="application/json")
            assert set(json.loads(answer["Body"].read())[0]) == {"label", "score"}
            ports.append(twin.endpoints.endpoints[name].served.port)
        assert not any(refuses_connections(port) for port in ports)
    finally:
        twin.stop()  # nobody called delete_endpoint
    assert all(refuses_connections(port) for port in ports), "an endpoint's server outlived twin.stop()"


@pytest.mark.slow
def test_sagetwin_exec_deletes_the_endpoint_a_command_left_up(sagetwin_home, trained_tiny, tmp_path,
                                                              no_leftover_processes):
    from sagetwin.emulation.artifacts import local_path

    script = tmp_path / "leave_it_up.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys, time
        import boto3
        s3, sm = boto3.client("s3"), boto3.client("sagemaker")
        s3.create_bucket(Bucket="left-by-a-command")
        s3.upload_file(sys.argv[1], "left-by-a-command", "model.tar.gz")
        role = boto3.client("iam").get_role(RoleName="SageMakerExecutionRole")["Role"]["Arn"]
        sm.create_model(ModelName="left", ExecutionRoleArn=role, PrimaryContainer={{
            "Image": {IMAGE!r}, "ModelDataUrl": "s3://left-by-a-command/model.tar.gz"}})
        sm.create_endpoint_config(EndpointConfigName="left", ProductionVariants=[{{
            **{ENDPOINT_CONFIG!r}, "ModelName": "left"}}])
        sm.create_endpoint(EndpointName="left", EndpointConfigName="left")
        while sm.describe_endpoint(EndpointName="left")["EndpointStatus"] == "Creating":
            time.sleep(0.2)
        answer = boto3.client("sagemaker-runtime").invoke_endpoint(
            EndpointName="left", Body=json.dumps({{"inputs": "a fine film"}}), ContentType="application/json")
        print("ANSWER", answer["Body"].read().decode())
        print("STATUS", sm.describe_endpoint(EndpointName="left")["EndpointStatus"])
    """))
    result = run_cli("exec", "--no-persist", "--", sys.executable, str(script),
                     str(local_path(trained_tiny.model_data, "model")), timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "STATUS InService" in result.stdout and '"label"' in result.stdout
    assert "the command left 1 endpoint(s) running; deleting them." in result.stderr
    # no_leftover_processes: the endpoint's server (started by the twin in the exec process) is gone
