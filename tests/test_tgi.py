"""The LLM container's contract (Text Generation Inference), emulated on `process`: an SDK v2
TGI deployment through the twin (`sdk_workflow/llm_tgi.py`), and the router's own rules and
answers: validation in TGI's words, greedy output the same twice, stop sequences, the Messages
API, and server-sent events whose tokens add up to the answer."""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from pathlib import Path

import pytest

from sagetwin.emulation.tgi import Generator, TgiError, TgiSettings, validate
from tests import test_aws_twin
from tests.test_aws_twin import exec_report
from tests.test_local_backend import no_leftover_containers, require_docker  # noqa: F401 - fixture

CELLS = Path(__file__).parent / "sdk_workflow" / "llm_tgi.py"
SETTINGS = TgiSettings(max_input_tokens=64, max_total_tokens=96)
TGI_IMAGE = ("763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:"
             "2.4.0-tgi3.0.1-gpu-py311-cu124-ubuntu22.04-v2.1")
twin, sdk = test_aws_twin.twin, test_aws_twin.sdk  # module-scoped fixtures: this module's own twin and SDK session


@pytest.fixture(scope="module")
def tiny_llm(sagetwin_home) -> Path:
    from sagetwin.guide.tiny_llm import tiny_causal_lm

    return tiny_causal_lm()


@pytest.fixture(scope="module")
def generator(tiny_llm) -> Generator:
    return Generator(str(tiny_llm))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["process", pytest.param("local", marks=pytest.mark.docker)])
def test_a_tgi_endpoint_deployed_with_the_sdk_answers_as_tgi_does(backend, tiny_llm, request):
    """On ``local`` the emulation serves from a container of its own image, behind the runtime
    front, which hands the stream on as it comes."""
    if backend == "local":
        require_docker()
        request.getfixturevalue("no_leftover_containers")
    report, _ = exec_report(backend, sys.executable, str(CELLS), str(tiny_llm))
    assert "/huggingface-pytorch-tgi-inference:" in report["image"] and "-tgi3.0.1-" in report["image"]
    assert report["default"].startswith("The quick brown fox"), "the SageMaker route returns the full text by default"
    first = report["first"]
    assert first == report["second"], "greedy generation is the same twice"
    assert first["details"]["generated_tokens"] == 12 and first["details"]["finish_reason"] == "length"
    texts = [token["text"] for token in first["details"]["tokens"]]
    assert "".join(texts) == first["generated_text"]
    # the answer ends with the first token that completes the stop sequence, which it keeps
    ends = ["".join(texts[:count]) for count in range(1, len(texts) + 1)]
    assert report["stopped"]["generated_text"] == next(text for text in ends if text.endswith(report["stop"]))
    too_long = report["too_long"]
    assert too_long["code"] == "ModelError" and too_long["status"] == 422
    assert ("Input validation error: `inputs` tokens + `max_new_tokens` must be <= 96. Given: "
            in too_long["message"]) and "200 `max_new_tokens`" in too_long["message"]
    chat = report["chat"]
    assert chat["object"] == "chat.completion" and chat["choices"][0]["message"]["role"] == "assistant"
    assert chat["usage"]["completion_tokens"] == 6 and chat["choices"][0]["finish_reason"] == "length"
    # streamed through the twin (InvokeEndpointWithResponseStream), token by token: the same answer
    streamed = report["streamed"]
    assert streamed["tokens"] == 12 and streamed["content_type"] == "text/event-stream"
    assert streamed["sdk"] == streamed["boto3"] == first["generated_text"]
    assert chat["model"] == str(tiny_llm), "TGI names its HF_MODEL_ID"
    # a fine-tune: model_data with HF_MODEL_ID=/opt/ml/model serves the same model; without HF_MODEL_ID,
    # the image's entrypoint refuses to start and the endpoint fails its health check
    assert report["fine_tuned"]["answer"] == first and report["fine_tuned"]["model"] == "/opt/ml/model"
    assert report["fine_tuned"]["uncompressed"] == first, "ModelDataSource: the prefix's files at /opt/ml/model"
    assert "did not pass the ping health check" in report["unset"] and "HF_MODEL_ID must be set" in report["unset"]


