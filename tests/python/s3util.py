"""Helpers of the S3 and STS tests: checksums as S3 encodes them, hand-signed requests."""
import base64
import hashlib
import zlib

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import requests

from conftest import REGION

OTHER_ACCOUNT = "210987654321"
# Two accounts: the default test:test and a second one.
TWO_ACCOUNTS = ["--sandbox", "none", "--credentials", "test:test", "--credentials", f"AKIDOTHER:othersecret:{OTHER_ACCOUNT}"]
OTHER = dict(access_key="AKIDOTHER", secret="othersecret")


def b64(raw):
    return base64.b64encode(raw).decode()


def crc32_b64(data):
    return b64((zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "big"))


def sha256_b64(data):
    return b64(hashlib.sha256(data).digest())


def sha1_b64(data):
    return b64(hashlib.sha1(data).digest())


def md5_hex(data):
    return hashlib.md5(data).hexdigest()


def _crc64nvme_table():
    poly = 0x9A6C9329AC4BC9B5  # CRC-64/NVME, reflected
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC64_TABLE = _crc64nvme_table()


def crc64nvme(data):
    crc = 0xFFFFFFFFFFFFFFFF
    table = _CRC64_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


def crc64nvme_b64(data):
    return b64(crc64nvme(data).to_bytes(8, "big"))


assert crc64nvme(b"123456789") == 0xAE8B14860A799888


def multipart_etag(parts):
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


def signing_key(secret, date, region=REGION, service="s3"):
    import hmac

    def h(key, msg):
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    return h(h(h(h(("AWS4" + secret).encode(), date), region), service), "aws4_request")


def signed(url, method="GET", headers=None, body=b"", access_key="test", secret="test", region=REGION,
           service="s3", payload_hash=None):
    """A request signed with botocore's SigV4 signer (not the S3 variant, so the declared
    x-amz-content-sha256 is used as is). Returns the prepared request and the seed signature."""
    headers = dict(headers or {})
    headers["X-Amz-Content-SHA256"] = payload_hash or hashlib.sha256(body if isinstance(body, bytes) else b"").hexdigest()
    request = botocore.awsrequest.AWSRequest(method=method, url=url, headers=headers, data=body)
    creds = botocore.credentials.Credentials(access_key, secret)
    botocore.auth.SigV4Auth(creds, service, region).add_auth(request)
    seed = request.headers["Authorization"].rsplit("Signature=", 1)[1]
    return request, seed


def send(request, body=None):
    """Sends a signed AWSRequest with `requests` (body overridable: the wire bytes)."""
    return requests.request(request.method, request.url, headers=dict(request.headers.items()),
                            data=request.body if body is None else body, timeout=60)


def error_code(response):
    """The <Code> of an S3 XML error document."""
    import re
    match = re.search(r"<Code>([^<]+)</Code>", response.text)
    return match.group(1) if match else None
