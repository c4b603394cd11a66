"""Runtimes with `authorizerConfiguration.customJWTAuthorizer`: callers send `Authorization: Bearer
<JWT>` from their identity provider over plain HTTP (as the AWS docs and the bedrock-agentcore SDK
do: the SigV4 SDKs cannot), and the emulator validates the token as the service does. Tokens come
from an issuer the test starts itself (its own RSA and EC keys, discovery and JWKS on loopback)
and from the emulator's built-in issuer."""
import json
import time
from urllib.parse import quote

import botocore.exceptions
import httpx
import pytest

from conftest import ACCOUNT, CONTAINER_URI, REGION, ROLE_ARN, boto_client, new_session_id, wait_for_status, whoami
from oidc_issuer import LocalIssuer, rsa_key

SHELL_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/agentcore-local-test-agent-shell:latest"
AUDIENCE = "api://agents"
GOOD = dict(aud=AUDIENCE, client_id="web-app", scope="openid agents.invoke", groups=["staff", "agent-users"])
AUTHORIZER = dict(
    allowedAudience=[AUDIENCE],
    allowedClients=["web-app"],
    allowedScopes=["agents.invoke"],
    customClaims=[{
        "inboundTokenClaimName": "groups",
        "inboundTokenClaimValueType": "STRING_ARRAY",
        "authorizingClaimMatchValue": {"claimMatchOperator": "CONTAINS", "claimMatchValue": {"matchValueString": "agent-users"}},
    }],
)


@pytest.fixture
def issuer():
    with LocalIssuer() as iss:
        yield iss


@pytest.fixture
def stack(emulators):
    emu = emulators("--max-tps-per-endpoint", "0")
    return emu, boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")


def runtime(control, name, discovery_url=None, image=CONTAINER_URI, **kw):
    args = dict(agentRuntimeName=name, agentRuntimeArtifact={"containerConfiguration": {"containerUri": image}},
                roleArn=ROLE_ARN, networkConfiguration={"networkMode": "PUBLIC"})
    if discovery_url:
        args["authorizerConfiguration"] = {"customJWTAuthorizer": {"discoveryUrl": discovery_url, **kw.pop("authorizer", {})}}
    args.update(kw)
    rt = wait_for_status(control, control.create_agent_runtime(**args)["agentRuntimeId"])
    assert rt["status"] == "READY", rt
    return rt


def url_of(emu, arn, op="invocations"):
    return f"{emu.url}/runtimes/{quote(arn, safe='')}/{op}?qualifier=DEFAULT"


def call(emu, arn, token, payload, session=None, op="invocations", **headers):
    h = {"Content-Type": "application/json", "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": session or new_session_id()}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers)
    return httpx.post(url_of(emu, arn, op), headers=h, content=json.dumps(payload), timeout=120)


def refused(resp, status, error_type, fragment):
    assert resp.status_code == status, resp.text
    assert resp.headers["x-amzn-errortype"] == error_type, resp.headers
    assert fragment in resp.json()["message"], resp.json()