@pytest.mark.parametrize("parameters, words", [
    ({"temperature": 0}, "`temperature` must be strictly positive"),
    ({"top_p": 1.0}, "`top_p` must be > 0.0 and < 1.0"),
    ({"top_k": 0}, "`top_k` must be strictly positive"),
    ({"max_new_tokens": 0}, "`max_new_tokens` must be strictly positive"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "`stop` supports up to 4 stop sequences. Given: 5"),
    ({"best_of": 2}, "you must use sampling when `best_of` is > 1"),
    ({"best_of": 2, "do_sample": True, "seed": 1}, "`seed` must not be set when `best_of` > 1"),
    ({"best_of": 3}, "`best_of` must be > 0 and <= 2. Given: 3"),  # asked before the request is validated
    ({"best_of": 2, "do_sample": True, "seed": 1, "stop": list("abcde")}, "`stop` supports up to 4 stop sequences"),
    ({"max_new_tokens": 95}, "`inputs` tokens + `max_new_tokens` must be <= 96. Given: "),
    ({"stop": "fox"}, "Failed to deserialize the JSON body into the target type: parameters.stop"),
    ({"max_new_tokens": -1}, "Failed to deserialize the JSON body into the target type: parameters.max_new_tokens"),
])
def test_requests_are_refused_in_tgis_words(generator, parameters, words):
    with pytest.raises(TgiError) as info:
        validate("The quick brown fox", parameters, generator.tokenizer, SETTINGS)
    prefix = "" if words.startswith("Failed") else "Input validation error: "
    assert info.value.status == 422 and info.value.message.startswith(prefix + words)


def test_sampling_is_on_when_tgi_turns_it_on(generator):
    def sampling(parameters):
        return validate("The quick brown fox", parameters, generator.tokenizer, SETTINGS).sampling

    assert sampling(None) and sampling({"do_sample": True}) and sampling({"top_k": 5})
    assert not sampling({}) and not sampling({"temperature": 1.0}) and not sampling({"max_new_tokens": 3})


def test_the_launchers_settings_are_read_and_refused_as_tgi_reads_them():
    assert TgiSettings.from_env({"MAX_INPUT_LENGTH": "10", "MAX_TOTAL_TOKENS": "20"}, 512, False) == TgiSettings(10, 20)
    assert TgiSettings.from_env({}, 512, False) == TgiSettings(511, 512)
    with pytest.raises(SystemExit, match="`max_input_tokens` must be < `max_total_tokens`. Given: 20 and 20"):
        TgiSettings.from_env({"MAX_INPUT_TOKENS": "20", "MAX_TOTAL_TOKENS": "20"}, 512, False)
    with pytest.raises(SystemExit, match="HF_MODEL_QUANTIZE=bitsandbytes needs a GPU"):
        TgiSettings.from_env({"HF_MODEL_QUANTIZE": "bitsandbytes"}, 512, False)


def test_a_seed_makes_sampling_repeatable(generator):
    def sampled(seed: int) -> str:
        request = validate("The quick brown fox", {"do_sample": True, "max_new_tokens": 10, "seed": seed},
                           generator.tokenizer, SETTINGS)
        return generator.run(request).text

    assert sampled(7) == sampled(7)
    assert len({sampled(seed) for seed in range(5)}) > 1, "different seeds give different samples"


