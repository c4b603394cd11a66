"""AgentCore Memory with real clients: boto3 and the AWS CLI for every operation, the bedrock-agentcore
SDK's MemoryClient and MemorySessionManager, persistence across kill -9, event expiry, account and
Region separation, and a retrieval quality check over a few hundred records."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from conftest import pip_target, ACCOUNT, REGION, ROOT, Cli, boto_client, crash, wait_until

NO_SANDBOX = ("--sandbox", "none")


@pytest.fixture
def emu(emulators):
    return emulators(*NO_SANDBOX)


@pytest.fixture
def control(emu):
    return boto_client(emu.url, "bedrock-agentcore-control")


@pytest.fixture
def data(emu):
    return boto_client(emu.url, "bedrock-agentcore")


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def wait_active(control, memory_id, timeout=15):
    def active():
        memory = control.get_memory(memoryId=memory_id)["memory"]
        return memory if memory["status"] == "ACTIVE" else None
    return wait_until(active, timeout, interval=0.05, message=f"{memory_id} ACTIVE")


def wait_records(data, memory_id, n=1, timeout=15, **where):
    """Records appear asynchronously, as on the service: poll ListMemoryRecords."""
    def enough():
        records = data.list_memory_records(memoryId=memory_id, maxResults=100, **where)["memoryRecordSummaries"]
        return records if len(records) >= n else None
    return wait_until(enough, timeout, interval=0.05, message=f"{n} records in {where}")


def strategy_id(memory, kind):
    return next(s["strategyId"] for s in memory["strategies"] if s["type"] == kind)


def say(data, memory_id, actor, session, *turns, ts=None, **kw):
    """One event of (role, text) turns."""
    payload = [{"conversational": {"content": {"text": text}, "role": role}} for role, text in turns]
    return data.create_event(memoryId=memory_id, actorId=actor, sessionId=session,
                             eventTimestamp=ts or datetime.now(timezone.utc), payload=payload, **kw)["event"]


# ---------------------------------------------------------------------------------------------
# Control plane


def test_memories_with_boto3(control):
    strategies = [
        {"semanticMemoryStrategy": {"name": "facts", "namespaceTemplates": ["/facts/{actorId}/"]}},
        {"summaryMemoryStrategy": {"name": "summaries", "description": "per session"}},
        {"userPreferenceMemoryStrategy": {"name": "prefs"}},
        {"episodicMemoryStrategy": {"name": "episodes",
                                    "reflectionConfiguration": {"namespaceTemplates": ["/reflections/{actorId}/"]}}},
        {"customMemoryStrategy": {"name": "pets", "configuration": {"semanticOverride": {
            "extraction": {"appendToPrompt": "Only facts about pets.", "modelId": "anthropic.claude-3-5-haiku-20241022-v1:0"},
            "consolidation": {"appendToPrompt": "Merge pet facts.", "modelId": "anthropic.claude-3-5-haiku-20241022-v1:0"}}}}},
    ]
    token = str(uuid.uuid4())
    created = control.create_memory(name="boto_memory", description="d", eventExpiryDuration=30,
                                    memoryStrategies=strategies, tags={"team": "memory"}, clientToken=token,
                                    memoryExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/MemoryRole")
    memory = created["memory"]
    assert memory["status"] == "CREATING"
    assert memory["arn"] == f"arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:memory/{memory['id']}"
    assert [s["status"] for s in memory["strategies"]] == ["CREATING"] * 5
    # The waiter the model defines polls GetMemory until ACTIVE.
    control.get_waiter("memory_created").wait(memoryId=memory["id"], WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    memory = control.get_memory(memoryId=memory["id"])["memory"]
    assert memory["status"] == "ACTIVE" and memory["eventExpiryDuration"] == 30
    assert memory["memoryExecutionRoleArn"].endswith("role/MemoryRole")
    by_type = {s["type"]: s for s in memory["strategies"]}
    assert set(by_type) == {"SEMANTIC", "SUMMARIZATION", "USER_PREFERENCE", "EPISODIC", "CUSTOM"}
    assert by_type["SEMANTIC"]["namespaces"] == by_type["SEMANTIC"]["namespaceTemplates"] == ["/facts/{actorId}/"]
    assert by_type["SUMMARIZATION"]["namespaceTemplates"] == [
        "/strategies/{memoryStrategyId}/actors/{actorId}/sessions/{sessionId}/"]
    assert by_type["EPISODIC"]["configuration"]["reflection"]["episodicReflectionConfiguration"][
        "namespaceTemplates"] == ["/reflections/{actorId}/"]
    custom = by_type["CUSTOM"]["configuration"]
    assert custom["type"] == "SEMANTIC_OVERRIDE"
    assert custom["extraction"]["customExtractionConfiguration"]["semanticExtractionOverride"][
        "appendToPrompt"] == "Only facts about pets."
    assert custom["consolidation"]["customConsolidationConfiguration"]["semanticConsolidationOverride"][
        "appendToPrompt"] == "Merge pet facts."
    assert all(s["strategyId"].startswith(s["name"] + "-") for s in memory["strategies"])

    # clientToken: the same request answers with the same memory; other parameters are refused.
    again = control.create_memory(name="boto_memory", description="d", eventExpiryDuration=30,
                                  memoryStrategies=strategies, tags={"team": "memory"}, clientToken=token,
                                  memoryExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/MemoryRole")
    assert again["memory"]["id"] == memory["id"]
    with pytest.raises(ClientError) as e:
        control.create_memory(name="other_name", eventExpiryDuration=30, clientToken=token)
    assert error_code(e) == "ValidationException"
    assert e.value.response["reason"] == "IdempotentParameterMismatchException"
    with pytest.raises(control.exceptions.ValidationException) as e:
        control.create_memory(name="boto_memory", eventExpiryDuration=30)
    assert "already exists" in str(e.value)

    # Strategies change through UpdateMemory; the memory settles back to ACTIVE in the background.
    summary_id, custom_id = strategy_id(memory, "SUMMARIZATION"), strategy_id(memory, "CUSTOM")
    updated = control.update_memory(memoryId=memory["id"], description="second", eventExpiryDuration=60, memoryStrategies={
        "deleteMemoryStrategies": [{"memoryStrategyId": summary_id}],
        "modifyMemoryStrategies": [{"memoryStrategyId": custom_id, "description": "cats only", "configuration": {
            "extraction": {"customExtractionConfiguration": {"semanticExtractionOverride": {
                "appendToPrompt": "Only facts about cats.", "modelId": "m2"}}}}}],
    })["memory"]
    assert updated["status"] != "ACTIVE"
    memory = wait_active(control, memory["id"])
    assert memory["description"] == "second" and memory["eventExpiryDuration"] == 60
    assert "SUMMARIZATION" not in {s["type"] for s in memory["strategies"]}
    custom = next(s for s in memory["strategies"] if s["strategyId"] == custom_id)
    assert custom["description"] == "cats only"
    assert custom["configuration"]["extraction"]["customExtractionConfiguration"]["semanticExtractionOverride"] == {
        "appendToPrompt": "Only facts about cats.", "modelId": "m2"}
    with pytest.raises(control.exceptions.ValidationException):
        control.update_memory(memoryId=memory["id"], memoryStrategies={
            "addMemoryStrategies": [{"semanticMemoryStrategy": {"name": "facts_again"}}]})

    # Tags through the shared tag operations.
    arn = memory["arn"]
    control.tag_resource(resourceArn=arn, tags={"stage": "dev"})
    assert control.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "memory", "stage": "dev"}
    control.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert control.list_tags_for_resource(resourceArn=arn)["tags"] == {"stage": "dev"}

    second = control.create_memory(name="second_memory", eventExpiryDuration=7)["memory"]
    page = control.list_memories(maxResults=1)
    assert len(page["memories"]) == 1 and page["nextToken"]
    rest = control.list_memories(maxResults=1, nextToken=page["nextToken"])
    assert [m["id"] for m in page["memories"] + rest["memories"]] == [memory["id"], second["id"]]
    assert set(rest["memories"][0]) >= {"arn", "id", "status", "createdAt", "updatedAt"}

    deleted = control.delete_memory(memoryId=memory["id"])
    assert deleted == {**deleted, "memoryId": memory["id"], "status": "DELETING"}
    wait_until(lambda: _gone(control, memory["id"]), 15, message="memory removed")
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.list_tags_for_resource(resourceArn=arn)


def _gone(control, memory_id):
    try:
        assert control.get_memory(memoryId=memory_id)["memory"]["status"] == "DELETING"
        return False
    except control.exceptions.ResourceNotFoundException:
        return True


def unchecked(url, service):
    """A client that leaves validation to the server (botocore checks ranges and patterns first)."""
    return boto3.session.Session().client(
        service, endpoint_url=url, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test",
        config=botocore.config.Config(parameter_validation=False, retries={"total_max_attempts": 1}))


def test_memory_validation_and_quotas(emu, control):
    raw = unchecked(emu.url, "bedrock-agentcore-control")
    with pytest.raises(raw.exceptions.ValidationException) as e:
        raw.create_memory(name="short_lived", eventExpiryDuration=2)
    assert "eventExpiryDuration" in str(e.value) and "greater than or equal to 3" in str(e.value)
    with pytest.raises(raw.exceptions.ValidationException):
        raw.create_memory(name="bad-name", eventExpiryDuration=30)
    seven = [{"customMemoryStrategy": {"name": f"c{i}", "configuration": {"semanticOverride": {
        "extraction": {"appendToPrompt": "x", "modelId": "m"}}}}} for i in range(7)]
    with pytest.raises(control.exceptions.ValidationException) as e:
        control.create_memory(name="seven", eventExpiryDuration=30, memoryStrategies=seven)
    assert "at most 6" in str(e.value)
    with pytest.raises(control.exceptions.ValidationException):
        control.create_memory(name="two_semantic", eventExpiryDuration=30, memoryStrategies=[
            {"semanticMemoryStrategy": {"name": "a"}}, {"semanticMemoryStrategy": {"name": "b"}}])
    with pytest.raises(control.exceptions.ValidationException) as e:
        control.create_memory(name="unknown_var", eventExpiryDuration=30, memoryStrategies=[
            {"semanticMemoryStrategy": {"name": "a", "namespaceTemplates": ["/t/{tenant}/{actorId}"]}}])
    assert "{tenant}" in str(e.value)
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.get_memory(memoryId="missing-AbCdEf1234")
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.delete_memory(memoryId="missing-AbCdEf1234")

    # 150 memories per account and Region (service quota).
    for i in range(150):
        control.create_memory(name=f"m{i}", eventExpiryDuration=3)
    with pytest.raises(ClientError) as e:
        control.create_memory(name="one_too_many", eventExpiryDuration=3)
    assert error_code(e) == "ServiceQuotaExceededException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 402


def test_accounts_and_regions_are_separate(emulators):
    emu = emulators(*NO_SANDBOX, "--credentials", "test:test", "--credentials", "AKIDOTHER:other:210987654321")
    mine = boto_client(emu.url, "bedrock-agentcore-control")
    theirs = boto_client(emu.url, "bedrock-agentcore-control", access_key="AKIDOTHER", secret="other")
    elsewhere = boto_client(emu.url, "bedrock-agentcore-control", region="eu-west-1")
    memory = mine.create_memory(name="shared_name", eventExpiryDuration=7)["memory"]
    # The same name is free in another account and in another Region.
    assert theirs.create_memory(name="shared_name", eventExpiryDuration=7)["memory"]["arn"].split(":")[4] == "210987654321"
    assert ":eu-west-1:" in elsewhere.create_memory(name="shared_name", eventExpiryDuration=7)["memory"]["arn"]
    for other in (theirs, elsewhere):
        with pytest.raises(other.exceptions.ResourceNotFoundException):
            other.get_memory(memoryId=memory["id"])
        assert [m["id"] for m in other.list_memories()["memories"]] != [memory["id"]]
    their_data = boto_client(emu.url, "bedrock-agentcore", access_key="AKIDOTHER", secret="other")
    with pytest.raises(their_data.exceptions.ResourceNotFoundException):
        their_data.list_actors(memoryId=memory["arn"])


# ---------------------------------------------------------------------------------------------
# Events


def test_events_with_boto3(control, data):
    memory = control.create_memory(name="events", eventExpiryDuration=7)["memory"]
    mid = memory["id"]
    wait_active(control, mid)
    t0 = 1_764_000_000.0
    first = say(data, mid, "alice", "s1", ("USER", "Hello"), ("ASSISTANT", "Hi!"), ts=t0,
                metadata={"channel": {"stringValue": "web"}})
    assert first["eventId"].startswith("0000001764000000000#")
    assert first["payload"][1] == {"conversational": {"content": {"text": "Hi!"}, "role": "ASSISTANT"}}
    blob = data.create_event(memoryId=mid, actorId="alice", sessionId="s1", eventTimestamp=t0 + 1,
                             payload=[{"blob": json.dumps({"state": 1})}])["event"]
    assert json.loads(blob["payload"][0]["blob"]) == {"state": 1}
    doc = data.create_event(memoryId=memory["arn"], actorId="alice", sessionId="s1", eventTimestamp=t0 + 2,
                            payload=[{"json": {"content": {"step": "paid", "amount": 3}}}])["event"]
    assert doc["memoryId"] == mid, "a memory named by ARN answers with its id"
    fork = say(data, mid, "alice", "s1", ("USER", "Rewind"), ts=t0 + 3,
               branch={"name": "retry", "rootEventId": first["eventId"]})
    assert fork["branch"] == {"name": "retry", "rootEventId": first["eventId"]}
    cont = say(data, mid, "alice", "s1", ("USER", "Again"), ts=t0 + 4, branch={"name": "retry"})
    assert cont["branch"]["rootEventId"] == first["eventId"]
    with pytest.raises(data.exceptions.ValidationException):
        say(data, mid, "alice", "s1", ("USER", "?"), ts=t0 + 5, branch={"name": "nowhere"})
    with pytest.raises(data.exceptions.ResourceNotFoundException):
        say(data, mid, "alice", "s1", ("USER", "?"), ts=t0 + 5,
            branch={"name": "other", "rootEventId": "0000000000000000001#abcdef01"})

    def ids(**kw):
        return [e["eventId"] for e in data.list_events(memoryId=mid, actorId="alice", sessionId="s1", **kw)["events"]]

    everything = [cont["eventId"], fork["eventId"], doc["eventId"], blob["eventId"], first["eventId"]]
    assert ids() == everything, "newest eventTimestamp first"
    page = data.list_events(memoryId=mid, actorId="alice", sessionId="s1", maxResults=2)
    rest = data.list_events(memoryId=mid, actorId="alice", sessionId="s1", maxResults=10, nextToken=page["nextToken"])
    assert [e["eventId"] for e in page["events"] + rest["events"]] == everything and "nextToken" not in rest
    paginated = [e["eventId"] for p in data.get_paginator("list_events").paginate(
        memoryId=mid, actorId="alice", sessionId="s1", PaginationConfig={"PageSize": 2}) for e in p["events"]]
    assert paginated == everything
    assert ids(filter={"branch": {"name": "retry", "includeParentBranches": False}}) == [cont["eventId"], fork["eventId"]]
    assert ids(filter={"branch": {"name": "retry", "includeParentBranches": True}}) == [
        cont["eventId"], fork["eventId"], first["eventId"]]
    assert ids(filter={"branch": {"name": "main", "includeParentBranches": False}}) == [
        doc["eventId"], blob["eventId"], first["eventId"]]
    assert ids(filter={"eventMetadata": [{"left": {"metadataKey": "channel"}, "operator": "EQUALS_TO",
                                          "right": {"metadataValue": {"stringValue": "web"}}}]}) == [first["eventId"]]
    assert ids(filter={"eventMetadata": [{"left": {"metadataKey": "channel"}, "operator": "NOT_EXISTS"}]}) == everything[:-1]
    bare = data.list_events(memoryId=mid, actorId="alice", sessionId="s1", includePayloads=False)["events"]
    assert all(e["payload"] == [] for e in bare)

    got = data.get_event(memoryId=mid, actorId="alice", sessionId="s1", eventId=first["eventId"])["event"]
    assert got["metadata"] == {"channel": {"stringValue": "web"}}
    assert got["eventTimestamp"] == datetime.fromtimestamp(t0, timezone.utc)

    # clientToken: a retried CreateEvent does not write a second event.
    token = str(uuid.uuid4())
    a = say(data, mid, "bob", "s9", ("USER", "once"), ts=t0, clientToken=token)
    b = say(data, mid, "bob", "s9", ("USER", "once"), ts=t0, clientToken=token)
    assert a["eventId"] == b["eventId"]
    assert len(data.list_events(memoryId=mid, actorId="bob", sessionId="s9")["events"]) == 1

    sessions = data.list_sessions(memoryId=mid, actorId="alice")["sessionSummaries"]
    assert [(s["sessionId"], s["actorId"]) for s in sessions] == [("s1", "alice")]
    assert [a["actorId"] for a in data.list_actors(memoryId=mid)["actorSummaries"]] == ["alice", "bob"]
    page = data.list_actors(memoryId=mid, maxResults=1)
    assert [a["actorId"] for a in page["actorSummaries"]] == ["alice"] and page["nextToken"]

    assert data.delete_event(memoryId=mid, actorId="bob", sessionId="s9", eventId=a["eventId"])["eventId"] == a["eventId"]
    with pytest.raises(data.exceptions.ResourceNotFoundException):
        data.get_event(memoryId=mid, actorId="bob", sessionId="s9", eventId=a["eventId"])
    with pytest.raises(data.exceptions.ResourceNotFoundException):
        data.delete_event(memoryId=mid, actorId="bob", sessionId="s9", eventId=a["eventId"])
    # The session stays (empty sessions go after a day) but no longer has events.
    assert [s["sessionId"] for s in data.list_sessions(memoryId=mid, actorId="bob")["sessionSummaries"]] == ["s9"]
    assert data.list_sessions(memoryId=mid, actorId="bob", filter={"eventFilter": "HAS_EVENTS"})["sessionSummaries"] == []

    with pytest.raises(data.exceptions.ResourceNotFoundException):
        data.list_events(memoryId="missing-AbCdEf1234", actorId="a", sessionId="s")
    with pytest.raises(data.exceptions.ValidationException):
        data.list_events(memoryId=mid, actorId="alice", sessionId="s1", nextToken="bogus")


def test_events_expire_after_event_expiry_duration(emulators):
    # One day lasts 0.00001 of a day (0.864 s): three days are about 2.6 s.
    emu = emulators(*NO_SANDBOX, "--memory-time-scale", "0.00001")
    control, data = boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")
    mid = control.create_memory(name="brief", eventExpiryDuration=3)["memory"]["id"]
    wait_active(control, mid)
    event = say(data, mid, "alice", "s1", ("USER", "soon forgotten"))
    assert data.get_event(memoryId=mid, actorId="alice", sessionId="s1", eventId=event["eventId"])
    time.sleep(3)
    with pytest.raises(data.exceptions.ResourceNotFoundException):
        data.get_event(memoryId=mid, actorId="alice", sessionId="s1", eventId=event["eventId"])
    assert data.list_events(memoryId=mid, actorId="alice", sessionId="s1")["events"] == []
    assert data.list_sessions(memoryId=mid, actorId="alice", filter={"eventFilter": "HAS_EVENTS"})["sessionSummaries"] == []


# ---------------------------------------------------------------------------------------------
# Long-term memory


def test_extraction_strategies(control, data):
    memory = control.create_memory(name="extract", eventExpiryDuration=30, namespaceKeys=[
        {"key": "tenant", "validation": {"allowedValues": ["acme", "globex"]}}], memoryStrategies=[
        {"semanticMemoryStrategy": {"name": "facts", "namespaceTemplates": ["/{tenant}/facts/{actorId}/"]}},
        {"summaryMemoryStrategy": {"name": "summaries", "namespaceTemplates": ["/{tenant}/summaries/{actorId}/{sessionId}/"]}},
        {"userPreferenceMemoryStrategy": {"name": "prefs", "namespaceTemplates": ["/{tenant}/prefs/{actorId}/"]}},
        {"episodicMemoryStrategy": {"name": "episodes", "namespaceTemplates": ["/{tenant}/episodes/{actorId}/{sessionId}/"],
                                    "reflectionConfiguration": {"namespaceTemplates": ["/{tenant}/reflections/{actorId}/"]}}},
    ])["memory"]
    mid = memory["id"]
    wait_active(control, mid)
    acme = {"namespaceVariables": {"tenant": "acme"}}
    say(data, mid, "alice", "s1", ("USER", "I live in Lisbon. I really like dark roast coffee. Can you help?"),
        ("ASSISTANT", "Of course."), extractionConfig=acme)
    say(data, mid, "alice", "s1", ("USER", "My cat is called Miso."), ("ASSISTANT", "Lovely name."),
        extractionConfig=acme)
    say(data, mid, "alice", "s1", ("USER", "Please forget this: my PIN is 1234."), extractionMode="SKIP",
        extractionConfig=acme)
    facts = wait_records(data, mid, 3, namespace="/acme/facts/alice/")
    assert sorted(r["content"]["text"] for r in facts) == [
        "I live in Lisbon.", "I really like dark roast coffee.", "My cat is called Miso."]
    assert all(r["memoryStrategyId"] == strategy_id(memory, "SEMANTIC") for r in facts)
    prefs = wait_records(data, mid, 1, namespace="/acme/prefs/alice/")
    assert [json.loads(r["content"]["text"])["preference"] for r in prefs] == ["I really like dark roast coffee."]
    summary = wait_until(lambda: (s := data.list_memory_records(memoryId=mid, namespace="/acme/summaries/alice/s1/")[
        "memoryRecordSummaries"]) and "Miso" in s[0]["content"]["text"] and s, 15, message="summary with both turns")
    assert len(summary) == 1, "a session's summary is one record, rewritten as the session grows"
    assert "PIN" not in summary[0]["content"]["text"], "extractionMode SKIP keeps an event out of long-term memory"
    episode = wait_records(data, mid, 1, namespace="/acme/episodes/alice/s1/")
    assert "the user asked: I live in Lisbon." in episode[0]["content"]["text"]
    reflection = wait_records(data, mid, 1, namespace="/acme/reflections/alice/")
    assert reflection[0]["content"]["text"].startswith("Reflection for alice")
    under_acme = wait_records(data, mid, 7, namespacePath="/acme/")
    assert {r["namespaces"][0].split("/")[2] for r in under_acme} == {
        "facts", "summaries", "prefs", "episodes", "reflections"}
    assert data.list_memory_records(memoryId=mid, namespacePath="/acm")["memoryRecordSummaries"] == [], \
        "a namespace path matches whole segments"
    assert all("PIN" not in r["content"]["text"] for r in under_acme)

    # The same statement again does not make a second fact.
    say(data, mid, "alice", "s2", ("USER", "I live in Lisbon."), extractionConfig=acme)
    wait_records(data, mid, 1, namespace="/acme/summaries/alice/s2/")
    assert len(data.list_memory_records(memoryId=mid, namespace="/acme/facts/alice/")["memoryRecordSummaries"]) == 3

    # Namespace variables are checked against the memory's namespaceKeys.
    with pytest.raises(data.exceptions.ValidationException):
        say(data, mid, "alice", "s1", ("USER", "x"), extractionConfig={"namespaceVariables": {"tenant": "initech"}})
    with pytest.raises(data.exceptions.ValidationException):
        say(data, mid, "alice", "s1", ("USER", "x"))
    assert data.list_memory_extraction_jobs(memoryId=mid)["jobs"] == []
    with pytest.raises(data.exceptions.ResourceNotFoundException):
        data.start_memory_extraction_job(memoryId=mid, extractionJob={"jobId": "job-0"})


def test_records_and_retrieval_with_boto3(control, data):
    memory = control.create_memory(name="records", eventExpiryDuration=30, indexedKeys=[
        {"key": "priority", "type": "NUMBER"}, {"key": "team", "type": "STRING"}, {"key": "labels", "type": "STRINGLIST"}])["memory"]
    mid = memory["id"]
    wait_active(control, mid)
    now = datetime.now(timezone.utc)
    texts = ["The deploy pipeline runs every night at two.", "Grace owns the billing service.",
             "The staging database is restored on Mondays.", "Billing invoices are sent on the first of the month."]
    created = data.batch_create_memory_records(memoryId=mid, clientToken=str(uuid.uuid4()), records=[
        {"requestIdentifier": f"r{i}", "namespaces": ["/team/ops/"], "content": {"text": t}, "timestamp": now,
         "memoryStrategyId": "manual", "metadata": {"priority": {"numberValue": i}, "team": {"stringValue": "ops"},
                                                    "labels": {"stringListValue": ["a", f"l{i}"]}}}
        for i, t in enumerate(texts)] + [
        {"requestIdentifier": "bad", "namespaces": ["/team/ops/"], "content": {"text": "x"}, "timestamp": now,
         "metadata": {"priority": {"stringValue": "high"}}}],
        recordExpirySpecification={"recordExpiryDurationDays": 31})
    assert [r["requestIdentifier"] for r in created["successfulRecords"]] == ["r0", "r1", "r2", "r3"]
    assert [(r["requestIdentifier"], r["status"], r["errorCode"]) for r in created["failedRecords"]] == [("bad", "FAILED", 400)]
    ids = [r["memoryRecordId"] for r in created["successfulRecords"]]
    record = data.get_memory_record(memoryId=mid, memoryRecordId=ids[1])["memoryRecord"]
    assert record["content"]["text"] == texts[1] and record["namespaces"] == ["/team/ops/"]
    assert record["memoryStrategyId"] == "manual" and record["metadata"]["team"] == {"stringValue": "ops"}
    assert 30 < (record["expiresAt"] - record["createdAt"]).days <= 31

    hits = data.retrieve_memory_records(memoryId=mid, namespace="/team/ops/",
                                        searchCriteria={"searchQuery": "who owns billing?", "topK": 2})["memoryRecordSummaries"]
    assert [h["memoryRecordId"] for h in hits] == [ids[1], ids[3]]
    assert 1 > hits[0]["score"] > hits[1]["score"] > 0
    filtered = data.retrieve_memory_records(memoryId=mid, namespacePath="/team", searchCriteria={
        "searchQuery": "billing", "metadataFilters": [
            {"left": {"metadataKey": "priority"}, "operator": "GREATER_THAN", "right": {"metadataValue": {"numberValue": 2}}}]})
    assert [h["memoryRecordId"] for h in filtered["memoryRecordSummaries"]] == [ids[3]]
    with pytest.raises(data.exceptions.ValidationException):
        data.retrieve_memory_records(memoryId=mid, namespace="/team/ops/", searchCriteria={
            "searchQuery": "x", "metadataFilters": [{"left": {"metadataKey": "unindexed"}, "operator": "EXISTS"}]})
    with pytest.raises(data.exceptions.ValidationException):
        data.retrieve_memory_records(memoryId=mid, searchCriteria={"searchQuery": "billing"})
    paged = data.retrieve_memory_records(memoryId=mid, namespace="/team/ops/", maxResults=1,
                                         searchCriteria={"searchQuery": "billing service invoices", "topK": 2})
    more = data.retrieve_memory_records(memoryId=mid, namespace="/team/ops/", maxResults=1, nextToken=paged["nextToken"],
                                        searchCriteria={"searchQuery": "billing service invoices", "topK": 2})
    assert len(paged["memoryRecordSummaries"] + more["memoryRecordSummaries"]) == 2 and "nextToken" not in more

    listed = data.list_memory_records(memoryId=mid, namespace="/team/ops/", metadataFilters=[
        {"left": {"metadataKey": "labels"}, "operator": "CONTAINS", "right": {"metadataValue": {"stringValue": "l2"}}}])
    assert [r["memoryRecordId"] for r in listed["memoryRecordSummaries"]] == [ids[2]]
    first = data.list_memory_records(memoryId=mid, namespace="/team/ops/", maxResults=3)
    second = data.list_memory_records(memoryId=mid, namespace="/team/ops/", nextToken=first["nextToken"])
    assert [r["memoryRecordId"] for r in first["memoryRecordSummaries"] + second["memoryRecordSummaries"]] == ids[::-1]

    updated = data.batch_update_memory_records(memoryId=mid, records=[
        {"memoryRecordId": ids[0], "timestamp": now, "content": {"text": "The deploy pipeline runs every hour."},
         "namespaces": ["/team/dev/"]},
        {"memoryRecordId": "mem-" + "0" * 36, "timestamp": now}], recordExpirySpecification={"action": "REMOVE"})
    assert [r["memoryRecordId"] for r in updated["successfulRecords"]] == [ids[0]]
    assert updated["failedRecords"][0]["errorCode"] == 404
    record = data.get_memory_record(memoryId=mid, memoryRecordId=ids[0])["memoryRecord"]
    assert record["namespaces"] == ["/team/dev/"] and "expiresAt" not in record
    hourly = data.retrieve_memory_records(memoryId=mid, namespace="/team/dev/", searchCriteria={"searchQuery": "hourly deploy every hour"})
    assert [h["memoryRecordId"] for h in hourly["memoryRecordSummaries"]] == [ids[0]], "updated text is re-indexed"

    deleted = data.batch_delete_memory_records(memoryId=mid, records=[{"memoryRecordId": ids[1]}, {"memoryRecordId": ids[1]}])
    assert len(deleted["successfulRecords"]) == 1 and deleted["failedRecords"][0]["errorCode"] == 404
    assert data.delete_memory_record(memoryId=mid, memoryRecordId=ids[2])["memoryRecordId"] == ids[2]
    with pytest.raises(data.exceptions.ResourceNotFoundException):
        data.get_memory_record(memoryId=mid, memoryRecordId=ids[2])
    with pytest.raises(data.exceptions.ResourceNotFoundException):
        data.delete_memory_record(memoryId=mid, memoryRecordId=ids[2])
    remaining = data.retrieve_memory_records(memoryId=mid, namespacePath="/", searchCriteria={"searchQuery": "billing owns"})
    assert [h["memoryRecordId"] for h in remaining["memoryRecordSummaries"]] == [ids[3]], "deleted records are unindexed"


# ---------------------------------------------------------------------------------------------
# The AWS CLI, every operation


def test_every_memory_operation_with_the_cli(emu):
    cli = Cli(emu.url)
    created = cli.json("bedrock-agentcore-control", "create-memory", "--name", "cli_memory", "--event-expiry-duration", "30",
                       "--memory-strategies", json.dumps([{"semanticMemoryStrategy": {"name": "facts",
                                                                                     "namespaceTemplates": ["/f/{actorId}/"]}}]),
                       "--tags", "team=cli")["memory"]
    mid, arn = created["id"], created["arn"]
    wait_until(lambda: cli.json("bedrock-agentcore-control", "get-memory", "--memory-id", mid)["memory"]["status"] == "ACTIVE",
               15, message="ACTIVE")
    assert [m["id"] for m in cli.json("bedrock-agentcore-control", "list-memories")["memories"]] == [mid]
    updated = cli.json("bedrock-agentcore-control", "update-memory", "--memory-id", mid, "--description", "via cli")
    assert updated["memory"]["description"] == "via cli"
    cli.json("bedrock-agentcore-control", "tag-resource", "--resource-arn", arn, "--tags", "stage=dev")
    assert cli.json("bedrock-agentcore-control", "list-tags-for-resource", "--resource-arn", arn)["tags"] == {
        "team": "cli", "stage": "dev"}
    cli.json("bedrock-agentcore-control", "untag-resource", "--resource-arn", arn, "--tag-keys", "team")

    d = ["bedrock-agentcore"]
    event = cli.json(*d, "create-event", "--memory-id", mid, "--actor-id", "carol", "--session-id", "s1",
                     "--event-timestamp", "2025-11-24T16:00:00Z", "--payload",
                     json.dumps([{"conversational": {"content": {"text": "I play the cello in an orchestra."}, "role": "USER"}}]))["event"]
    eid = event["eventId"]
    assert cli.json(*d, "get-event", "--memory-id", mid, "--actor-id", "carol", "--session-id", "s1", "--event-id", eid)[
        "event"]["payload"][0]["conversational"]["role"] == "USER"
    assert [e["eventId"] for e in cli.json(*d, "list-events", "--memory-id", mid, "--actor-id", "carol",
                                           "--session-id", "s1")["events"]] == [eid]
    assert cli.json(*d, "list-sessions", "--memory-id", mid, "--actor-id", "carol")["sessionSummaries"][0]["sessionId"] == "s1"
    assert cli.json(*d, "list-actors", "--memory-id", mid)["actorSummaries"] == [{"actorId": "carol"}]
    records = wait_until(lambda: cli.json(*d, "list-memory-records", "--memory-id", mid, "--namespace", "/f/carol/")[
        "memoryRecordSummaries"], 15, message="extracted record")
    assert records[0]["content"]["text"] == "I play the cello in an orchestra."
    hits = cli.json(*d, "retrieve-memory-records", "--memory-id", mid, "--namespace", "/f/carol/",
                    "--search-criteria", json.dumps({"searchQuery": "cello", "topK": 1}))
    assert hits["memoryRecordSummaries"][0]["memoryRecordId"] == records[0]["memoryRecordId"]
    made = cli.json(*d, "batch-create-memory-records", "--memory-id", mid, "--records", json.dumps([
        {"requestIdentifier": "one", "namespaces": ["/f/carol/"], "content": {"text": "Carol tours in May."},
         "timestamp": 1764000000}]))
    rid = made["successfulRecords"][0]["memoryRecordId"]
    cli.json(*d, "batch-update-memory-records", "--memory-id", mid, "--records", json.dumps([
        {"memoryRecordId": rid, "timestamp": 1764000001, "content": {"text": "Carol tours in June."}}]))
    assert cli.json(*d, "get-memory-record", "--memory-id", mid, "--memory-record-id", rid)[
        "memoryRecord"]["content"]["text"] == "Carol tours in June."
    assert cli.json(*d, "batch-delete-memory-records", "--memory-id", mid, "--records",
                    json.dumps([{"memoryRecordId": rid}]))["successfulRecords"][0]["memoryRecordId"] == rid
    assert cli.json(*d, "delete-memory-record", "--memory-id", mid, "--memory-record-id",
                    records[0]["memoryRecordId"])["memoryRecordId"] == records[0]["memoryRecordId"]
    assert cli.json(*d, "list-memory-extraction-jobs", "--memory-id", mid)["jobs"] == []
    missing = cli.run(*d, "start-memory-extraction-job", "--memory-id", mid, "--extraction-job", "jobId=job-0", check=False)
    assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr
    assert cli.json(*d, "delete-event", "--memory-id", mid, "--actor-id", "carol", "--session-id", "s1",
                    "--event-id", eid)["eventId"] == eid
    taken = cli.run("bedrock-agentcore-control", "create-memory", "--name", "cli_memory", "--event-expiry-duration", "7",
                    check=False)
    assert taken.returncode != 0 and "ValidationException" in taken.stderr and "already exists" in taken.stderr
    assert cli.json("bedrock-agentcore-control", "delete-memory", "--memory-id", mid)["status"] == "DELETING"


# ---------------------------------------------------------------------------------------------
# The bedrock-agentcore SDK


@pytest.fixture
def sdk_env(emu, monkeypatch):
    """The SDK builds its own boto3 clients: point them at the emulator through the environment."""
    for k in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(k)
    for k, v in dict(AWS_ENDPOINT_URL=emu.url, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                     AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION, AWS_CONFIG_FILE="/dev/null",
                     AWS_SHARED_CREDENTIALS_FILE="/dev/null").items():
        monkeypatch.setenv(k, v)
    return emu


def test_memory_client(sdk_env):
    from bedrock_agentcore.memory import MemoryClient

    client = MemoryClient(region_name=REGION)
    memory = client.create_memory_and_wait(name="sdk_client", strategies=[
        {"semanticMemoryStrategy": {"name": "facts"}}], event_expiry_days=30, poll_interval=1)
    assert memory["status"] == "ACTIVE"
    mid = memory["id"]
    # create_or_get_memory relies on the service's "already exists" ValidationException.
    assert client.create_or_get_memory(name="sdk_client")["id"] == mid
    root = client.create_event(mid, "dave", "s1", [("I grow tomatoes on my balcony.", "USER"), ("Nice!", "ASSISTANT")])
    client.create_event(mid, "dave", "s1", [("How often should I water them?", "USER"), ("Daily in summer.", "ASSISTANT")])
    turns = client.get_last_k_turns(mid, "dave", "s1", k=2)
    assert [t[0]["content"]["text"] for t in turns] == ["How often should I water them?", "I grow tomatoes on my balcony."]
    client.fork_conversation(mid, "dave", "s1", root["eventId"], "alt", [("Actually, peppers.", "USER")])
    branches = {b["name"]: b for b in client.list_branches(mid, "dave", "s1")}
    assert branches["alt"]["rootEventId"] == root["eventId"] and branches["main"]["eventCount"] == 2
    alt = client.list_branch_events(mid, "dave", "s1", branch_name="alt", include_parent_branches=True)
    assert [e["payload"][0]["conversational"]["content"]["text"] for e in alt] == [
        "Actually, peppers.", "I grow tomatoes on my balcony."]
    client.create_blob_event(mid, "dave", "s1", {"cart": ["seeds"]}, metadata={"kind": {"stringValue": "cart"}})
    carts = client.list_events(mid, "dave", "s1", event_metadata=[
        {"left": {"metadataKey": "kind"}, "operator": "EQUALS_TO", "right": {"metadataValue": {"stringValue": "cart"}}}])
    assert carts[0]["payload"][0]["blob"] == {"cart": ["seeds"]}

    namespace = f"/strategies/{memory['strategies'][0]['strategyId']}/actors/dave/"
    assert client.wait_for_memories(mid, namespace, test_query="tomatoes", max_wait=15, poll_interval=1)
    found = client.retrieve_memories(mid, namespace=namespace, query="what vegetables does dave grow", top_k=3)
    assert found[0]["content"]["text"] == "I grow tomatoes on my balcony." and found[0]["score"] > 0

    memory = client.add_summary_strategy_and_wait(mid, name="summaries", max_wait=30, poll_interval=1)
    assert {s["type"] for s in memory["strategies"]} == {"SEMANTIC", "SUMMARIZATION"}
    assert {s["type"] for s in client.get_memory_strategies(mid)} == {"SEMANTIC", "SUMMARIZATION"}
    assert client.get_memory_status(mid) == "ACTIVE"
    assert [m["id"] for m in client.list_memories()] == [mid]
    client.delete_memory_and_wait(mid, max_wait=30, poll_interval=1)
    assert client.list_memories() == []


def test_memory_session_manager(sdk_env):
    from bedrock_agentcore.memory import MemoryClient
    from bedrock_agentcore.memory.constants import BlobMessage, ConversationalMessage, MessageRole
    from bedrock_agentcore.memory.session import MemorySessionManager

    memory = MemoryClient(region_name=REGION).create_memory_and_wait(name="sdk_sessions", strategies=[
        {"userPreferenceMemoryStrategy": {"name": "prefs", "namespaceTemplates": ["/prefs/{actorId}/"]}}], poll_interval=1)
    manager = MemorySessionManager(memory_id=memory["id"], region_name=REGION)
    session = manager.create_memory_session(actor_id="erin", session_id="trip")
    first = session.add_turns([ConversationalMessage("I prefer window seats on long flights.", MessageRole.USER),
                               ConversationalMessage("Noted, a window seat.", MessageRole.ASSISTANT)])
    session.add_turns([BlobMessage({"itinerary": ["LIS", "NRT"]})])
    session.add_turns([ConversationalMessage("Book the 9am one.", MessageRole.USER)])
    turns = session.get_last_k_turns(k=1)
    assert turns[0][0]["content"]["text"] == "Book the 9am one."
    assert session.get_event(first["eventId"])["payload"][0]["conversational"]["role"] == "USER"
    events = session.list_events()
    assert len(events) == 3 and events[0]["eventTimestamp"] >= events[-1]["eventTimestamp"]

    records = wait_until(lambda: manager.list_long_term_memory_records(namespace="/prefs/erin/"), 15,
                         message="preference record")
    assert json.loads(records[0]["content"]["text"])["preference"] == "I prefer window seats on long flights."
    hits = session.search_long_term_memories("seat preference", namespace_path="/prefs/", top_k=3)
    assert hits and hits[0]["memoryRecordId"] == records[0]["memoryRecordId"]
    assert [a["actorId"] for a in manager.list_actors()] == ["erin"]
    assert [s["sessionId"] for s in manager.list_actor_sessions("erin")] == ["trip"]
    record = session.get_memory_record(records[0]["memoryRecordId"])
    assert record["memoryRecordId"] == records[0]["memoryRecordId"]
    result = manager.delete_all_long_term_memories_in_namespace("/prefs/erin/")
    assert len(result["successfulRecords"]) == 1
    assert manager.list_long_term_memory_records(namespace="/prefs/erin/") == []
    session.delete_event(first["eventId"])
    assert len(session.list_events()) == 2


# ---------------------------------------------------------------------------------------------
# Persistence


def test_memory_survives_kill_9(emulators, tmp_path):
    data_dir = tmp_path / "data"
    emu = emulators(*NO_SANDBOX, data_dir=data_dir)
    control, data = boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")
    memory = control.create_memory(name="durable", eventExpiryDuration=30, tags={"k": "v"}, memoryStrategies=[
        {"semanticMemoryStrategy": {"name": "facts", "namespaceTemplates": ["/f/{actorId}/"]}}])["memory"]
    mid = memory["id"]
    wait_active(control, mid)
    say(data, mid, "frank", "s1", ("USER", "My bike is a red fixie."), ts=1_764_000_000)
    fact = wait_records(data, mid, 1, namespace="/f/frank/")[0]
    manual = data.batch_create_memory_records(memoryId=mid, records=[{
        "requestIdentifier": "m", "namespaces": ["/f/frank/"], "content": {"text": "Frank commutes twenty minutes."},
        "timestamp": 1_764_000_000}])["successfulRecords"][0]["memoryRecordId"]
    # Acknowledged, then killed at once: the event, the queued extraction and the records survive.
    last = say(data, mid, "frank", "s1", ("USER", "My helmet is matte black."), ts=1_764_000_001)
    before = {
        "memory": control.get_memory(memoryId=mid)["memory"],
        "events": data.list_events(memoryId=mid, actorId="frank", sessionId="s1")["events"],
        "tags": control.list_tags_for_resource(resourceArn=memory["arn"])["tags"],
    }
    crash(emu)

    emu = emulators(*NO_SANDBOX, data_dir=data_dir)
    control, data = boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")
    assert control.get_memory(memoryId=mid)["memory"] == before["memory"]
    assert data.list_events(memoryId=mid, actorId="frank", sessionId="s1")["events"] == before["events"]
    assert before["events"][0]["eventId"] == last["eventId"]
    assert control.list_tags_for_resource(resourceArn=memory["arn"])["tags"] == before["tags"]
    records = wait_records(data, mid, 3, namespace="/f/frank/")
    assert {r["content"]["text"] for r in records} == {
        "My bike is a red fixie.", "Frank commutes twenty minutes.", "My helmet is matte black."}
    hits = data.retrieve_memory_records(memoryId=mid, namespace="/f/frank/", searchCriteria={"searchQuery": "bike colour red"})
    assert hits["memoryRecordSummaries"][0]["memoryRecordId"] == fact["memoryRecordId"], "the index survives too"
    assert data.get_memory_record(memoryId=mid, memoryRecordId=manual)["memoryRecord"]["content"]["text"].startswith("Frank")
    assert emu.stop(signal.SIGTERM) == 0


# ---------------------------------------------------------------------------------------------
# Retrieval quality

PEOPLE = ["Alice", "Bruno", "Chiara", "Dmitri", "Esther", "Farid", "Greta", "Hiroshi", "Ines", "Jonas",
          "Kwame", "Leila", "Mateo", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tamsin",
          "Umar", "Valeria", "Wen", "Ximena", "Yusuf", "Zofia", "Anders", "Beatriz", "Cyrus", "Delphine"]
ATTRIBUTES = [
    ("favorite color is {}", ["teal", "crimson", "ochre", "violet", "amber", "indigo", "coral", "olive", "scarlet", "cobalt"],
     "What is {}'s favorite color?"),
    ("works as a {}", ["pharmacist", "carpenter", "geologist", "translator", "pilot", "baker", "architect", "nurse",
                       "locksmith", "astronomer"], "What does {} work as?"),
    ("lives in {}", ["Lisbon", "Oslo", "Nairobi", "Kyoto", "Quito", "Tbilisi", "Hobart", "Tallinn", "Accra", "Montreal"],
     "Which city does {} live in?"),
    ("has a pet {}", ["iguana", "parrot", "ferret", "beagle", "tortoise", "hamster", "goldfish", "rabbit", "cockatoo",
                      "chinchilla"], "What pet does {} have?"),
    ("is allergic to {}", ["peanuts", "penicillin", "shellfish", "pollen", "latex", "gluten", "dust", "sesame", "soy",
                           "wasps"], "What is {} allergic to?"),
    ("plays the {}", ["cello", "banjo", "oboe", "harp", "trombone", "ukulele", "sitar", "accordion", "bassoon", "marimba"],
     "Which instrument does {} play?"),
    ("drives a {} car", ["blue", "green", "silver", "yellow", "black", "white", "orange", "maroon", "beige", "purple"],
     "What car does {} drive?"),
    ("was born in {}", ["1971", "1983", "1990", "1965", "1978", "1988", "1995", "1969", "1980", "1999"],
     "When was {} born?"),
    ("supports the {} football club", ["Rovers", "United", "Athletic", "Wanderers", "Rangers", "Albion", "Town", "City",
                                       "Harriers", "Hotspur"], "Which football club does {} support?"),
    ("speaks {} at home", ["Portuguese", "Norwegian", "Swahili", "Japanese", "Quechua", "Georgian", "Estonian", "Twi",
                           "Tagalog", "Welsh"], "Which language does {} speak at home?"),
]


def test_retrieval_quality(control, data):
    """300 facts (30 people x 10 attributes); each question must rank its fact first."""
    mid = control.create_memory(name="quality", eventExpiryDuration=30)["memory"]["id"]
    wait_active(control, mid)
    facts = {}
    records = []
    for p, person in enumerate(PEOPLE):
        for a, (template, values, _) in enumerate(ATTRIBUTES):
            text = f"{person} {template.format(values[(p + a) % len(values)])}."
            facts[(person, a)] = text
            records.append({"requestIdentifier": f"p{p}a{a}", "namespaces": ["/people/"], "content": {"text": text},
                            "timestamp": 1_764_000_000})
    ids = {}
    for i in range(0, len(records), 100):
        out = data.batch_create_memory_records(memoryId=mid, records=records[i:i + 100])
        ids.update({r["requestIdentifier"]: r["memoryRecordId"] for r in out["successfulRecords"]})
    assert len(ids) == 300
    hits = total = 0
    misses = []
    for p, person in enumerate(PEOPLE):
        for a, (_, _, question) in enumerate(ATTRIBUTES):
            total += 1
            got = data.retrieve_memory_records(memoryId=mid, namespace="/people/", searchCriteria={
                "searchQuery": question.format(person), "topK": 3})["memoryRecordSummaries"]
            if got and got[0]["memoryRecordId"] == ids[f"p{p}a{a}"]:
                hits += 1
            else:
                misses.append((question.format(person), got[0]["content"]["text"] if got else None))
    rate = hits / total
    print(f"\nretrieval quality: {hits}/{total} questions ranked their fact first (hit rate {rate:.1%}); misses: {misses}")
    assert rate >= 0.95, misses[:10]


def test_dashboard_shows_memories_with_their_events_and_records(emu, control, data):
    import urllib.request

    memory = control.create_memory(name="dash_memory", eventExpiryDuration=30, memoryStrategies=[
        {"semanticMemoryStrategy": {"name": "facts", "namespaceTemplates": ["/f/{actorId}/"]}}])["memory"]
    wait_active(control, memory["id"])
    say(data, memory["id"], "gil", "s1", ("USER", "I collect antique brass compasses."))
    wait_records(data, memory["id"], 1, namespace="/f/gil/")
    home = urllib.request.urlopen(f"{emu.url}/_agentcore-local/").read().decode()
    assert "<h2>Memories (1)</h2>" in home and "dash_memory" in home and memory["id"] in home
    recent_events = home.split('id="memory-events"')[1].split("</table>")[0]
    recent_records = home.split('id="memory-records"')[1].split("</table>")[0]
    assert "antique brass compasses" in recent_events and "gil" in recent_events and "dash_memory" in recent_events
    assert "I collect antique brass compasses." in recent_records and "/f/gil/" in recent_records
    page = urllib.request.urlopen(f"{emu.url}/_agentcore-local/memory?id={memory['id']}").read().decode()
    events = page.split('id="events"')[1].split("</table>")[0]
    records = page.split('id="records"')[1].split("</table>")[0]
    assert "antique brass compasses" in events and "gil" in events
    assert "I collect antique brass compasses." in records and "/f/gil/" in records



@pytest.fixture(scope="module")
def strands_packages(tmp_path_factory):
    """Strands and the bedrock-agentcore SDK as the Strands fixture agent pins them, in a directory of
    their own: strands-agents needs an older `mcp` than the protocol tests' pin, so it cannot share
    the test venv."""
    return pip_target(ROOT / "fixtures" / "strands-agent" / "requirements.txt")


def test_strands_session_manager_remembers_across_sessions(emu, control, strands_packages):
    """Strands' AgentCoreMemorySessionManager on the host (tests/python/strands_memory_host.py): a
    new session of the same actor is given what the first was told, through extraction and
    retrieval, and the first session restores its messages."""
    memory = control.create_memory(name="strands_memory", eventExpiryDuration=30, memoryStrategies=[
        {"semanticMemoryStrategy": {"name": "facts", "namespaceTemplates": ["/facts/{actorId}/"]}}])["memory"]
    wait_active(control, memory["id"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=emu.url, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION, AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null", PYTHONPATH=str(strands_packages), MEMORY_ID=memory["id"])
    script = Path(__file__).with_name("strands_memory_host.py")
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "<user_context>" in result["second_session_sent"] and "Aconcagua" in result["second_session_sent"], result
    assert result["restored"][:2] == ["My favourite mountain is Aconcagua.", "Noted."], result


def test_extraction_runs_on_the_model_provider(emulators, tmp_path):
    """With a model provider (here a script), extraction prompts go to it and its answer becomes
    the records; a prompt it cannot answer leaves a FAILED job. The rules would have stored the
    user's own words instead."""
    script = tmp_path / "extract.json"
    script.write_text(json.dumps({"rules": [
        {"when": {"last_user_text": "(?i)lisbon"}, "reply": {"text": "- The user lives in Lisbon, Portugal.\n- The user works remotely."}},
    ]}))
    emu = emulators(*NO_SANDBOX, "--model-provider", f"script:{script}")
    control, data = boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")
    memory = control.create_memory(name="modelled", eventExpiryDuration=30, memoryStrategies=[
        {"semanticMemoryStrategy": {"name": "facts", "namespaceTemplates": ["/facts/{actorId}/"]}}])["memory"]
    mid = memory["id"]
    wait_active(control, mid)
    say(data, mid, "alice", "s1", ("USER", "I moved to Lisbon and work from home now."), ("ASSISTANT", "Nice."))
    facts = wait_records(data, mid, 2, namespace="/facts/alice/")
    assert sorted(r["content"]["text"] for r in facts) == ["The user lives in Lisbon, Portugal.", "The user works remotely."]

    say(data, mid, "alice", "s2", ("USER", "My cat is called Miso."))
    jobs = wait_until(lambda: data.list_memory_extraction_jobs(memoryId=mid)["jobs"] or None, 15, message="a failed job")
    assert jobs[0]["status"] == "FAILED" and "No rule of the model script" in jobs[0]["failureReason"], jobs
    calls = json.loads(urllib.request.urlopen(f"{emu.url}/_agentcore-local/model-calls").read())["modelCalls"]
    extraction = [c for c in calls if c["operation"] == "MemoryExtraction"]
    assert len(extraction) == 2 and extraction[0]["provider"] == "script", calls
    assert sorted(bool(c["error"]) for c in extraction) == [False, True], calls