def test_independent_issuer_tokens_are_validated_like_the_service_does(stack, issuer):
    emu, control, data = stack
    rt = runtime(control, "jwt_checks", issuer.discovery_url, authorizer=AUTHORIZER)
    arn = rt["agentRuntimeArn"]

    ok = call(emu, arn, issuer.mint(**GOOD), {"hello": "rsa"})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"echo": {"hello": "rsa"}}
    ok = call(emu, arn, issuer.mint(kid="ec-1", **GOOD), {"hello": "ec"})
    assert ok.status_code == 200, ok.text

    cases = [
        (dict(GOOD, aud="api://other"), "audience"),
        (dict(GOOD, client_id="other-app"), "client_id"),
        (dict(GOOD, scope="openid profile"), "scopes"),
        (dict(GOOD, groups=["staff"]), "groups"),
        (dict(GOOD, lifetime=-120), "expired"),
        (dict(GOOD, nbf=int(time.time()) + 3600), "not valid before"),
        (dict(GOOD, iss="http://127.0.0.1:1/not-the-issuer"), "issuer"),
    ]
    for claims, fragment in cases:
        refused(call(emu, arn, issuer.mint(**claims), {}), 401, "UnauthorizedException", fragment)
    # Signed by a key the issuer never published, under the name of one it did.
    refused(call(emu, arn, issuer.mint(key=rsa_key(), **GOOD), {}), 401, "UnauthorizedException", "signature")
    refused(call(emu, arn, "not.a.jwt", {}), 401, "UnauthorizedException", "JWT")

    missing = call(emu, arn, None, {})
    refused(missing, 401, "UnauthorizedException", "Bearer")
    challenge = missing.headers["www-authenticate"]
    assert challenge.startswith('Bearer resource_metadata="') and quote(arn, safe="") in challenge, challenge
    metadata = httpx.get(challenge.split('"')[1]).json()
    assert metadata["authorization_servers"] == [issuer.url] and metadata["scopes_supported"] == ["agents.invoke"]

    with pytest.raises(botocore.exceptions.ClientError) as e:
        data.invoke_agent_runtime(agentRuntimeArn=arn, runtimeSessionId=new_session_id(), payload=b"{}")
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "Authorization method mismatch" in e.value.response["Error"]["Message"]
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_bearer_is_refused_on_a_sigv4_runtime(stack, issuer):
    emu, control, data = stack
    rt = runtime(control, "sigv4_only")
    resp = call(emu, rt["agentRuntimeArn"], issuer.mint(**GOOD), {})
    refused(resp, 403, "AccessDeniedException", "Authorization method mismatch")
    anonymous = call(emu, rt["agentRuntimeArn"], None, {})
    assert anonymous.status_code == 403 and "www-authenticate" not in anonymous.headers, anonymous.headers
    # SigV4 still works there.
    resp = data.invoke_agent_runtime(agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=new_session_id(), payload=b'{"a":1}')
    assert json.loads(resp["response"].read()) == {"echo": {"a": 1}}


def test_jwks_is_cached_and_fetched_again_for_an_unknown_key(stack, issuer):
    emu, control, _ = stack
    rt = runtime(control, "jwks_cache", issuer.discovery_url, authorizer={"allowedClients": ["web-app"]})
    arn = rt["agentRuntimeArn"]
    session = new_session_id()
    for _ in range(3):
        assert call(emu, arn, issuer.mint(**GOOD), {}, session=session).status_code == 200
    assert issuer.jwks_fetches == 1, "the key set is cached"
    time.sleep(1.1)  # the emulator refetches at most once a second
    kid = issuer.rotate()
    assert call(emu, arn, issuer.mint(kid=kid, **GOOD), {}, session=session).status_code == 200
    assert issuer.jwks_fetches == 2, "an unknown kid made one new fetch"
    time.sleep(1.1)
    issuer.keys["never-published"] = (rsa_key(), "RS256")
    refused(call(emu, arn, issuer.mint(kid="never-published", **GOOD), {}), 401, "UnauthorizedException", "JWKS")


def test_the_agent_receives_a_workload_access_token_and_authorization_only_when_allowlisted(stack, issuer):
    emu, control, data = stack
    plain = runtime(control, "wat_plain", issuer.discovery_url, authorizer={"allowedClients": ["web-app"]})
    token = issuer.mint(**GOOD)
    resp = call(emu, plain["agentRuntimeArn"], token, {"action": "whoami"})
    seen = resp.json()["headers"]
    wat = seen["workloadaccesstoken"]
    assert "authorization" not in seen, seen

    # The token is bound to the runtime's own workload identity and to the caller: Identity accepts it.
    workload = control.get_workload_identity(name=plain["agentRuntimeId"])
    assert workload["workloadIdentityArn"] == plain["workloadIdentityDetails"]["workloadIdentityArn"]
    control.create_api_key_credential_provider(name="search-key", apiKey="sk-for-agents")
    assert data.get_resource_api_key(workloadIdentityToken=wat, resourceCredentialProviderName="search-key")["apiKey"] == "sk-for-agents"

    forwarding = runtime(control, "wat_forward", issuer.discovery_url, authorizer={"allowedClients": ["web-app"]},
                         requestHeaderConfiguration={"requestHeaderAllowlist": ["Authorization"]})
    seen = call(emu, forwarding["agentRuntimeArn"], token, {"action": "whoami"}).json()["headers"]
    assert seen["authorization"] == f"Bearer {token}"
    assert seen["workloadaccesstoken"]

    # SigV4 callers get a token only when they name the user.
    sigv4 = runtime(control, "wat_sigv4")
    assert "workloadaccesstoken" not in whoami(data, sigv4["agentRuntimeArn"], new_session_id())["headers"]
    seen = whoami(data, sigv4["agentRuntimeArn"], new_session_id(), runtimeUserId="alice")["headers"]
    assert data.get_resource_api_key(workloadIdentityToken=seen["workloadaccesstoken"],
                                     resourceCredentialProviderName="search-key")["apiKey"] == "sk-for-agents"
    assert "authorization" not in seen