def test_streamed_tokens_add_up_to_the_answer_on_the_servers_own_address(generator):
    from sagetwin.emulation.http_server import make_server
    from sagetwin.emulation.router_server import RouterState
    from sagetwin.emulation.tgi_server import LoadedTgi, TgiHandler

    state = RouterState()
    state.model = state.handler = LoadedTgi(generator, SETTINGS)
    server = make_server("127.0.0.1", 0, state, TgiHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ask = {"inputs": "The quick brown fox", "parameters": {"max_new_tokens": 10, "details": True}}
        whole = _post(server, "/generate", ask)
        events = [json.loads(line[5:]) for line in _post(server, "/generate_stream", ask, raw=True).splitlines()
                  if line.startswith("data:")]
        assert "".join(event["token"]["text"] for event in events) == whole["generated_text"]
        assert events[-1]["generated_text"] == whole["generated_text"]
        assert events[-1]["details"]["generated_tokens"] == 10 and events[-1]["details"]["input_length"] == 4
        assert all(event["generated_text"] is None for event in events[:-1])
        chunks = _post(server, "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                                                         "max_tokens": 4, "stream": True}, raw=True)
        assert chunks.rstrip().endswith("data:[DONE]")
    finally:
        server.shutdown()
        server.server_close()


def test_the_runtime_front_hands_a_stream_on_as_it_comes(generator, monkeypatch):
    """``local``'s front before a TGI server in its container mode: the first event reaches the
    client while the generation waits for it (a front that held the answer back would never
    deliver it), and the events are the server's own."""
    from sagetwin.emulation.bounded_server import FRONT_TOKEN_ENV
    from sagetwin.emulation.http_server import make_server
    from sagetwin.emulation.processes import free_port
    from sagetwin.emulation.router_server import RouterState
    from sagetwin.emulation.runtime_front import RuntimeFront
    from sagetwin.emulation.tgi_server import LoadedTgi, TgiHandler

    front = RuntimeFront("127.0.0.1", 0, free_port(), timeout=30)
    monkeypatch.setenv(FRONT_TOKEN_ENV, front.token)  # as the container is given it
    state = RouterState()
    state.model = state.handler = LoadedTgi(generator, SETTINGS)
    server = make_server("127.0.0.1", front.upstream.port, state, TgiHandler, behind_front=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    front.ready()
    first_read, original = threading.Event(), generator.generate

    def held(request):
        for count, step in enumerate(original(request)):
            yield step
            if count == 0:
                first_read.wait(20)  # the rest only once the client has the first

    generator.generate = held
    try:
        connection = http.client.HTTPConnection("127.0.0.1", front.port, timeout=30)
        connection.request("POST", "/invocations", json.dumps({"inputs": "The quick brown fox", "stream": True,
                                                               "parameters": {"max_new_tokens": 8}}),
                           {"Content-Type": "application/json"})
        answer = connection.getresponse()
        assert answer.status == 200 and answer.getheader("Content-Type") == "text/event-stream"
        started = time.monotonic()
        first = answer.read1(65536)
        assert time.monotonic() - started < 10 and first.startswith(b"data:")
        first_read.set()
        events = [json.loads(line[5:]) for line in (first + answer.read()).decode().splitlines()
                  if line.startswith("data:")]
        connection.close()
    finally:
        first_read.set()
        generator.generate = original
        front.close()
        server.shutdown()
        server.server_close()
    # the SageMaker route: the prompt in the final text by default
    assert len(events) == 8
    assert events[-1]["generated_text"] == "The quick brown fox" + "".join(e["token"]["text"] for e in events)


def test_a_container_behind_a_front_answers_the_front_only(generator, monkeypatch):
    """Its port is published on 127.0.0.1, open to every local user: a request without the front's
    secret is refused before its body is read; /ping (Docker's and the SDK's health checks) is not."""
    from sagetwin.emulation.bounded_server import FRONT_TOKEN_ENV, FRONT_TOKEN_HEADER
    from sagetwin.emulation.http_server import make_server
    from sagetwin.emulation.router_server import RouterState
    from sagetwin.emulation.tgi_server import LoadedTgi, TgiHandler

    monkeypatch.delenv(FRONT_TOKEN_ENV, raising=False)
    with pytest.raises(SystemExit, match=FRONT_TOKEN_ENV):
        make_server("127.0.0.1", 0, RouterState(), TgiHandler, behind_front=True)
    monkeypatch.setenv(FRONT_TOKEN_ENV, "s" * 43)
    state = RouterState()
    state.model = state.handler = LoadedTgi(generator, SETTINGS)
    server = make_server("127.0.0.1", 0, state, TgiHandler, behind_front=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def status(method: str, path: str, **headers: str) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
        body = json.dumps({"inputs": "The quick", "parameters": {"max_new_tokens": 2}}) if method == "POST" else None
        connection.request(method, path, body, {"Host": "localhost:49999", **headers})
        answer = connection.getresponse()
        answer.read()
        connection.close()
        return answer.status

    try:
        assert status("GET", "/ping") == 200
        assert status("POST", "/invocations") == 403 and status("GET", "/info") == 403
        assert status("POST", "/invocations", **{FRONT_TOKEN_HEADER: "t" * 43}) == 403
        assert status("POST", "/invocations", **{FRONT_TOKEN_HEADER: "s" * 43}) == 200
        assert status("GET", "/ping", Host="attacker.example:80") == 403, "DNS rebinding names its own host"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def tgi_server(generator):
    """The emulation's server on 127.0.0.1 (a port of its own), the tiny model loaded."""
    from sagetwin.emulation.http_server import make_server
    from sagetwin.emulation.router_server import RouterState
    from sagetwin.emulation.tgi_server import LoadedTgi, TgiHandler

    state = RouterState()
    state.model = state.handler = LoadedTgi(generator, SETTINGS)
    server = make_server("127.0.0.1", 0, state, TgiHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _ask(server, path: str, body: dict) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
    connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    answer = connection.getresponse()
    data = answer.read().decode()
    connection.close()
    return answer.status, data


def _events(data: str) -> list:
    return [line[5:] if line == "data:[DONE]" else json.loads(line[5:]) for line in data.splitlines()
            if line.startswith("data:")]


def test_best_of_answers_the_sampled_sequence_of_highest_mean_logprob(tgi_server):
    ask = {"inputs": "The quick brown fox", "parameters": {"do_sample": True, "best_of": 2, "max_new_tokens": 6,
                                                           "details": True}}
    status, data = _ask(tgi_server, "/generate", ask)
    answer = json.loads(data)
    assert status == 200, data
    [other] = answer["details"]["best_of_sequences"]

    def mean(details):
        return sum(token["logprob"] for token in details["tokens"]) / len(details["tokens"])

    assert mean(answer["details"]) >= mean(other) and other["seed"] != answer["details"]["seed"]
    assert set(other) == {"generated_text", "finish_reason", "generated_tokens", "seed", "prefill", "tokens"}
    assert "".join(token["text"] for token in other["tokens"]) == other["generated_text"]
    # on the SageMaker route each sequence's text starts with the prompt; without details, no details at all
    status, data = _ask(tgi_server, "/invocations", ask)
    [answer] = json.loads(data)
    assert answer["details"]["best_of_sequences"][0]["generated_text"].startswith("The quick brown fox")
    plain = {"inputs": "The quick brown fox", "parameters": {"temperature": 1.0, "best_of": 2, "max_new_tokens": 3}}
    status, data = _ask(tgi_server, "/generate", plain)
    assert status == 200 and set(json.loads(data)) == {"generated_text"}, "temperature given: sampling, as TGI counts"
    status, data = _ask(tgi_server, "/generate_stream", ask)
    assert status == 200 and _events(data) == [{"error": "Input validation error: `best_of` != 1 is not supported "
                                                         "when streaming tokens", "error_type": "validation"}]


def test_the_completions_api_as_tgi_answers_it(tgi_server, generator):
    """``prompt`` bodies (``/v1/completions``, and the SageMaker route's third shape): a choice per
    prompt, greedy with temperature 0, streamed token by token ending in the whole answer's shape."""
    greedy = {"max_tokens": 6, "temperature": 0}
    status, data = _ask(tgi_server, "/invocations", {"prompt": ["The quick brown fox", "Every answer"], **greedy})
    answer = json.loads(data)
    assert status == 200 and answer["object"] == "text_completion", data
    assert [choice["index"] for choice in answer["choices"]] == [0, 1]
    assert answer["usage"]["completion_tokens"] == 12 and answer["choices"][0]["finish_reason"] == "length"
    for index, prompt in enumerate(["The quick brown fox", "Every answer"]):
        _, generated = _ask(tgi_server, "/generate", {"inputs": prompt, "parameters": {"max_new_tokens": 6}})
        assert answer["choices"][index]["text"] == json.loads(generated)["generated_text"]
    prompt_tokens = sum(len(generator.tokenizer(text)["input_ids"]) for text in ["The quick brown fox", "Every answer"])
    assert answer["usage"] == {"prompt_tokens": prompt_tokens, "completion_tokens": 12,
                               "total_tokens": prompt_tokens + 12}
    status, data = _ask(tgi_server, "/v1/completions", {"prompt": "The quick brown fox", "stream": True, **greedy})
    *chunks, final, done = _events(data)
    assert status == 200 and done == "[DONE]" and len(chunks) == 5
    assert all(chunk["choices"][0]["finish_reason"] == "" for chunk in chunks)
    assert final["usage"]["completion_tokens"] == 6 and final["choices"][0]["finish_reason"] == "length"
    assert "".join(c["choices"][0]["text"] for c in [*chunks, final]) == answer["choices"][0]["text"]
    refused = {"suffix": ("Suffix is not supported and can be achieved by preprocessing the prompt.",
                          "suffix not supported"),
               "batch": ("Number of prompts exceeds the maximum allowed batch size of 4", "batch size exceeded")}
    for body, (words, kind) in (({"prompt": "a", "suffix": "b"}, refused["suffix"]),
                                ({"prompt": ["a"] * 5}, refused["batch"])):
        status, data = _ask(tgi_server, "/v1/completions", body)
        assert status == 422 and json.loads(data) == {"error": words, "error_type": kind}
    # streamed, a prompt that fails validation is an error event in its place; the others go on; [DONE] ends it
    status, data = _ask(tgi_server, "/v1/completions", {"prompt": ["fox " * 70, "Every answer"], "stream": True,
                                                        **greedy})
    error, *chunks, done = _events(data)
    assert status == 200 and error["error_type"] == "validation" and "`inputs` must have less than 64" in error["error"]
    assert done == "[DONE]" and len(chunks) == 6 and all(c["choices"][0]["index"] == 1 for c in chunks)


def _post(server, path: str, body: dict, raw: bool = False):
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
    connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    answer = connection.getresponse()
    data = answer.read().decode()
    connection.close()
    assert answer.status == 200, data
    return data if raw else json.loads(data)


def test_payload_parts_are_the_event_stream_botocore_reads():
    from botocore.eventstream import EventStreamBuffer

    from sagetwin.aws.response_stream import internal_stream_failure, model_stream_error, payload_part

    buffer = EventStreamBuffer()
    buffer.add_data(payload_part(b'data:{"token": 1}\n\n') + model_stream_error("the model stopped")
                    + internal_stream_failure("the twin failed"))
    part, error, failure = list(buffer)
    assert part.headers[":event-type"] == "PayloadPart" and part.headers[":message-type"] == "event"
    assert part.payload == b'data:{"token": 1}\n\n'
    assert error.headers[":exception-type"] == "ModelStreamError"
    assert json.loads(error.payload) == {"Message": "the model stopped", "ErrorCode": "StreamBroken"}
    assert failure.headers[":exception-type"] == "InternalStreamFailure"


def test_a_tgi_endpoint_that_cannot_start_fails_as_sagemaker_fails_it(twin, sdk, tiny_llm):
    """HF_MODEL_QUANTIZE on a machine without a GPU: the container exits, the endpoint is Failed
    with the service's reason and the launcher's words; the variant's startup timeout is the one used."""
    from sagetwin.aws.endpoints import PING_FAILED, TwinEndpoint
    from tests.aws import twin_client

    sm, name = twin_client(twin, "sagemaker"), "tgi-quantized"
    sm.create_model(ModelName=name, ExecutionRoleArn=sdk["role"], PrimaryContainer={
        "Image": TGI_IMAGE, "Environment": {"HF_MODEL_ID": str(tiny_llm), "HF_MODEL_QUANTIZE": "bitsandbytes"}})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.g5.2xlarge", "InitialInstanceCount": 1,
        "ContainerStartupHealthCheckTimeoutInSeconds": 120}])
    assert twin.endpoints._deploy_spec(TwinEndpoint(name), name).startup_timeout == 120
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    deadline = time.monotonic() + 120
    while (described := sm.describe_endpoint(EndpointName=name))["EndpointStatus"] == "Creating":
        assert time.monotonic() < deadline, "the endpoint never left Creating"
        time.sleep(0.5)
    assert described["EndpointStatus"] == "Failed"
    assert described["FailureReason"].startswith(PING_FAILED)
    assert "HF_MODEL_QUANTIZE=bitsandbytes needs a GPU" in described["FailureReason"]
    sm.delete_endpoint(EndpointName=name)
    sm.delete_endpoint_config(EndpointConfigName=name)
    sm.delete_model(ModelName=name)


def test_a_model_too_large_for_the_machine_is_refused_before_loading_with_the_numbers(tmp_path):
    from sagetwin.emulation.model_memory import available_memory

    (tmp_path / "config.json").write_text("{}")
    with open(tmp_path / "model.safetensors", "wb") as weights:  # sparse: takes no disk
        weights.truncate(available_memory() + 10**12)
    with pytest.raises(SystemExit) as info:
        Generator(str(tmp_path))
    assert "cannot be loaded here" in str(info.value) and "GB of memory available" in str(info.value)


def test_hf_model_id_naming_opt_ml_model_serves_the_model_data(tiny_llm, tmp_path):
    """The fine-tuned LLM's deployment: ``HF_MODEL_ID=/opt/ml/model`` is the unpacked model_data for
    TGI and TEI (their launcher loads the path), and the id stays in their environment."""
    from sagetwin.core.errors import ConfigurationError
    from sagetwin.emulation.artifacts import pack_model
    from sagetwin.emulation.model_sources import served_model

    pack_model(tiny_llm, tmp_path / "model.tar.gz")
    archive, env = served_model(str(tmp_path / "model.tar.gz"), {"HF_MODEL_ID": "/opt/ml/model"}, server="tgi")
    assert archive == tmp_path / "model.tar.gz" and env == {"HF_MODEL_ID": "/opt/ml/model"}
    with pytest.raises(ConfigurationError, match="names the unpacked model_data"):
        served_model(None, {"HF_MODEL_ID": "/opt/ml/model"}, server="tei")
    _, env = served_model(None, {"HF_MODEL_ID": str(tiny_llm), "HF_TOKEN": "hf_x"}, server="tgi")
    assert env == {"HF_MODEL_ID": str(tiny_llm)}, "the id stays, a token does not travel"


def test_half_precision_weights_are_counted_as_the_cpu_loads_them(tmp_path):
    """On a CPU the emulations load float32: a bfloat16 model takes twice its files' size there."""
    from sagetwin.emulation.model_memory import loaded_size

    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "bfloat16"}))
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 1000)
    assert loaded_size(str(tmp_path), on_gpu=False) == 2000 and loaded_size(str(tmp_path), on_gpu=True) == 1000
    (tmp_path / "config.json").write_text(json.dumps({"dtype": "float32"}))
    assert loaded_size(str(tmp_path), on_gpu=False) == 1000


