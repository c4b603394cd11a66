"""The local Bedrock model service with real clients: boto3's `bedrock-runtime` (Converse,
ConverseStream, InvokeModel, InvokeModelWithResponseStream) and `bedrock` (ListFoundationModels,
GetFoundationModel), and the AWS CLI; the echo, script and OpenAI-compatible providers; Bedrock's
validation wording; every call in /metrics and on the dashboard."""
import http.server
import json
import threading
import urllib.request

import botocore.config
import pytest
from botocore.exceptions import ClientError

from conftest import REGION, Cli, Emulator, boto_client

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
PROFILE = "us.anthropic.claude-sonnet-4-20250514-v1:0"
MODEL_ARN = f"arn:aws:bedrock:{REGION}::foundation-model/amazon.nova-lite-v1:0"
NO_DOCKER = ["--sandbox", "none"]


def user(text):
    return {"role": "user", "content": [{"text": text}]}


def start(tmp_path, *args, env=None, name="emulator.log"):
    return Emulator(extra_args=[*NO_DOCKER, *args], env=env).start(tmp_path / name)


@pytest.fixture(scope="module")
def echo(tmp_path_factory):
    emu = start(tmp_path_factory.mktemp("bedrock-echo"))
    yield emu
    emu.stop()


@pytest.fixture
def runtime(echo):
    return boto_client(echo.url, "bedrock-runtime")


def stream_events(response):
    """(event name, body) for each event of a ConverseStream response, as botocore decodes them."""
    return [(name, body) for event in response["stream"] for name, body in event.items()]


def test_converse_echoes_the_last_user_message(runtime):
    out = runtime.converse(
        modelId=MODEL,
        system=[{"text": "Be brief."}],
        messages=[user("first question"), {"role": "assistant", "content": [{"text": "an answer"}]},
                  user("Hello,   local model!")],
    )
    assert out["output"]["message"] == {"role": "assistant", "content": [{"text": "Hello,   local model!"}]}
    assert out["stopReason"] == "end_turn"
    # Whitespace-separated words: 2 (system) + 2 + 2 + 3 (messages) in, 3 out.
    assert out["usage"] == {"inputTokens": 9, "outputTokens": 3, "totalTokens": 12}
    assert isinstance(out["metrics"]["latencyMs"], int)


def test_any_model_id_is_accepted(runtime):
    for model_id in (PROFILE, MODEL_ARN, "my-local-model", "meta.llama3-1-8b-instruct-v1:0"):
        out = runtime.converse(modelId=model_id, messages=[user(f"to {model_id}")])
        assert out["output"]["message"]["content"][0]["text"] == f"to {model_id}"


def test_converse_stream_events(runtime):
    response = runtime.converse_stream(modelId=PROFILE, messages=[user("stream these four words")])
    events = stream_events(response)
    names = [name for name, _ in events]
    assert names[0] == "messageStart" and events[0][1] == {"role": "assistant"}
    assert names[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    deltas = [body for name, body in events if name == "contentBlockDelta"]
    assert len(deltas) == 4, "one delta per word"
    assert "".join(d["delta"]["text"] for d in deltas) == "stream these four words"
    assert all(d["contentBlockIndex"] == 0 for d in deltas)
    assert events[-2][1] == {"stopReason": "end_turn"}
    metadata = events[-1][1]
    assert metadata["usage"] == {"inputTokens": 4, "outputTokens": 4, "totalTokens": 8}
    assert metadata["metrics"]["latencyMs"] >= 0


def test_converse_max_tokens_cuts_the_answer(runtime):
    out = runtime.converse(modelId=MODEL, messages=[user("one two three four five")], inferenceConfig={"maxTokens": 2})
    assert out["stopReason"] == "max_tokens"
    assert out["output"]["message"]["content"][0]["text"] == "one two "
    assert out["usage"]["outputTokens"] == 2


def anthropic_body(messages, **extra):
    return json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100, "messages": messages, **extra})


