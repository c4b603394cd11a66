#!/usr/bin/env python3
"""Writes the seed corpus fuzz/corpus/<target>/ (small valid inputs; see agentcore_local::fuzzing
for each target's input format). Signatures are computed here with the same keys the targets
verify with: AWS's SigV4 test-suite key (sigv4_verify, s3_headers) and the key of AWS's documented
aws-chunked example (aws_chunked). Run from the repository root: python3 fuzz/make_corpus.py"""
import base64
import hashlib
import hmac
import io
import os
import shutil
import zipfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
SUITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "sigv4-suite")


def write(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)


def hm(key, msg):
    return hmac.new(key, msg.encode() if isinstance(msg, str) else msg, hashlib.sha256).digest()


def signing_key(secret, date, region, service):
    k = hm(("AWS4" + secret).encode(), date)
    for part in (region, service, "aws4_request"):
        k = hm(k, part)
    return k


EMPTY = hashlib.sha256(b"").hexdigest()


def sigv4():
    for case in ["get-vanilla", "get-vanilla-query-order-key-case", "get-utf8", "post-x-www-form-urlencoded",
                 "get-header-value-trim", "normalize-path/get-relative-relative", "post-sts-token/post-sts-header-after",
                 "get-vanilla-query-unreserved"]:
        base = os.path.join(SUITE, case)
        name = os.path.basename(case)
        path = os.path.join(base, name + ".sreq")
        if os.path.exists(path):
            write("sigv4_verify", name, open(path, "rb").read())
    # A presigned URL (query-string authentication) made with the suite's key.
    key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "service")
    scope = "20150830/us-east-1/service/aws4_request"
    q = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request"
         "&X-Amz-Date=20150830T123600Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host")
    creq = "\n".join(["GET", "/path/to%2520x", q, "host:example.amazonaws.com\n", "host", EMPTY])
    sts = "\n".join(["AWS4-HMAC-SHA256", "20150830T123600Z", scope, hashlib.sha256(creq.encode()).hexdigest()])
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    write("sigv4_verify", "presigned", f"GET /path/to%20x?{q}&X-Amz-Signature={sig}\nHost: example.amazonaws.com\n")
    # Requests the target signs itself (`S`: presigned, `SH`: Authorization header).
    write("sigv4_verify", "sign-header", "SHPOST /runtimes/arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2Fa-AbCdEf1234/invocations?qualifier=DEFAULT\n"
          "Host: localhost:8080\nContent-Type: application/json\nX-Amzn-Trace-Id: Root=1-a\n\n{\"prompt\":\"hi\"}")
    write("sigv4_verify", "sign-header-dots", "SHGET /a/./b/../c//d/?b=2&a=1&a=0&c\nHost: example.amazonaws.com\nMy-Header1:  a   b   c \nMy-Header1: second\n")
    write("sigv4_verify", "sign-presigned", "SGET /bucket/my%20key+x?versionId=3&acl\nHost: bucket.localhost\n")

    write("sigv4_canonical", "path", "/a/./b/../c//d/%2Fe%20f/..")
    write("sigv4_canonical", "query", "X-Amz-Signature=abc&b=2&a=1&a=0&c&k=a+b&s=a%20b&%E2%82%AC=%ZZ")
    write("sigv4_canonical", "arn", "/runtimes/arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2Fx-AbCdEf1234/invocations")
    write("sigv4_canonical", "headers", "Host:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nMy-Header1:  a   b   c \n20151330T123600Z\n")
    write("sigv4_canonical", "region", "us-gov-west-1")