@pytest.mark.slow
def test_a_process_tgi_server_takes_its_settings_from_the_model_not_the_shell(tiny_llm, monkeypatch):
    """On SageMaker only the model's Environment reaches the container: a MAX_TOTAL_TOKENS (or
    HF_MODEL_ID) left in the shell that started sagetwin does not change the endpoint."""
    import sagetwin
    from sagetwin.core.containers import TGI_IMAGE as SDK_TGI_IMAGE

    monkeypatch.setenv("MAX_TOTAL_TOKENS", "8")
    monkeypatch.setenv("HF_MODEL_ID", "someone/else")
    model = sagetwin.HuggingFaceModel(image_uri=SDK_TGI_IMAGE, env={"HF_MODEL_ID": str(tiny_llm),
                                                                    "MAX_INPUT_TOKENS": "64"}, backend="process")
    with model.deploy() as predictor:
        [answer] = predictor.predict({"inputs": "The quick brown fox", "parameters": {"max_new_tokens": 20}})
        info = json.loads(urllib_get(predictor.endpoint.url + "/info"))
    assert answer["generated_text"].startswith("The quick brown fox")
    assert info["model_id"] == str(tiny_llm) and info["max_total_tokens"] != 8


def urllib_get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.read().decode()


def test_tgi_images_before_3_take_one_shape_on_the_sagemaker_route(generator):
    """Before 3.0 ``/invocations`` is a generation, or with ``MESSAGES_API_ENABLED=true`` a chat, and
    the other shape fails to parse; 3.x takes either (and a completion)."""
    from sagetwin.emulation.http_server import make_server
    from sagetwin.emulation.router_server import VERSION_ENV, RouterState
    from sagetwin.emulation.tgi_server import LoadedTgi, TgiHandler, invocations_route

    assert invocations_route({VERSION_ENV: "2.2.0"}) == "generate"
    assert invocations_route({VERSION_ENV: "2.4.1", "MESSAGES_API_ENABLED": "true"}) == "chat"
    assert invocations_route({VERSION_ENV: "3.0.1"}) == invocations_route({}) == "any"
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    generate = {"inputs": "The quick brown fox", "parameters": {"max_new_tokens": 2}}
    cases = (("generate", chat, "inputs", generate), ("chat", generate, "messages", chat))
    for route, refused, missing, served in cases:
        state = RouterState()
        state.model = state.handler = LoadedTgi(generator, SETTINGS, route)
        server = make_server("127.0.0.1", 0, state, TgiHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            status, data = _ask(server, "/invocations", refused)
            assert status == 422 and data.startswith("Failed to deserialize the JSON body into the target type: "
                                                     f"missing field `{missing}`"), "axum's words, in plain text"
            assert _ask(server, "/invocations", served)[0] == 200
            assert _ask(server, "/v1/chat/completions", chat)[0] == 200, "TGI's own routes are all there"
        finally:
            server.shutdown()
            server.server_close()


def test_model_data_source_is_read_as_hosting_reads_it(twin, tiny_llm, tmp_path):
    """``ModelDataSource``: the files under an S3 prefix (uncompressed), one object, or a
    ``model.tar.gz``; a prefix without its closing '/', a Gzip prefix or a nameless object refused;
    an endpoint re-created under a name gets only its own model's files."""
    import tarfile
    from types import SimpleNamespace

    from sagetwin.aws.hosted_models import HostingFailed, model_archive
    from sagetwin.emulation.artifacts import pack_model
    from tests.aws import twin_client

    s3 = twin_client(twin, "s3")
    s3.create_bucket(Bucket="llm-data")
    for path in tiny_llm.iterdir():
        s3.upload_file(str(path), "llm-data", f"llm/{path.name}")
    s3.put_object(Bucket="llm-data", Key="other/stale.bin", Body=b"x")
    s3.upload_file(str(pack_model(tiny_llm, tmp_path / "packed" / "model.tar.gz")), "llm-data", "packed/model.tar.gz")
    clients = SimpleNamespace(s3=s3)

    def members(source: dict) -> set[str]:
        container = {"ModelDataSource": {"S3DataSource": source}}
        with tarfile.open(model_archive(clients, container, tmp_path / "endpoint")) as archive:
            return {name.removeprefix("./") for name in archive.getnames()} - {"", "."}

    assert members({"S3Uri": "s3://llm-data/other/", "S3DataType": "S3Prefix", "CompressionType": "None"}) == \
        {"stale.bin"}
    uncompressed = {"S3Uri": "s3://llm-data/llm/", "S3DataType": "S3Prefix", "CompressionType": "None"}
    assert members(uncompressed) == {path.name for path in tiny_llm.iterdir()}, "nothing of the earlier model"
    assert members({"S3Uri": "s3://llm-data/llm/config.json", "S3DataType": "S3Object",
                    "CompressionType": "None"}) == {"config.json"}
    assert "config.json" in members({"S3Uri": "s3://llm-data/packed/model.tar.gz", "S3DataType": "S3Object",
                                     "CompressionType": "Gzip"})
    for source, words in (({**uncompressed, "S3Uri": "s3://llm-data/llm"}, "ends with '/'"),
                          ({**uncompressed, "CompressionType": "Gzip"}, "use S3DataType S3Object"),
                          ({**uncompressed, "S3DataType": "S3Object"}, "name its key"),
                          ({**uncompressed, "S3Uri": "s3://llm-data/nothing/"}, "Could not find model data")):
        with pytest.raises(HostingFailed, match=words):
            members(source)


def test_the_image_names_the_emulated_version():
    from sagetwin.core.containers import TEI_IMAGE as SDK_TEI_IMAGE
    from sagetwin.core.containers import server_version

    assert server_version(TGI_IMAGE) == "3.0.1" and server_version(SDK_TEI_IMAGE) == "1.8.2"
    assert server_version("763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:"
                          "2.3.0-tgi2.2.0-gpu-py310-cu121-ubuntu22.04-v2.0") == "2.2.0"
    assert server_version("huggingface-pytorch-inference:2.1.0-transformers4.37.0-cpu-py310-ubuntu22.04") is None
