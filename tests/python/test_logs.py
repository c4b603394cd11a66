"""Agent output through the CloudWatch Logs API (awscli `aws logs`, boto3 `logs`)."""
import json
import time
import uuid

import pytest

from conftest import Cli, Emulator, boto_client, create_runtime, wait_for_status


def invoke(data, arn, session, payload):
    return json.loads(
        data.invoke_agent_runtime(agentRuntimeArn=arn, runtimeSessionId=session, payload=json.dumps(payload))["response"].read()
    )


def group_of(runtime_id):
    return f"/aws/bedrock-agentcore/runtimes/{runtime_id}-DEFAULT"


def wait_for_messages(logs, group, want, stream=None, timeout=10):
    deadline = time.time() + timeout
    while True:
        kw = {"logGroupName": group}
        if stream:
            kw["logStreamNames"] = [stream]
        try:
            got = [e["message"] for e in logs.filter_log_events(**kw)["events"]]
        except logs.exceptions.ResourceNotFoundException:
            got = []
        if all(w in got for w in want):
            return got
        if time.time() > deadline:
            raise AssertionError(f"missing {want} in {got}")
        time.sleep(0.2)


@pytest.fixture
def stack(tmp_path):
    emu = Emulator(extra_args=["--max-tps-per-endpoint", "0"]).start(tmp_path / "emulator.log")
    yield emu
    emu.stop()


def runtime(stack, name, **kw):
    control = boto_client(stack.url, "bedrock-agentcore-control")
    rt = create_runtime(control, name, **kw)
    assert wait_for_status(control, rt["agentRuntimeId"])["status"] == "READY"
    return rt


def test_session_output_is_a_log_stream_seen_by_the_cli(stack):
    rt = runtime(stack, "logged")
    data, cli = boto_client(stack.url, "bedrock-agentcore"), Cli(stack.url)
    session = f"logs-{uuid.uuid4()}"
    invoke(data, rt["agentRuntimeArn"], session, {"action": "log", "stdout": "line one", "stderr": "line two"})
    invoke(data, rt["agentRuntimeArn"], session, {"action": "log", "stdout": "line three"})
    group = group_of(rt["agentRuntimeId"])
    wait_for_messages(boto_client(stack.url, "logs"), group, ["line three"])

    groups = cli.json("logs", "describe-log-groups", "--log-group-name-prefix", "/aws/bedrock-agentcore/runtimes/")
    assert group in [g["logGroupName"] for g in groups["logGroups"]]
    streams = cli.json("logs", "describe-log-streams", "--log-group-name", group)["logStreams"]
    assert len(streams) == 1
    stream = streams[0]["logStreamName"]
    assert stream.endswith(f"/[runtime-logs]{session}") and stream[:10].count("/") == 2, stream
    events = cli.json("logs", "get-log-events", "--log-group-name", group, "--log-stream-name", stream, "--start-from-head")["events"]
    messages = [e["message"] for e in events]
    # From the agent's first line (before any request) through each invocation, in order.
    assert messages[0].startswith("test-agent starting")
    # Order holds within each pipe; Docker timestamps stdout and stderr separately, so their
    # interleaving is not guaranteed (nor is it in CloudWatch).
    assert messages.index("invocation 1 action=log") < messages.index("line one") < messages.index("line three")
    assert "line two" in messages
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps) and abs(stamps[-1] / 1000 - time.time()) < 60