def test_invoke_model_anthropic_messages(runtime):
    response = runtime.invoke_model(
        modelId=PROFILE,
        contentType="application/json",
        accept="application/json",
        body=anthropic_body([{"role": "user", "content": [{"type": "text", "text": "Hi Claude"}]}], system="terse"),
    )
    assert response["contentType"] == "application/json"
    body = json.loads(response["body"].read())
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["id"].startswith("msg_bdrk_")
    assert body["model"] == "claude-sonnet-4-20250514"
    assert body["content"] == [{"type": "text", "text": "Hi Claude"}]
    assert body["stop_reason"] == "end_turn" and body["stop_sequence"] is None
    assert body["usage"] == {"input_tokens": 3, "output_tokens": 2}
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == "3"
    assert headers["x-amzn-bedrock-output-token-count"] == "2"


def test_invoke_model_with_response_stream(runtime):
    response = runtime.invoke_model_with_response_stream(
        modelId=MODEL, body=anthropic_body([{"role": "user", "content": "streamed by chunks"}]))
    assert response["contentType"] == "application/json"
    events = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
    types = [e["type"] for e in events]
    assert types[0] == "message_start" and types[1] == "content_block_start"
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[0]["message"]["usage"]["input_tokens"] == 3
    assert events[1]["content_block"] == {"type": "text", "text": ""}
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == "streamed by chunks"
    assert events[-2]["delta"]["stop_reason"] == "end_turn"
    metrics = events[-1]["amazon-bedrock-invocationMetrics"]
    assert (metrics["inputTokenCount"], metrics["outputTokenCount"]) == (3, 3)


def test_count_tokens_matches_the_usage_of_an_answer(runtime):
    converse = {"messages": [user("three little words")], "system": [{"text": "be kind"}]}
    counted = runtime.count_tokens(modelId=MODEL, input={"converse": converse})["inputTokens"]
    assert counted == 5
    assert runtime.converse(modelId=MODEL, **converse)["usage"]["inputTokens"] == counted
    body = anthropic_body([{"role": "user", "content": "count these four words"}]).encode()
    assert runtime.count_tokens(modelId=MODEL, input={"invokeModel": {"body": body}})["inputTokens"] == 4


def test_foundation_models(echo):
    bedrock = boto_client(echo.url, "bedrock")
    anthropic = bedrock.list_foundation_models(byProvider="anthropic")["modelSummaries"]
    assert anthropic and all(m["providerName"] == "Anthropic" for m in anthropic)
    assert MODEL in {m["modelId"] for m in anthropic}
    assert bedrock.list_foundation_models(byInferenceType="PROVISIONED")["modelSummaries"] == []
    details = bedrock.get_foundation_model(modelIdentifier=MODEL)["modelDetails"]
    assert details["modelArn"] == f"arn:aws:bedrock:{REGION}::foundation-model/{MODEL}"
    assert details["responseStreamingSupported"] is True
    assert "echo" in details["modelName"]
    assert details["modelLifecycle"]["status"] == "ACTIVE"
    # A model called once is listed from then on.
    boto_client(echo.url, "bedrock-runtime").converse(modelId="cohere.command-r-v1:0", messages=[user("hi")])
    cohere = bedrock.list_foundation_models(byProvider="Cohere")["modelSummaries"]
    assert [m["modelId"] for m in cohere] == ["cohere.command-r-v1:0"]
    with pytest.raises(ClientError) as e:
        bedrock.get_foundation_model(modelIdentifier="not a model")
    assert e.value.response["Error"]["Code"] == "ValidationException"


def test_cli_converse(echo):
    out = Cli(echo.url).json(
        "bedrock-runtime", "converse", "--model-id", MODEL,
        "--messages", json.dumps([user("hello from the AWS CLI")]))
    assert out["output"]["message"]["content"] == [{"text": "hello from the AWS CLI"}]
    assert out["stopReason"] == "end_turn"
    models = Cli(echo.url).json("bedrock", "list-foundation-models", "--by-provider", "amazon")
    assert "amazon.nova-lite-v1:0" in {m["modelId"] for m in models["modelSummaries"]}