def chunked():
    key = signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3")
    amz_date, scope = "20130524T000000Z", "20130524/us-east-1/s3/aws4_request"
    seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"

    def chunk_sig(prev, data):
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY, hashlib.sha256(data).hexdigest()])
        return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()

    def signed(chunks, trailers=None):
        prev, wire = seed, b""
        for data in chunks + [b""]:
            prev = chunk_sig(prev, data)
            wire += b"%x;chunk-signature=%s\r\n" % (len(data), prev.encode())
            if data:
                wire += data + b"\r\n"
        if trailers is not None:
            canonical = "".join(f"{n}:{v}\n" for n, v in trailers)
            sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, prev, hashlib.sha256(canonical.encode()).hexdigest()])
            tsig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
            for n, v in trailers:
                wire += f"{n}:{v}\r\n".encode()
            wire += f"x-amz-trailer-signature:{tsig}\r\n".encode()
        wire += b"\r\n"
        return wire

    crc = base64.b64encode((0x0D4A1185).to_bytes(4, "big")).decode()  # crc32("hello world")
    write("aws_chunked", "signed", bytes([2 | 4, 3, 11]) + signed([b"hello", b" world"]))
    write("aws_chunked", "signed-trailer", bytes([3 | 4, 7, 11]) + signed([b"hello", b" world"], [("x-amz-checksum-crc32", crc)]))
    write("aws_chunked", "unsigned-trailer", bytes([1 | 4, 3, 11]) + f"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n".encode())
    write("aws_chunked", "unsigned-no-final-crlf", bytes([1, 1, 0]) + b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32c:AAAAAA==")
    write("aws_chunked", "plain", bytes([0, 2, 0]) + b"just a body")


def xml():
    write("s3_xml", "delete", '<?xml version="1.0" encoding="UTF-8"?>\n<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key> sp &#x41;&amp;&lt; </Key><VersionId>v1</VersionId></Object><Object><Key><![CDATA[a<b]]></Key></Object><Quiet>true</Quiet></Delete>')
    write("s3_xml", "complete", '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"abc"</ETag><ChecksumCRC32>DUoRhQ==</ChecksumCRC32></Part><Part><PartNumber>2</PartNumber><ETag>&quot;def&quot;</ETag></Part></CompleteMultipartUpload>')
    write("s3_xml", "create-bucket", '<s3:CreateBucketConfiguration xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/"><s3:LocationConstraint>eu-west-1</s3:LocationConstraint></s3:CreateBucketConfiguration>')
    write("s3_xml", "versioning", '<?xml version="1.0"?><!-- c --><VersioningConfiguration><Status>Enabled</Status><MfaDelete/></VersioningConfiguration>\n')


def s3_headers():
    # SigV2, header form, with the suite's key: date within the clock skew of the suite's time.
    secret = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    date = "Sun, 30 Aug 2015 12:36:00 GMT"
    sts = f"GET\n\n\n{date}\nx-amz-meta-a:b\n/bucket/photos/puppy.jpg?versionId=3"
    sig = base64.b64encode(hmac.new(secret, sts.encode(), hashlib.sha1).digest()).decode()
    write("s3_headers", "sigv2-header", f"GET /photos/puppy.jpg?versionId=3\nHost: bucket.localhost:9000\nDate: {date}\n"
          f"X-Amz-Meta-A: b\nAuthorization: AWS AKIDEXAMPLE:{sig}\nRange: bytes=0-9\nx-object-size: 100\n")
    expires = "1440938460"
    sts = f"GET\n\n\n{expires}\n/bucket/key"
    sig = base64.b64encode(hmac.new(secret, sts.encode(), hashlib.sha1).digest()).decode()
    from urllib.parse import quote
    write("s3_headers", "sigv2-presigned", f"GET /bucket/key?AWSAccessKeyId=AKIDEXAMPLE&Expires={expires}&Signature={quote(sig, safe='')}\nHost: localhost:9000\nRange: bytes=-5\n")
    md5 = base64.b64encode(hashlib.md5(b"abc").digest()).decode()
    sha = base64.b64encode(hashlib.sha256(b"abc").digest()).decode()
    write("s3_headers", "checksums", f"PUT /bucket/key?partNumber=3&uploadId=x\nHost: localhost\nContent-MD5: {md5}\n"
          f"x-amz-checksum-sha256: {sha}\nx-amz-checksum-crc32: NSRBwg==\nx-amz-checksum-crc64nvme: AAAAAAAAAAA=\nx-amz-sdk-checksum-algorithm: CRC32C\nRange: bytes=10-\nx-object-size: 0\n")
    write("s3_headers", "range-suffix", "GET /b/k\nRange: bytes=50-20\nx-object-size: 18446744073709551615\n")


def restjson():
    arn = "arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2Fa-AbCdEf1234"
    write("restjson_input", "get-runtime", "GET /runtimes/a-AbCdEf1234/?version=3\nHost: localhost\n")
    write("restjson_input", "create-runtime", 'PUT /runtimes/\nContent-Type: application/json\n\n{"agentRuntimeName":"agent_1","roleArn":"arn:aws:iam::123456789012:role/R",'
          '"agentRuntimeArtifact":{"containerConfiguration":{"containerUri":"123456789012.dkr.ecr.us-east-1.amazonaws.com/a:b"}},'
          '"networkConfiguration":{"networkMode":"PUBLIC"},"protocolConfiguration":{"serverProtocol":"MCP"},'
          '"lifecycleConfiguration":{"idleRuntimeSessionTimeout":900},"environmentVariables":{"A":"b"},"clientToken":"tok-0123456789abcdef0123456789abcdef"}')
    write("restjson_input", "invoke", f"POST /runtimes/{arn}/invocations?qualifier=DEFAULT&accountId=123456789012\n"
          "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id: 0123456789abcdef0123456789abcdef01234\nMcp-Session-Id: m1\nAccept: application/json, text/event-stream\n\n{\"prompt\":\"hi\"}")
    write("restjson_input", "untag", f"DELETE /tags/{arn}?tagKeys=k1&tagKeys=k%202\n")
    write("restjson_input", "list", "POST /runtimes/?maxResults=50&nextToken=abc\n")
    write("restjson_input", "create-event", 'POST /memories/m-AbCdEf1234/events\n\n{"actorId":"a","sessionId":"s","eventTimestamp":1764000000.5,'
          '"payload":[{"conversational":{"content":{"text":"hi"},"role":"USER"}},{"blob":{"k":[1,2]}}]}')
    write("restjson_input", "converse", 'POST /model/anthropic.claude-3-haiku-20240307-v1%3A0/converse\nContent-Type: application/json\n\n'
          '{"messages":[{"role":"user","content":[{"text":"Hello"}]}],"inferenceConfig":{"maxTokens":100,"temperature":0.5},'
          '"toolConfig":{"tools":[{"toolSpec":{"name":"t","inputSchema":{"json":{"type":"object"}}}}]}}')
    write("restjson_input", "command", f"POST /runtimes/{arn}/commands\n\n" + '{"body":{"command":"ls -l","timeout":10}}')


def query():
    write("query", "assume-role", "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2FR&RoleSessionName=s+1"
          "&DurationSeconds=900&Tags.member.1.Key=k&Tags.member.1.Value=v&PolicyArns.member.1.arn=arn:aws:iam::aws:policy/ReadOnlyAccess\n"
          "X-Amz-Credential=AK%2F2026&a=1+2&flag&b=x%2By")
    write("query", "web-identity", "Action=AssumeRoleWithWebIdentity&RoleArn=arn:aws:iam::123456789012:role/R&RoleSessionName=web"
          "&WebIdentityToken=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln&DurationSeconds=abc\nacl&versionId=1&&=x&%ZZ=%E2%82%AC")
    write("query", "empty", "\n")


def code_zip():
    write("code_zip", "files", b"ymain.py=print(1)\nxbin/tool=#!/bin/sh\ndlib/\nfpkg/__init__.py=\nfpkg/mod.py=x = 1")
    write("code_zip", "traversal", b"ya/../../evil.py=x\n")
    write("code_zip", "symlink", b"llink=/etc/passwd\nfafter=x")
    write("code_zip", "absolute", b"f/etc/cron.d/x=y\nfok=1")
    buf = io.BytesIO()
    when = (2026, 12, 2, 0, 0, 0)  # fixed, so the seed is the same every run
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("main.py", when), "print('hello')\n" * 4)
        info = zipfile.ZipInfo("bin/run", when)
        info.external_attr = 0o100755 << 16
        z.writestr(info, "#!/bin/sh\necho hi\n")
        z.writestr(zipfile.ZipInfo("data/", when), "")
    write("code_zip", "raw-zip", b"Z" + buf.getvalue())


