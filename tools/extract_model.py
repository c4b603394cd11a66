#!/usr/bin/env python3
"""Extract the part of botocore's service models that agentcore-local serves.

The emulator validates requests and routes operations from these files, so they must match the botocore
model (the brief: where references disagree with the model, the model wins). Regenerate after a botocore
upgrade with:  python3 tools/extract_model.py  (needs botocore importable). The Python test
`test_model_drift.py` fails when the committed files drift from the installed botocore.

Documentation strings are dropped to keep the binary small; every other key is kept verbatim.
The `allOperations` table lists every operation of the full model (method, URI) so that a request for
an operation the emulator does not implement gets a precise error naming it.

Each service's file goes to the folder that loads it: the AgentCore models beside the kernel's
model module, Bedrock's (runtime and control plane, both signed as `bedrock`) into its service folder.
"""
import gzip
import json
import os
import sys

import botocore

SERVICES = {
    "bedrock-agentcore-control/2023-06-05": [
        "CreateAgentRuntime", "GetAgentRuntime", "UpdateAgentRuntime", "DeleteAgentRuntime",
        "ListAgentRuntimes", "ListAgentRuntimeVersions",
        "CreateAgentRuntimeEndpoint", "GetAgentRuntimeEndpoint", "UpdateAgentRuntimeEndpoint",
        "DeleteAgentRuntimeEndpoint", "ListAgentRuntimeEndpoints",
        "TagResource", "UntagResource", "ListTagsForResource",
        "CreateMemory", "GetMemory", "UpdateMemory", "DeleteMemory", "ListMemories",
        # Identity
        "CreateWorkloadIdentity", "GetWorkloadIdentity", "UpdateWorkloadIdentity", "DeleteWorkloadIdentity",
        "ListWorkloadIdentities",
        "CreateApiKeyCredentialProvider", "GetApiKeyCredentialProvider", "UpdateApiKeyCredentialProvider",
        "DeleteApiKeyCredentialProvider", "ListApiKeyCredentialProviders",
        "CreateOauth2CredentialProvider", "GetOauth2CredentialProvider", "UpdateOauth2CredentialProvider",
        "DeleteOauth2CredentialProvider", "ListOauth2CredentialProviders",
        "GetTokenVault", "SetTokenVaultCMK",
    ],
    "bedrock-agentcore/2024-02-28": [
        "InvokeAgentRuntime", "StopRuntimeSession", "GetAgentCard", "InvokeAgentRuntimeCommand",
        "CreateEvent", "GetEvent", "ListEvents", "DeleteEvent", "ListSessions", "ListActors",
        "BatchCreateMemoryRecords", "BatchUpdateMemoryRecords", "BatchDeleteMemoryRecords",
        "GetMemoryRecord", "DeleteMemoryRecord", "ListMemoryRecords", "RetrieveMemoryRecords",
        "StartMemoryExtractionJob", "ListMemoryExtractionJobs",
        # Identity
        "GetWorkloadAccessToken", "GetWorkloadAccessTokenForJWT", "GetWorkloadAccessTokenForUserId",
        "GetResourceApiKey", "GetResourceOauth2Token", "CompleteResourceTokenAuth",
    ],
    "bedrock-runtime/2023-09-30": [
        "Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream", "CountTokens",
    ],
    "bedrock/2023-04-20": [
        "ListFoundationModels", "GetFoundationModel",
    ],
    # awsQuery: temporary credentials for host users and the identity behind a request.
    "sts/2011-06-15": ["GetCallerIdentity", "AssumeRole", "AssumeRoleWithWebIdentity"],
    # awsJson1_1: the agents' output as log groups and streams.
    "logs/2014-03-28": ["DescribeLogGroups", "DescribeLogStreams", "GetLogEvents", "FilterLogEvents"],
}

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
OUT_DIR = os.path.join(SRC, "kernel", "model")
# Services whose model lives in their own folder; the rest go to OUT_DIR.
OUT_DIRS = {
    "bedrock-runtime": os.path.join(SRC, "services", "bedrock", "model"),
    "bedrock": os.path.join(SRC, "services", "bedrock", "model"),
    "sts": os.path.join(SRC, "services", "sts", "model"),
    "logs": os.path.join(SRC, "services", "logs", "model"),
}


def strip_docs(value):
    if isinstance(value, dict):
        return {k: strip_docs(v) for k, v in value.items() if k != "documentation"}
    if isinstance(value, list):
        return [strip_docs(v) for v in value]
    return value


def extract(service_path, operations):
    data_dir = os.path.join(os.path.dirname(botocore.__file__), "data")
    with gzip.open(os.path.join(data_dir, service_path, "service-2.json.gz")) as f:
        model = json.load(f)
    shapes = model["shapes"]
    seen = set()

    def walk(name):
        if name in seen:
            return
        seen.add(name)
        shape = shapes[name]
        for key in ("member", "key", "value"):
            if key in shape:
                walk(shape[key]["shape"])
        for member in shape.get("members", {}).values():
            walk(member["shape"])

    for op in operations:
        spec = model["operations"][op]
        for key in ("input", "output"):
            if key in spec:
                walk(spec[key]["shape"])
        for err in spec.get("errors", []):
            walk(err["shape"])
    # Every error shape of the service, so any error we raise is one the SDKs know.
    for name, shape in shapes.items():
        if shape.get("exception"):
            walk(name)

    subset = {
        "metadata": model["metadata"],
        "operations": {op: model["operations"][op] for op in operations},
        "shapes": {name: shapes[name] for name in sorted(seen)},
        "allOperations": {
            name: {"method": spec["http"]["method"], "requestUri": spec["http"]["requestUri"]}
            for name, spec in sorted(model["operations"].items())
        },
    }
    return strip_docs(subset)


def main():
    check = "--check" in sys.argv
    status = 0
    for service_path, operations in SERVICES.items():
        service = service_path.split("/")[0]
        text = json.dumps(extract(service_path, operations), indent=1, sort_keys=True) + "\n"
        path = os.path.join(OUT_DIRS.get(service, OUT_DIR), service + ".json")
        if check:
            with open(path) as f:
                if f.read() != text:
                    print(f"{path} differs from botocore {botocore.__version__}; run tools/extract_model.py")
                    status = 1
        else:
            with open(path, "w") as f:
                f.write(text)
            print(f"wrote {path} ({len(text)} bytes) from botocore {botocore.__version__}")
    return status


if __name__ == "__main__":
    sys.exit(main())