def raises_validation(call, **kwargs):
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    err = e.value.response["Error"]
    assert err["Code"] == "ValidationException", err
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return err["Message"]


def test_validation_errors_in_bedrock_wording(echo):
    # Client-side parameter validation off, so the server's checks are what answers.
    rt = boto3_unvalidated(echo.url)
    assert raises_validation(rt.converse, modelId=MODEL, messages=[]) == (
        "A conversation must start with a user message. Try again with a conversation that starts with a user message.")
    assert raises_validation(rt.converse, modelId=MODEL, messages=[user("a"), user("b")]).startswith(
        "A conversation must alternate between user and assistant roles.")
    assert raises_validation(rt.converse, modelId=MODEL, messages=[user("  ")]) == (
        "The text field in the ContentBlock object at messages.0.content.0 is blank. Add text to the text field, "
        "and try again.")
    message = raises_validation(rt.converse, modelId=MODEL, messages=[user("x")], inferenceConfig={"maxTokens": 0})
    assert message == ("1 validation error detected: Value '0' at 'inferenceConfig.maxTokens' failed to satisfy "
                       "constraint: Member must have value greater than or equal to 1")
    message = raises_validation(rt.converse, modelId="bad model id", messages=[user("x")])
    assert message.startswith("1 validation error detected: Value 'bad model id' at 'modelId' failed to satisfy "
                              "constraint: Member must satisfy regular expression pattern")
    tool_result = {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "r"}]}}]}
    assert raises_validation(rt.converse, modelId=MODEL, messages=[tool_result]) == (
        "The toolConfig field must be defined when using toolUse and toolResult content blocks.")
    assert raises_validation(
        rt.invoke_model, modelId=MODEL,
        body=json.dumps({"anthropic_version": "bedrock-2023-05-31", "messages": [{"role": "user", "content": "x"}]}),
    ) == "Malformed input request: #: required key [max_tokens] not found, please reformat your input and try again."
    assert raises_validation(rt.invoke_model, modelId=MODEL, body=b"{not json") == (
        "Malformed input request, please reformat your input and try again.")
    # ConverseStream refuses before any event, as a plain error.
    assert raises_validation(rt.converse_stream, modelId=MODEL, messages=[]).startswith("A conversation must start")


def boto3_unvalidated(url):
    import boto3
    return boto3.session.Session().client(
        "bedrock-runtime", endpoint_url=url, region_name=REGION, aws_access_key_id="test",
        aws_secret_access_key="test",
        config=botocore.config.Config(parameter_validation=False, retries={"total_max_attempts": 1}))


def test_badly_signed_calls_are_refused(echo):
    bad = boto_client(echo.url, "bedrock-runtime", secret="wrong")
    with pytest.raises(ClientError) as e:
        bad.converse(modelId=MODEL, messages=[user("x")])
    assert e.value.response["Error"]["Code"] == "InvalidSignatureException"


# --- script provider ------------------------------------------------------------------------------

WEATHER_TOOL = {"toolSpec": {"name": "get_weather", "description": "Current weather for a city",
                             "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}},
                                                      "required": ["city"]}}}}
RULES = {"rules": [
    {"when": {"tool_result_present": True}, "reply": {"text": "The weather in Paris is {{tool_result}}."}},
    {"when": {"last_user_text": "(?i)weather", "turn": 1},
     "reply": {"text": "Let me look that up.", "tool_use": {"name": "get_weather", "input": {"city": "Paris"}}}},
    {"when": {"turn": 2}, "reply": {"text": "Second turn: {{last_user_text}}"}},
]}


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bedrock-script")
    rules = tmp / "rules.json"
    rules.write_text(json.dumps(RULES))
    emu = start(tmp, "--model-provider", f"script:{rules}")
    emu.rules = rules
    yield emu
    emu.stop()