def runtime_headers():
    arn = "arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2Fa-AbCdEf1234"
    write("runtime_headers", "mcp", f"POST /runtimes/{arn}/invocations?qualifier=DEFAULT\nContent-Type: application/json\n"
          "Accept: application/json, text/event-stream\nMcp-Session-Id: 3f2a\nMcp-Protocol-Version: 2025-06-18\n"
          "Authorization: Bearer eyJhbGciOi.eyJzdWIi.c2ln  \nX-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant: t1\nCookie: a=b\n")
    write("runtime_headers", "a2a", f"POST /runtimes/{arn}/invocations\nA2A-Version: 1.0\nA2A-Extensions: x\n"
          "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock-agentcore/aws4_request, SignedHeaders=host, Signature=abc\n"
          "X-Amz-Date: 20150830T123600Z\nX-Amz-Security-Token: tok\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n"
          "X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793\nX-Custom-App: hello\nHost: localhost\n")
    token = base64.urlsafe_b64encode(b"tok.en.x").decode().rstrip("=")
    write("runtime_headers", "websocket", f"GET /runtimes/{arn}/ws?X-Amz-Credential=x\nSec-WebSocket-Protocol: base64UrlBearerAuthorization.{token}, base64UrlBearerAuthorization\n"
          "Upgrade: websocket\nConnection: Upgrade\n")
    write("runtime_headers", "metadata", f"GET /runtimes/{arn}/invocations/.well-known/oauth-protected-resource\n")


def eventstream():
    write("eventstream", "message-start", b'messageStart\x00{"role":"assistant"}')
    write("eventstream", "delta", b'contentBlockDelta\x00{"contentBlockIndex":0,"delta":{"text":"Hel\\u00e9lo \\n"}}')
    write("eventstream", "exception", b'modelStreamErrorException\x00{"message":"boom","originalStatusCode":500}')
    write("eventstream", "text", b"chunk\x00not json \xff")


if __name__ == "__main__":
    shutil.rmtree(ROOT, ignore_errors=True)
    for make in (sigv4, chunked, xml, s3_headers, restjson, query, code_zip, runtime_headers, eventstream):
        make()
    count = sum(len(files) for _, _, files in os.walk(ROOT))
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(ROOT) for f in files)
    print(f"{count} seeds, {size} bytes")
