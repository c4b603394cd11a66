"""SigV4 verification: raw requests signed with botocore's own signers, sent with http.client /
urllib, plus what boto3 and the CLI see when their credentials are wrong."""
import contextlib
import datetime
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request

import boto3
import botocore
import botocore.auth
import botocore.config
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import ACCOUNT, CONTAINER_URI, REGION, ROLE_ARN, Cli, boto_client, create_runtime

SIGNING_NAME = "bedrock-agentcore"
GOOD = Credentials("test", "test")
CREATE_BODY = json.dumps({
    "agentRuntimeName": "signed_agent",
    "agentRuntimeArtifact": {"containerConfiguration": {"containerUri": CONTAINER_URI}},
    "roleArn": ROLE_ARN,
    "networkConfiguration": {"networkMode": "PUBLIC"},
}).encode()


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self):
        return json.loads(self.body) if self.body else None

    @property
    def error_type(self):
        return self.headers.get("x-amzn-errortype")

    def __repr__(self):
        return f"<{self.status} {self.error_type} {self.body[:500]!r}>"


def send(request: AWSRequest) -> Reply:
    """Send a (signed) AWSRequest byte-for-byte with http.client."""
    prepared = request.prepare()
    url = urllib.parse.urlsplit(prepared.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        path = url.path + (f"?{url.query}" if url.query else "")
        conn.putrequest(prepared.method, path, skip_host=True, skip_accept_encoding=True)
        headers = dict(prepared.headers.items())
        headers.setdefault("Host", url.netloc)
        body = prepared.body or b""
        if isinstance(body, str):
            body = body.encode()
        if body or prepared.method in ("POST", "PUT"):
            headers["Content-Length"] = str(len(body))
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders(body or None)
        resp = conn.getresponse()
        return Reply(resp.status, resp.getheaders(), resp.read())
    finally:
        conn.close()


def signed(url, method="POST", path="/runtimes/", body=b"", headers=None, creds=GOOD, region=REGION, params=None):
    req = AWSRequest(method=method, url=url + path, data=body, headers=headers or {}, params=params or {})
    if body:
        req.headers["Content-Type"] = "application/json"
    SigV4Auth(creds, SIGNING_NAME, region).add_auth(req)
    return req


def presigned_url(url, path, creds=GOOD, expires=60, params=None):
    req = AWSRequest(method="GET", url=url + path, params=params or {})
    SigV4QueryAuth(creds, SIGNING_NAME, REGION, expires=expires).add_auth(req)
    return req.prepare().url


def urlopen(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return Reply(resp.status, resp.getheaders(), resp.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.headers.items(), e.read())


@contextlib.contextmanager
def shifted_clock(offset):
    """Make botocore's signers believe it is `offset` from now."""
    when = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + offset
    real = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda *a, **k: when
    try:
        yield
    finally:
        botocore.auth.get_current_datetime = real


def assert_auth_failure(reply, code):
    assert reply.status == 403, reply
    assert reply.error_type == code, reply
    assert reply.headers.get("content-type", "").startswith("application/json")
    assert reply.json()["message"], reply
    return reply.json()["message"]


def runtime_count(control):
    return len(control.list_agent_runtimes()["agentRuntimes"])


# ---------------------------------------------------------------- the baseline


def test_correctly_signed_raw_requests_are_accepted(emulator, control):
    reply = send(signed(emulator.url))
    assert reply.status == 200, reply
    assert reply.json() == {"agentRuntimes": []}
    reply = send(signed(emulator.url, method="PUT", body=CREATE_BODY))
    assert reply.status == 202, reply
    created = reply.json()
    assert created["status"] == "CREATING"
    assert created["agentRuntimeArn"] == f"arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:runtime/{created['agentRuntimeId']}"
    # Trailing slash optional, as the Rust and JS SDKs drop it.
    reply = send(signed(emulator.url, method="GET", path=f"/runtimes/{created['agentRuntimeId']}"))
    assert reply.status == 200 and reply.json()["agentRuntimeName"] == "signed_agent", reply
    # The tags path carries a percent-encoded ARN, which SigV4 encodes once more.
    arn_path = "/tags/" + urllib.parse.quote(created["agentRuntimeArn"], safe="")
    reply = send(signed(emulator.url, method="GET", path=arn_path))
    assert reply.status == 200 and reply.json() == {"tags": {}}, reply


def test_region_comes_from_the_credential_scope(emulator):
    reply = send(signed(emulator.url, method="PUT", body=CREATE_BODY, region="eu-west-3"))
    assert reply.status == 202, reply
    assert reply.json()["agentRuntimeArn"].startswith(f"arn:aws:bedrock-agentcore:eu-west-3:{ACCOUNT}:runtime/signed_agent-")
    east = boto_client(emulator.url, "bedrock-agentcore-control")
    west = boto_client(emulator.url, "bedrock-agentcore-control", region="eu-west-3")
    assert runtime_count(east) == 0 and runtime_count(west) == 1


def test_a_scope_that_names_no_aws_region_is_refused_by_every_service(emulator):
    """On AWS there is no endpoint for `xx-fake-9`; here one port serves every Region, so the
    credential scope itself is checked, with each protocol's error."""
    with pytest.raises(ClientError) as control:
        boto_client(emulator.url, "bedrock-agentcore-control", region="xx-fake-9").list_agent_runtimes()
    assert control.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert "valid region, not 'xx-fake-9'" in control.value.response["Error"]["Message"]
    assert control.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as s3:
        boto_client(emulator.url, "s3", region="xx-fake-9").list_buckets()
    assert s3.value.response["Error"]["Code"] == "AuthorizationHeaderMalformed"
    with pytest.raises(ClientError) as sts:
        boto_client(emulator.url, "sts", region="xx-fake-9").get_caller_identity()
    assert sts.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    # Regions of every partition have the same shape and pass.
    for region in ("ap-southeast-7", "us-gov-west-1", "cn-northwest-1", "mx-central-1"):
        assert boto_client(emulator.url, "bedrock-agentcore-control", region=region).list_agent_runtimes()["agentRuntimes"] == []


# ---------------------------------------------------------------- header signatures


def test_wrong_secret_is_invalid_signature_with_the_canonical_request(emulator, control):
    req = signed(emulator.url, creds=Credentials("test", "not-the-secret"))
    # What botocore itself put into the signature: the request as it was before Authorization was added.
    probe = AWSRequest(method=req.method, url=req.url, data=req.data,
                       headers={k: v for k, v in req.headers.items() if k.lower() != "authorization"})
    probe.context = dict(req.context)
    signer = SigV4Auth(GOOD, SIGNING_NAME, REGION)
    canonical = signer.canonical_request(probe)
    string_to_sign = signer.string_to_sign(probe, canonical)
    reply = send(req)
    message = assert_auth_failure(reply, "InvalidSignatureException")
    assert "does not match" in message
    assert canonical in message, f"expected canonical request\n{canonical}\nin\n{message}"
    assert string_to_sign in message


def test_wrong_secret_through_boto3_and_cli(emulator):
    client = boto_client(emulator.url, "bedrock-agentcore-control", secret="wrong")
    with pytest.raises(ClientError) as exc:
        client.list_agent_runtimes()
    err = exc.value.response
    assert err["Error"]["Code"] == "InvalidSignatureException"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 403
    proc = Cli(emulator.url, secret="wrong").run("bedrock-agentcore-control", "list-agent-runtimes", check=False)
    assert proc.returncode == 255
    assert "(InvalidSignatureException)" in proc.stderr
    proc = Cli(emulator.url, access_key="AKIDUNKNOWN", secret="x").run(
        "bedrock-agentcore-control", "list-agent-runtimes", check=False)
    assert proc.returncode == 255
    assert "(UnrecognizedClientException)" in proc.stderr


def test_unknown_access_key_is_unrecognized_client(emulator, control):
    reply = send(signed(emulator.url, method="PUT", body=CREATE_BODY, creds=Credentials("AKIDNOBODY", "test")))
    assert_auth_failure(reply, "UnrecognizedClientException")
    client = boto_client(emulator.url, "bedrock-agentcore-control", access_key="AKIDNOBODY")
    with pytest.raises(ClientError) as exc:
        client.list_agent_runtimes()
    assert exc.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert runtime_count(control) == 0


def test_no_authentication_at_all(emulator, control):
    reply = send(AWSRequest(method="PUT", url=emulator.url + "/runtimes/", data=CREATE_BODY,
                            headers={"Content-Type": "application/json"}))
    assert_auth_failure(reply, "MissingAuthenticationTokenException")
    unsigned = boto3.session.Session().client(
        "bedrock-agentcore-control", endpoint_url=emulator.url, region_name=REGION,
        config=botocore.config.Config(signature_version=botocore.UNSIGNED, retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as exc:
        unsigned.list_agent_runtimes()
    assert exc.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert runtime_count(control) == 0


def test_auth_off_accepts_any_signature_and_unsigned_requests(emulators):
    """`--auth off`: any key and secret, or none; the Region is the signature's scope's, else
    `--region`'s, and the account the configured one."""
    emu = emulators("--auth", "off", "--region", "ap-south-1")
    stranger = boto_client(emu.url, "bedrock-agentcore-control", access_key="AKIDNOBODY", secret="wrong",
                           region="eu-west-1")
    created = create_runtime(stranger, "signed_by_anyone")
    assert created["agentRuntimeArn"].startswith(f"arn:aws:bedrock-agentcore:eu-west-1:{ACCOUNT}:runtime/")
    reply = send(AWSRequest(method="PUT", url=emu.url + "/runtimes/", data=CREATE_BODY,
                            headers={"Content-Type": "application/json"}))
    assert reply.status == 202, reply
    assert reply.json()["agentRuntimeArn"].startswith(f"arn:aws:bedrock-agentcore:ap-south-1:{ACCOUNT}:runtime/")
    # Each runtime is found in its own Region.
    assert [r["agentRuntimeName"] for r in stranger.list_agent_runtimes()["agentRuntimes"]] == ["signed_by_anyone"]


def test_malformed_authorization_header_is_rejected(emulator):
    req = AWSRequest(method="POST", url=emulator.url + "/runtimes/", data=b"",
                     headers={"Authorization": "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/bedrock-agentcore/aws4_request",
                              "X-Amz-Date": "20250101T000000Z"})
    message = assert_auth_failure(send(req), "IncompleteSignatureException")
    assert "Signature" in message and "SignedHeaders" in message


@pytest.mark.parametrize("minutes", [-20, 20], ids=["past", "future"])
def test_clock_skew_beyond_15_minutes_is_rejected(emulator, control, minutes):
    with shifted_clock(datetime.timedelta(minutes=minutes)):
        reply = send(signed(emulator.url, method="PUT", body=CREATE_BODY))
    message = assert_auth_failure(reply, "InvalidSignatureException")
    assert ("Signature expired" if minutes < 0 else "Signature not yet current") in message
    assert runtime_count(control) == 0


@pytest.mark.parametrize("minutes", [-10, 10], ids=["past", "future"])
def test_clock_skew_within_15_minutes_is_accepted(emulator, minutes):
    with shifted_clock(datetime.timedelta(minutes=minutes)):
        reply = send(signed(emulator.url))
    assert reply.status == 200, reply


def test_body_tampered_after_signing_is_rejected(emulator, control):
    req = signed(emulator.url, method="PUT", body=CREATE_BODY)
    tampered = CREATE_BODY.replace(b"signed_agent", b"hacked_agent")
    assert len(tampered) == len(CREATE_BODY)
    req.data = tampered
    assert_auth_failure(send(req), "InvalidSignatureException")
    assert runtime_count(control) == 0


def test_path_query_or_signed_header_tampered_after_signing_is_rejected(emulator, control):
    rid = create_runtime(control, "tamper_target")["agentRuntimeId"]
    other = create_runtime(control, "tamper_other")["agentRuntimeId"]

    req = signed(emulator.url, method="GET", path=f"/runtimes/{rid}/")
    req.url = emulator.url + f"/runtimes/{other}/"
    assert_auth_failure(send(req), "InvalidSignatureException")

    req = signed(emulator.url, params={"maxResults": "1"})
    req.params = {"maxResults": "2"}
    assert_auth_failure(send(req), "InvalidSignatureException")

    req = signed(emulator.url, method="GET", path=f"/runtimes/{rid}/")
    later = datetime.datetime.strptime(req.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ") + datetime.timedelta(seconds=1)
    req.headers.replace_header("X-Amz-Date", later.strftime("%Y%m%dT%H%M%SZ"))
    assert_auth_failure(send(req), "InvalidSignatureException")


def test_signature_for_another_service_is_not_served(emulator):
    req = AWSRequest(method="POST", url=emulator.url + "/runtimes/", data=b"")
    SigV4Auth(GOOD, "lambda", REGION).add_auth(req)
    reply = send(req)
    assert reply.status in (400, 403, 404), reply
    assert reply.error_type and reply.error_type != "ListAgentRuntimes", reply
    assert reply.json() != {"agentRuntimes": []}


# ---------------------------------------------------------------- presigned URLs


def test_presigned_url_works(emulator, control):
    created = create_runtime(control, "presigned_agent", environmentVariables={"K": "v"})
    rid = created["agentRuntimeId"]
    url = presigned_url(emulator.url, f"/runtimes/{rid}/")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and "X-Amz-Signature" in query
    reply = urlopen(url)
    assert reply.status == 200, reply
    body = reply.json()
    assert body["agentRuntimeId"] == rid
    assert body["agentRuntimeArn"] == created["agentRuntimeArn"]
    assert body["environmentVariables"] == {"K": "v"}

    versioned = presigned_url(emulator.url, f"/runtimes/{rid}/", params={"version": "1"})
    reply = urlopen(versioned)
    assert reply.status == 200 and reply.json()["agentRuntimeVersion"] == "1", reply

    reply = urlopen(presigned_url(emulator.url, "/tags/" + urllib.parse.quote(created["agentRuntimeArn"], safe="")))
    assert reply.status == 200 and reply.json() == {"tags": {}}, reply


def test_expired_presigned_url_is_rejected(emulator, control):
    rid = create_runtime(control, "stale_link")["agentRuntimeId"]
    with shifted_clock(datetime.timedelta(minutes=-10)):
        short = presigned_url(emulator.url, f"/runtimes/{rid}/", expires=60)
        long = presigned_url(emulator.url, f"/runtimes/{rid}/", expires=3600)
    message = assert_auth_failure(urlopen(short), "InvalidSignatureException")
    assert "expired" in message.lower()
    # The same age with a longer lifetime is still valid: it is the expiry, not the age, that counts.
    reply = urlopen(long)
    assert reply.status == 200 and reply.json()["agentRuntimeId"] == rid, reply


def test_tampered_or_wrongly_signed_presigned_url_is_rejected(emulator, control):
    rid = create_runtime(control, "guarded_link")["agentRuntimeId"]
    other = create_runtime(control, "other_link")["agentRuntimeId"]
    url = presigned_url(emulator.url, f"/runtimes/{rid}/", params={"version": "1"})
    assert urlopen(url).status == 200
    assert_auth_failure(urlopen(url.replace("version=1", "version=2")), "InvalidSignatureException")
    assert_auth_failure(urlopen(url.replace(f"/runtimes/{rid}/", f"/runtimes/{other}/")), "InvalidSignatureException")
    assert_auth_failure(urlopen(url.replace("X-Amz-Expires=60", "X-Amz-Expires=600")), "InvalidSignatureException")
    bad_secret = presigned_url(emulator.url, f"/runtimes/{rid}/", creds=Credentials("test", "nope"))
    assert_auth_failure(urlopen(bad_secret), "InvalidSignatureException")
    unknown_key = presigned_url(emulator.url, f"/runtimes/{rid}/", creds=Credentials("AKIDNOBODY", "test"))
    assert_auth_failure(urlopen(unknown_key), "UnrecognizedClientException")


# ---------------------------------------------------------------- routing after authentication


def test_unknown_path_is_unknown_operation(emulator):
    reply = send(signed(emulator.url, method="GET", path="/nothing/here"))
    assert reply.status == 404, reply
    assert reply.error_type == "UnknownOperationException"
    assert reply.json()["message"]
    reply = send(signed(emulator.url, method="PATCH", path="/runtimes/"))
    assert reply.status == 404 and reply.error_type == "UnknownOperationException", reply


def test_unknown_path_without_credentials_is_still_an_auth_failure(emulator):
    reply = send(AWSRequest(method="GET", url=emulator.url + "/nothing/here"))
    assert_auth_failure(reply, "MissingAuthenticationTokenException")


def test_modelled_but_unimplemented_operation_names_the_operation(emulator):
    reply = send(signed(emulator.url, method="POST", path="/gateways/", body=b"{}"))
    assert reply.status == 404, reply
    assert reply.error_type == "UnknownOperationException"
    assert "CreateGateway" in reply.json()["message"]
