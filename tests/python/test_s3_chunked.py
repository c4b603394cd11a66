"""aws-chunked uploads built by hand in the three STREAMING-* forms: the request signed with
botocore's SigV4 signer, each chunk (and the trailer) signed here, and every way of getting it
wrong rejected without touching the stored object. Plus `Expect: 100-continue` on a raw socket."""
import hashlib
import hmac
import os
import socket
import urllib.parse

import pytest
from botocore.exceptions import ClientError

from conftest import REGION, Emulator, boto_client
from s3util import crc32_b64, error_code, send, signed, signing_key

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    emu = Emulator(extra_args=["--sandbox", "none"]).start(tmp_path_factory.mktemp("s3chunked") / "emulator.log")
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def s3(emu):
    return boto_client(emu.url, "s3")


@pytest.fixture(scope="module")
def bucket(s3):
    s3.create_bucket(Bucket="chunked")
    return "chunked"


def hmac_hex(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def chunked_put(url, payload, mode, chunk_size=64 * 1024, tamper=None, checksum=None, extra_headers=None,
                decoded_length=None):
    """PUTs `payload` as aws-chunked in `mode`. `tamper` breaks one thing after signing:
    'data', 'chunk-signature', 'trailer-signature', 'checksum', 'truncate' or 'length'."""
    trailer = mode != SIGNED
    headers = {"Content-Encoding": "aws-chunked",
               "X-Amz-Decoded-Content-Length": str(len(payload) if decoded_length is None else decoded_length)}
    if trailer:
        headers["X-Amz-Trailer"] = "x-amz-checksum-crc32"
    headers.update(extra_headers or {})
    request, seed = signed(url, "PUT", headers, b"", payload_hash=mode)
    amz_date = request.headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/{REGION}/s3/aws4_request"
    key = signing_key("test", amz_date[:8])
    signing = mode != UNSIGNED_TRAILER

    wire = bytearray()
    previous = seed
    chunks = [payload[i:i + chunk_size] for i in range(0, len(payload), chunk_size)] + [b""]
    for chunk in chunks:
        if signing:
            signature = hmac_hex(key, "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, EMPTY_SHA256,
                                                 hashlib.sha256(chunk).hexdigest()]))
            previous = signature
            if tamper == "chunk-signature" and chunk:
                signature = "0" * 64
            wire += f"{len(chunk):x};chunk-signature={signature}\r\n".encode()
        else:
            wire += f"{len(chunk):x}\r\n".encode()
        if chunk:
            wire += (chunk[:-1] + bytes([chunk[-1] ^ 1]) if tamper == "data" else chunk) + b"\r\n"
    if trailer:
        value = checksum or crc32_b64(payload)
        if tamper == "checksum":
            value = crc32_b64(payload + b"!")
        canonical = f"x-amz-checksum-crc32:{value}\n"
        wire += canonical.replace("\n", "\r\n").encode()
        if mode == SIGNED_TRAILER:
            signature = hmac_hex(key, "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, previous,
                                                 hashlib.sha256(canonical.encode()).hexdigest()]))
            if tamper == "trailer-signature":
                signature = "f" * 64
            wire += f"x-amz-trailer-signature:{signature}\r\n".encode()
    wire += b"\r\n"
    if tamper == "truncate":
        wire = wire[: len(wire) // 2]
    return send(request, body=bytes(wire))


@pytest.mark.parametrize("mode", [SIGNED, SIGNED_TRAILER, UNSIGNED_TRAILER])
def test_chunked_upload_round_trips(emu, s3, bucket, mode):
    payload = os.urandom(200_000)  # three full 64 KiB chunks and a short one
    key = f"ok-{mode.lower()}"
    response = chunked_put(f"{emu.url}/{bucket}/{key}", payload, mode)
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == f'"{hashlib.md5(payload).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got["Body"].read() == payload
    assert got.get("ContentEncoding") is None  # aws-chunked is not the object's encoding
    if mode != SIGNED:
        assert got["ChecksumCRC32"] == crc32_b64(payload)
        assert response.headers["x-amz-checksum-crc32"] == crc32_b64(payload)


@pytest.mark.parametrize("mode,tamper,status,code", [
    (SIGNED, "data", 403, "SignatureDoesNotMatch"),
    (SIGNED, "chunk-signature", 403, "SignatureDoesNotMatch"),
    (SIGNED_TRAILER, "data", 403, "SignatureDoesNotMatch"),
    (SIGNED_TRAILER, "trailer-signature", 403, "SignatureDoesNotMatch"),
    (SIGNED_TRAILER, "checksum", 400, "BadDigest"),
    (UNSIGNED_TRAILER, "checksum", 400, "BadDigest"),
    (UNSIGNED_TRAILER, "data", 400, "BadDigest"),
    (SIGNED, "truncate", 400, "IncompleteBody"),
    (UNSIGNED_TRAILER, "truncate", 400, "IncompleteBody"),
])
def test_tampered_chunked_uploads_are_rejected(emu, s3, bucket, mode, tamper, status, code):
    key = f"kept-{mode.lower()}-{tamper}"
    s3.put_object(Bucket=bucket, Key=key, Body=b"old verified value")
    response = chunked_put(f"{emu.url}/{bucket}/{key}", os.urandom(150_000), mode, tamper=tamper)
    assert (response.status_code, error_code(response)) == (status, code), response.text
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"old verified value"


def test_decoded_length_must_match(emu, s3, bucket):
    response = chunked_put(f"{emu.url}/{bucket}/length", b"x" * 1000, SIGNED, decoded_length=999)
    assert (response.status_code, error_code(response)) == (400, "IncompleteBody"), response.text
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="length")
    assert e.value.response["Error"]["Code"] == "404"