def test_tokens_time_ranges_patterns_and_pagination(stack):
    rt = runtime(stack, "paged")
    data, logs = boto_client(stack.url, "bedrock-agentcore"), boto_client(stack.url, "logs")
    session = f"page-{uuid.uuid4()}"
    for i in range(5):
        invoke(data, rt["agentRuntimeArn"], session, {"action": "log", "stdout": f"event {i} {'ERROR' if i % 2 else 'ok'}"})
        # Docker stamps a line when its log copier reads it from the container's pipe. Warm invokes
        # are a millisecond apart, and a copier that is scheduled late (CI's load) reads several
        # lines at once and stamps them within one millisecond (CI saw events 0 and 1 share one),
        # so the time-range checks below would have no event outside the range. Spaced out, the
        # events get timestamps of their own.
        time.sleep(0.03)
    group = group_of(rt["agentRuntimeId"])
    wait_for_messages(logs, group, ["event 4 ok"])
    stream = logs.describe_log_streams(logGroupName=group)["logStreams"][0]["logStreamName"]

    # Forward paging with nextForwardToken until it stops changing, as the CLI does.
    seen, token = [], None
    while True:
        kw = {"logGroupName": group, "logStreamName": stream, "limit": 2, "startFromHead": True}
        if token:
            kw["nextToken"] = token
        page = logs.get_log_events(**kw)
        seen += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == token:
            break
        token = page["nextForwardToken"]
    assert [m for m in seen if m.startswith("event ")] == [f"event {i} {'ERROR' if i % 2 else 'ok'}" for i in range(5)]
    # Without startFromHead the newest events come first; the backward token pages back.
    newest = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=1)
    assert newest["events"][0]["message"] == "event 4 ok"
    older = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=1, nextToken=newest["nextBackwardToken"])
    assert older["events"][0]["message"] == "invocation 5 action=log"

    errors = logs.filter_log_events(logGroupName=group, filterPattern="ERROR")["events"]
    assert [e["message"] for e in errors] == ["event 1 ERROR", "event 3 ERROR"]
    assert all(e["logStreamName"] == stream for e in errors)
    phrase = logs.filter_log_events(logGroupName=group, filterPattern='"event 2"')["events"]
    assert [e["message"] for e in phrase] == ["event 2 ok"]
    middle = errors[0]["timestamp"]
    ranged = logs.filter_log_events(logGroupName=group, filterPattern="event", startTime=middle, endTime=errors[1]["timestamp"] + 1)
    # Docker stamps lines to the nanosecond and CloudWatch keeps milliseconds, so a neighbour may
    # share a bound's millisecond: check the bounds themselves, and that both ends are inside.
    end = errors[1]["timestamp"]
    assert all(middle <= e["timestamp"] <= end + 1 for e in ranged["events"])
    assert {"event 1 ERROR", "event 3 ERROR"} <= {e["message"] for e in ranged["events"]}
    inclusive = logs.filter_log_events(logGroupName=group, filterPattern="ERROR", startTime=middle, endTime=end)["events"]
    assert "event 3 ERROR" in [e["message"] for e in inclusive], "FilterLogEvents' endTime is inclusive"
    early = [e for e in logs.filter_log_events(logGroupName=group, filterPattern="event")["events"] if e["timestamp"] < middle]
    assert early, "events before the range exist, so the range is what kept them out"
    paged = [e["message"] for p in logs.get_paginator("filter_log_events").paginate(
        logGroupName=group, filterPattern="event", PaginationConfig={"PageSize": 2}) for e in p["events"]]
    assert [m for m in paged if m.startswith("event ")] == [f"event {i} {'ERROR' if i % 2 else 'ok'}" for i in range(5)]

    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.get_log_events(logGroupName=group, logStreamName="2026/01/01/[runtime-logs]nope")
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.describe_log_streams(logGroupName="/aws/bedrock-agentcore/runtimes/none-DEFAULT")


def test_a_crash_and_a_failed_start_keep_their_output(stack):
    data, logs = boto_client(stack.url, "bedrock-agentcore"), boto_client(stack.url, "logs")
    rt = runtime(stack, "crashy")
    session = f"crash-{uuid.uuid4()}"
    with pytest.raises(Exception):
        invoke(data, rt["agentRuntimeArn"], session, {"action": "exit", "code": 7})
    wait_for_messages(logs, group_of(rt["agentRuntimeId"]), ["exiting with code 7 on request"])

    broken = runtime(stack, "broken", environmentVariables={"AGENT_EXIT_ON_START": "3"})
    with pytest.raises(data.exceptions.RuntimeClientError):
        invoke(data, broken["agentRuntimeArn"], f"broken-{uuid.uuid4()}", {})
    got = wait_for_messages(logs, group_of(broken["agentRuntimeId"]), ["ImportError: test-agent was told to fail at start-up"])
    assert any(m.startswith("test-agent starting") for m in got)


def test_logs_are_scoped_to_account_and_region(stack):
    rt = runtime(stack, "scoped")
    invoke(boto_client(stack.url, "bedrock-agentcore"), rt["agentRuntimeArn"], f"s-{uuid.uuid4()}", {"action": "log", "stdout": "x"})
    wait_for_messages(boto_client(stack.url, "logs"), group_of(rt["agentRuntimeId"]), ["x"])
    west = boto_client(stack.url, "logs", region="us-west-2")
    assert west.describe_log_groups()["logGroups"] == []