def test_script_tool_loop(scripted):
    rt = boto_client(scripted.url, "bedrock-runtime")
    messages = [user("What's the weather in Paris?")]
    first = rt.converse(modelId=PROFILE, messages=messages, toolConfig={"tools": [WEATHER_TOOL]})
    assert first["stopReason"] == "tool_use"
    text, call = first["output"]["message"]["content"]
    assert text == {"text": "Let me look that up."}
    assert call["toolUse"]["name"] == "get_weather" and call["toolUse"]["input"] == {"city": "Paris"}
    assert call["toolUse"]["toolUseId"].startswith("tooluse_")
    messages.append(first["output"]["message"])
    messages.append({"role": "user", "content": [
        {"toolResult": {"toolUseId": call["toolUse"]["toolUseId"], "content": [{"text": "sunny, 21 C"}]}}]})
    final = rt.converse(modelId=PROFILE, messages=messages, toolConfig={"tools": [WEATHER_TOOL]})
    assert final["stopReason"] == "end_turn"
    assert final["output"]["message"]["content"] == [{"text": "The weather in Paris is sunny, 21 C."}]


def test_script_tool_call_streams_its_input(scripted):
    rt = boto_client(scripted.url, "bedrock-runtime")
    response = rt.converse_stream(modelId=MODEL, messages=[user("weather please")], toolConfig={"tools": [WEATHER_TOOL]})
    events = stream_events(response)
    starts = [body for name, body in events if name == "contentBlockStart"]
    assert len(starts) == 1 and starts[0]["contentBlockIndex"] == 1
    assert starts[0]["start"]["toolUse"]["name"] == "get_weather"
    fragments = [body["delta"]["toolUse"]["input"] for name, body in events
                 if name == "contentBlockDelta" and "toolUse" in body["delta"]]
    assert json.loads("".join(fragments)) == {"city": "Paris"}
    assert ("messageStop", {"stopReason": "tool_use"}) in events


def test_script_turn_rule_and_no_match(scripted):
    rt = boto_client(scripted.url, "bedrock-runtime")
    second = rt.converse(modelId=MODEL, messages=[
        user("hello"), {"role": "assistant", "content": [{"text": "hi"}]}, user("and again")])
    assert second["output"]["message"]["content"][0]["text"] == "Second turn: and again"
    message = raises_validation(rt.converse, modelId=MODEL, messages=[user("tell me a joke")])
    assert str(scripted.rules) in message and '"tell me a joke"' in message and "turn 1" in message
    # A tool call to a tool the request does not declare is refused too.
    message = raises_validation(rt.converse, modelId=MODEL, messages=[user("weather?")])
    assert "get_weather" in message and "declared tools: []" in message