def test_wrong_seed_secret_fails_on_the_headers(emu, bucket):
    request, _ = signed(f"{emu.url}/{bucket}/k", "PUT", {"Content-Encoding": "aws-chunked"}, b"",
                        payload_hash=SIGNED, secret="not-the-secret")
    response = send(request, body=b"0;chunk-signature=" + b"0" * 64 + b"\r\n\r\n")
    assert (response.status_code, error_code(response)) == (403, "SignatureDoesNotMatch")


def test_chunked_upload_part_and_content_encoding(emu, s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp", ContentEncoding="gzip")["UploadId"]
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(1234)]
    etags = []
    for n, data in enumerate(parts, start=1):
        url = f"{emu.url}/{bucket}/mp?partNumber={n}&uploadId={urllib.parse.quote(uid)}"
        response = chunked_put(url, data, SIGNED_TRAILER, chunk_size=1024 * 1024)
        assert response.status_code == 200, response.text
        etags.append(response.headers["ETag"])
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]})
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["Body"].read() == b"".join(parts)
    assert got["ContentEncoding"] == "gzip"

    response = chunked_put(f"{emu.url}/{bucket}/gz", b"zipped?", UNSIGNED_TRAILER,
                           extra_headers={"Content-Encoding": "gzip,aws-chunked"})
    assert response.status_code == 200, response.text
    assert s3.head_object(Bucket=bucket, Key="gz")["ContentEncoding"] == "gzip"


def test_expect_100_continue(emu, s3, bucket):
    """The body is sent only after the server's 100 Continue; an error answers before the body."""
    payload = os.urandom(100_000)
    host = urllib.parse.urlsplit(emu.url)
    request, _ = signed(f"{emu.url}/{bucket}/continued", "PUT", {"Expect": "100-continue",
                                                               "Content-Length": str(len(payload))}, payload)
    with socket.create_connection((host.hostname, host.port), timeout=30) as sock:
        head = f"PUT /{bucket}/continued HTTP/1.1\r\nHost: {host.netloc}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in request.headers.items() if k.lower() != "host") + "\r\n"
        sock.sendall(head.encode())
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue"), interim
        sock.sendall(payload)
        final = b""
        while b"\r\n\r\n" not in final:
            final += sock.recv(4096)
        assert final.startswith(b"HTTP/1.1 200"), final
    assert s3.get_object(Bucket=bucket, Key="continued")["Body"].read() == payload

    request, _ = signed(f"{emu.url}/no-such-bucket-here/k", "PUT", {"Expect": "100-continue",
                                                                  "Content-Length": str(len(payload))}, payload)
    with socket.create_connection((host.hostname, host.port), timeout=30) as sock:
        head = f"PUT /no-such-bucket-here/k HTTP/1.1\r\nHost: {host.netloc}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in request.headers.items() if k.lower() != "host") + "\r\n"
        sock.sendall(head.encode())
        answer = b""
        while b"</Error>" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
        assert answer.startswith(b"HTTP/1.1 404"), answer
        assert b"<Code>NoSuchBucket</Code>" in answer and b"connection: close" in answer.lower()