def test_builtin_issuer_tokens(emulators):
    emu = emulators("--issuer-client", "web-app:web-secret", "--issuer-client", "other-app:other-secret",
                    "--issuer-user", "alice:wonderland")
    control = boto_client(emu.url, "bedrock-agentcore-control")
    base = f"{emu.url}/_agentcore-local/issuer"
    meta = httpx.get(f"{base}/.well-known/openid-configuration").json()
    assert meta["issuer"] == base and httpx.get(meta["jwks_uri"]).json()["keys"][0]["alg"] == "ES256"
    rt = runtime(control, "builtin_jwt", f"{base}/.well-known/openid-configuration",
                 authorizer={"allowedClients": ["web-app"], "allowedAudience": [AUDIENCE]})
    arn = rt["agentRuntimeArn"]

    def token(client, secret, **form):
        resp = httpx.post(meta["token_endpoint"], data={"audience": AUDIENCE, **form}, auth=(client, secret))
        return resp

    m2m = token("web-app", "web-secret", grant_type="client_credentials", scope="agents.invoke")
    assert m2m.status_code == 200, m2m.text
    assert call(emu, arn, m2m.json()["access_token"], {"via": "m2m"}).json() == {"echo": {"via": "m2m"}}

    user = token("web-app", "web-secret", grant_type="password", username="alice", password="wonderland")
    assert call(emu, arn, user.json()["access_token"], {"via": "user"}).status_code == 200

    other = token("other-app", "other-secret", grant_type="client_credentials")
    refused(call(emu, arn, other.json()["access_token"], {}), 401, "UnauthorizedException", "client_id")
    assert token("web-app", "web-secret", grant_type="password", username="alice", password="nope").json()["error"] == "invalid_grant"
    assert token("web-app", "wrong", grant_type="client_credentials").status_code == 401


def test_commands_take_bearer_tokens_on_jwt_runtimes(stack, issuer):
    emu, control, data = stack
    rt = runtime(control, "jwt_shell", issuer.discovery_url, image=SHELL_URI, authorizer={"allowedClients": ["web-app"]})
    arn = rt["agentRuntimeArn"]
    resp = call(emu, arn, issuer.mint(**GOOD), {"command": "echo bearer-ok"}, op="commands")
    assert resp.status_code == 200, resp.text
    assert b"bearer-ok" in resp.content
    refused(call(emu, arn, None, {"command": "true"}, op="commands"), 401, "UnauthorizedException", "Bearer")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        data.invoke_agent_runtime_command(agentRuntimeArn=arn, runtimeSessionId=new_session_id(), body={"command": "true"})
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"


def test_authorizer_configuration_is_checked_at_creation(stack, issuer):
    _, control, _ = stack
    bad = {"inboundTokenClaimName": "groups", "inboundTokenClaimValueType": "STRING",
           "authorizingClaimMatchValue": {"claimMatchOperator": "CONTAINS", "claimMatchValue": {"matchValueString": "x"}}}
    with pytest.raises(control.exceptions.ValidationException):
        control.create_agent_runtime(
            agentRuntimeName="bad_claims", agentRuntimeArtifact={"containerConfiguration": {"containerUri": CONTAINER_URI}},
            roleArn=ROLE_ARN, networkConfiguration={"networkMode": "PUBLIC"},
            authorizerConfiguration={"customJWTAuthorizer": {"discoveryUrl": issuer.discovery_url, "customClaims": [bad]}})