def test_invoke_model_drives_the_same_script(scripted):
    rt = boto_client(scripted.url, "bedrock-runtime")
    tools = [{"name": "get_weather", "description": "weather", "input_schema": {"type": "object"}}]
    body = json.loads(rt.invoke_model(
        modelId=MODEL, body=anthropic_body([{"role": "user", "content": "weather in Paris?"}], tools=tools),
    )["body"].read())
    assert body["stop_reason"] == "tool_use"
    assert body["content"][1]["type"] == "tool_use" and body["content"][1]["input"] == {"city": "Paris"}
    events = [json.loads(e["chunk"]["bytes"]) for e in rt.invoke_model_with_response_stream(
        modelId=MODEL, body=anthropic_body([{"role": "user", "content": "weather in Paris?"}], tools=tools))["body"]]
    tool_start = [e for e in events if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use"]
    assert tool_start and tool_start[0]["content_block"]["name"] == "get_weather"
    partial = "".join(e["delta"]["partial_json"] for e in events
                      if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta")
    assert json.loads(partial) == {"city": "Paris"}


def test_a_bad_script_stops_the_emulator_at_start(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"rules": [{"when": {"last_user_text": "("}, "reply": {"text": "x"}}]}')
    with pytest.raises(RuntimeError) as e:
        start(tmp_path, "--model-provider", f"script:{bad}")
    assert "bad last_user_text regex" in str(e.value) and str(bad) in str(e.value)
    with pytest.raises(RuntimeError) as e:
        start(tmp_path, "--model-provider", f"script:{tmp_path / 'missing.json'}", name="missing.log")
    assert "cannot read the model script" in str(e.value)


# --- openai provider against a loopback fake ------------------------------------------------------

class FakeOpenAI(http.server.ThreadingHTTPServer):
    """A tiny OpenAI-compatible /v1/chat/completions server that records what it receives and
    answers with a tool call until the conversation carries a tool result."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.requests = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}/v1"


class FakeHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.requests.append({"path": self.path, "auth": self.headers.get("authorization"), "body": body})
        if body["messages"][-1]["content"] == "fail please":
            return self.answer(503, "application/json", json.dumps({"error": {"message": "model is loading"}}))
        has_result = any(m["role"] == "tool" for m in body["messages"])
        if body.get("tools") and not has_result:
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_7", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}
            finish = "tool_calls"
        else:
            last = body["messages"][-1]
            message = {"role": "assistant", "content": f"fake model saw: {last['content']}"}
            finish = "stop"
        if not body.get("stream"):
            answer = {"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                      "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                      "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}}
            return self.answer(200, "application/json", json.dumps(answer))
        chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
        if message.get("content"):
            words = message["content"].split(" ")
            chunks += [{"choices": [{"index": 0, "delta": {"content": w if i == 0 else " " + w}}]}
                       for i, w in enumerate(words)]
        for call in message.get("tool_calls", []):
            args = call["function"]["arguments"]
            chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": call["id"], "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}}]})
            chunks += [{"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": args[i:i + 5]}}]}}]} for i in range(0, len(args), 5)]
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        chunks.append({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}})
        sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        self.answer(200, "text/event-stream", sse)

    def answer(self, status, content_type, text):
        data = text.encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def openai(tmp_path_factory):
    fake = FakeOpenAI()
    thread = threading.Thread(target=fake.serve_forever, daemon=True)
    thread.start()
    import os
    env = dict(os.environ, AGENTCORE_LOCAL_MODEL_PROVIDER_API_KEY="sk-local-test")
    emu = start(tmp_path_factory.mktemp("bedrock-openai"), "--model-provider", f"openai:{fake.url}",
                "--model-provider-model", "tiny-llm", env=env)
    emu.fake = fake
    yield emu
    emu.stop()
    fake.shutdown()


def test_openai_provider_translates_a_tool_loop(openai):
    rt = boto_client(openai.url, "bedrock-runtime")
    openai.fake.requests.clear()
    messages = [user("weather in Oslo?")]
    first = rt.converse(modelId=MODEL, system=[{"text": "Be brief."}], messages=messages,
                        toolConfig={"tools": [WEATHER_TOOL], "toolChoice": {"auto": {}}},
                        inferenceConfig={"maxTokens": 64, "temperature": 0.2})
    assert first["stopReason"] == "tool_use"
    call = first["output"]["message"]["content"][0]["toolUse"]
    assert call == {"toolUseId": "call_7", "name": "get_weather", "input": {"city": "Oslo"}}
    assert first["usage"] == {"inputTokens": 11, "outputTokens": 5, "totalTokens": 16}
    sent = openai.fake.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-local-test"
    assert sent["body"]["model"] == "tiny-llm" and sent["body"]["stream"] is False
    assert sent["body"]["messages"] == [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "weather in Oslo?"}]
    assert sent["body"]["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city",
        "parameters": WEATHER_TOOL["toolSpec"]["inputSchema"]["json"]}}]
    assert (sent["body"]["tool_choice"], sent["body"]["max_tokens"], sent["body"]["temperature"]) == ("auto", 64, 0.2)

    messages.append(first["output"]["message"])
    messages.append({"role": "user", "content": [{"toolResult": {"toolUseId": "call_7", "content": [{"text": "rain"}]}}]})
    response = rt.converse_stream(modelId=MODEL, messages=messages, toolConfig={"tools": [WEATHER_TOOL]})
    events = stream_events(response)
    text = "".join(b["delta"]["text"] for n, b in events if n == "contentBlockDelta")
    assert text == "fake model saw: rain"
    assert ("messageStop", {"stopReason": "end_turn"}) in events
    assert events[-1][1]["usage"] == {"inputTokens": 11, "outputTokens": 5, "totalTokens": 16}
    sent = openai.fake.requests[-1]["body"]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == [
        {"role": "user", "content": "weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_7", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_7", "content": "rain"},
    ]


def test_openai_provider_streams_tool_calls(openai):
    rt = boto_client(openai.url, "bedrock-runtime")
    events = stream_events(rt.converse_stream(modelId=MODEL, messages=[user("weather?")],
                                              toolConfig={"tools": [WEATHER_TOOL]}))
    start_event = next(b for n, b in events if n == "contentBlockStart")
    assert start_event["start"]["toolUse"] == {"toolUseId": "call_7", "name": "get_weather"}
    fragments = [b["delta"]["toolUse"]["input"] for n, b in events if n == "contentBlockDelta"]
    assert len(fragments) > 1 and json.loads("".join(fragments)) == {"city": "Oslo"}
    assert ("messageStop", {"stopReason": "tool_use"}) in events


def test_openai_server_errors_become_model_errors(openai):
    rt = boto_client(openai.url, "bedrock-runtime")
    with pytest.raises(ClientError) as e:
        rt.converse(modelId=MODEL, messages=[user("fail please")])
    assert e.value.response["Error"]["Code"] == "ModelErrorException"
    assert "503" in e.value.response["Error"]["Message"] and "model is loading" in e.value.response["Error"]["Message"]


def test_unreachable_openai_server(tmp_path):
    emu = start(tmp_path, "--model-provider", "openai:http://127.0.0.1:9/v1")
    try:
        with pytest.raises(ClientError) as e:
            boto_client(emu.url, "bedrock-runtime").converse(modelId=MODEL, messages=[user("anyone?")])
        assert e.value.response["Error"]["Code"] == "ServiceUnavailableException"
        assert "cannot be reached" in e.value.response["Error"]["Message"]
    finally:
        emu.stop()


# --- visibility -----------------------------------------------------------------------------------

def test_model_calls_are_counted_logged_and_shown(tmp_path):
    emu = start(tmp_path)
    try:
        rt = boto_client(emu.url, "bedrock-runtime")
        rt.converse(modelId="amazon.nova-micro-v1:0", messages=[user("count me in")])
        list(rt.converse_stream(modelId="amazon.nova-micro-v1:0", messages=[user("and me")])["stream"])
        with pytest.raises(ClientError):
            rt.converse(modelId="amazon.nova-micro-v1:0", messages=[])
        metrics = urllib.request.urlopen(f"{emu.url}/metrics").read().decode()
        assert ('agentcore_local_model_calls_total{model="amazon.nova-micro-v1:0",operation="Converse",'
                'outcome="success"} 1') in metrics
        assert ('agentcore_local_model_calls_total{model="amazon.nova-micro-v1:0",operation="ConverseStream",'
                'outcome="success"} 1') in metrics
        assert 'agentcore_local_model_tokens_total{model="amazon.nova-micro-v1:0",direction="input"} 5' in metrics
        assert 'agentcore_local_model_tokens_total{model="amazon.nova-micro-v1:0",direction="output"} 5' in metrics
        calls = json.loads(urllib.request.urlopen(f"{emu.url}/_agentcore-local/model-calls").read())["modelCalls"]
        assert [c["operation"] for c in calls] == ["ConverseStream", "Converse"]
        assert calls[1]["input_tokens"] == 3 and calls[1]["output_tokens"] == 3 and calls[1]["provider"] == "echo"
        dashboard = urllib.request.urlopen(f"{emu.url}/_agentcore-local/").read().decode()
        assert 'id="model-calls"' in dashboard and "amazon.nova-micro-v1:0" in dashboard
    finally:
        emu.stop()
    log = emu.log()
    assert "model call" in log and "amazon.nova-micro-v1:0" in log and "input_tokens=3" in log