def test_logs_survive_a_restart(tmp_path):
    first = Emulator(data_dir=tmp_path / "state").start(tmp_path / "one.log")
    try:
        rt = runtime(first, "durable_logs")
        invoke(boto_client(first.url, "bedrock-agentcore"), rt["agentRuntimeArn"], f"d-{uuid.uuid4()}",
               {"action": "log", "stdout": "before restart"})
        wait_for_messages(boto_client(first.url, "logs"), group_of(rt["agentRuntimeId"]), ["before restart"])
    finally:
        first.stop()
    second = Emulator(data_dir=tmp_path / "state").start(tmp_path / "two.log")
    try:
        wait_for_messages(boto_client(second.url, "logs"), group_of(rt["agentRuntimeId"]), ["before restart"], timeout=2)
    finally:
        second.stop()


def test_a_failed_invoke_puts_the_session_and_the_agents_last_lines_in_the_emulator_log(stack):
    rt = runtime(stack, "failing")
    data = boto_client(stack.url, "bedrock-agentcore")
    session = f"fail-{uuid.uuid4()}"
    with pytest.raises(data.exceptions.RuntimeClientError):
        invoke(data, rt["agentRuntimeArn"], session, {"action": "fail", "status": 503, "body": "upstream model down"})
    log = stack.log()
    entry = log[log.index("returned to the caller as RuntimeClientError"):]
    assert "\x1b[" not in log, "no colour codes in a log file"
    # One entry: the agent's last output lines, then the session, status and body.
    assert "failing with status 503: upstream model down" in entry
    assert session in entry and "status=503" in entry and "upstream model down" in entry


def test_each_runtime_keeps_its_newest_logs_within_the_retention_size(tmp_path):
    """--log-retention-mib bounds what a runtime's log group keeps: the oldest sessions go first."""
    emu = Emulator(extra_args=["--max-tps-per-endpoint", "0", "--log-retention-mib", "1"]).start(tmp_path / "emulator.log")
    try:
        rt = runtime(emu, "chatty")
        data, logs, cli = boto_client(emu.url, "bedrock-agentcore"), boto_client(emu.url, "logs"), Cli(emu.url)
        group = group_of(rt["agentRuntimeId"])
        # About 420 KB of output per session: three sessions overflow 1 MiB, two do not.
        chunk = "\n".join(f"{i:05d} " + "z" * 1000 for i in range(400))
        sessions = [f"chatty-{n}-{uuid.uuid4()}" for n in range(3)]
        for n, session in enumerate(sessions):
            invoke(data, rt["agentRuntimeArn"], session, {"action": "log", "stdout": chunk})
            invoke(data, rt["agentRuntimeArn"], session, {"action": "log", "stdout": f"session {n} done"})
            wait_for_messages(logs, group, [f"session {n} done"], timeout=20)
            time.sleep(1.1)  # stream files are aged by modification time
        kept = [s["logStreamName"] for s in cli.json("logs", "describe-log-streams", "--log-group-name", group)["logStreams"]]
        assert not any(sessions[0] in s for s in kept), kept
        assert all(any(session in s for s in kept) for session in sessions[1:]), kept
        stored = next(g for g in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"] if g["logGroupName"] == group)
        assert 0 < stored["storedBytes"] <= 1024 * 1024, stored
        # The newest session's lines are all there, in order.
        newest = next(s for s in kept if sessions[2] in s)
        got = [e["message"] for e in logs.get_log_events(logGroupName=group, logStreamName=newest, startFromHead=True, limit=10000)["events"]]
        lines = [m for m in got if m[:5].isdigit()]
        assert [int(m[:5]) for m in lines] == list(range(400)), len(lines)
    finally:
        emu.stop()


def test_requests_are_validated_against_the_logs_model(stack):
    """CloudWatch Logs input goes through the same model validator as every other service: the
    botocore model's ranges, lengths and required members, in AWS's wording (client-side validation
    off, as other SDKs do not have it)."""
    import botocore.config
    import boto3
    from botocore.exceptions import ClientError
    logs = boto3.session.Session().client(
        "logs", endpoint_url=stack.url, region_name="us-east-1", aws_access_key_id="test",
        aws_secret_access_key="test", config=botocore.config.Config(parameter_validation=False))
    with pytest.raises(ClientError) as err:
        logs.describe_log_groups(limit=0)
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    assert err.value.response["Error"]["Message"] == (
        "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1")
    with pytest.raises(ClientError) as err:
        logs.get_log_events(logGroupName="/aws/bedrock-agentcore/runtimes/x-DEFAULT", limit=10001)
    message = err.value.response["Error"]["Message"]
    assert "at 'logStreamName' failed to satisfy constraint: Member must not be null" in message
    assert "Value '10001' at 'limit'" in message and message.startswith("2 validation errors detected")
    assert logs.describe_log_groups(limit=50)["logGroups"] is not None
