"""The embedded S3 subset through boto3: every operation, the error codes S3 answers with,
versioning, copies, batch deletes, listing pagination, multipart uploads, flexible checksums,
presigned URLs, unsigned payloads, virtual-host addressing and account ownership."""
import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import botocore.config
import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION, Emulator, boto_client
from s3util import (OTHER, TWO_ACCOUNTS, crc32_b64, crc64nvme_b64, error_code, md5_hex, multipart_etag, send,
                    sha1_b64, sha256_b64, signed)

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    emu = Emulator(extra_args=TWO_ACCOUNTS).start(tmp_path_factory.mktemp("s3boto") / "emulator.log")
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def s3(emu):
    return boto_client(emu.url, "s3")


@pytest.fixture
def bucket(s3, request):
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-") + "-" + os.urandom(3).hex()
    s3.create_bucket(Bucket=name)
    return name


def code_of(excinfo):
    return excinfo.value.response["Error"]["Code"]


def status_of(excinfo):
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def expect_error(code, status, fn, *args, **kw):
    with pytest.raises(ClientError) as e:
        fn(*args, **kw)
    assert (code_of(e), status_of(e)) == (code, status), e.value.response
    return e.value.response


# ---- buckets ----

def test_bucket_lifecycle_and_errors(emu, s3):
    s3.create_bucket(Bucket="life-bucket")
    assert s3.head_bucket(Bucket="life-bucket")["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == REGION
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "life-bucket" in names
    assert s3.get_bucket_location(Bucket="life-bucket")["LocationConstraint"] is None
    # Re-creating one's own bucket in us-east-1 succeeds, as on S3.
    s3.create_bucket(Bucket="life-bucket")

    for bad in ["ab", "Upper-Case", "under_score", "ends-with-dash-", "192.168.1.1", "a..b", "x" * 64]:
        expect_error("InvalidBucketName", 400, s3.create_bucket, Bucket=bad)

    eu = boto_client(emu.url, "s3", region="eu-west-1")
    eu.create_bucket(Bucket="eu-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert eu.get_bucket_location(Bucket="eu-bucket")["LocationConstraint"] == "eu-west-1"
    expect_error("BucketAlreadyOwnedByYou", 409, eu.create_bucket, Bucket="eu-bucket",
                 CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    expect_error("IllegalLocationConstraintException", 400, eu.create_bucket, Bucket="eu-bucket-2",
                 CreateBucketConfiguration={"LocationConstraint": "ap-south-1"})

    other = boto_client(emu.url, "s3", **OTHER)
    expect_error("BucketAlreadyExists", 409, other.create_bucket, Bucket="life-bucket")
    expect_error("AccessDenied", 403, other.list_objects_v2, Bucket="life-bucket")
    expect_error("AccessDenied", 403, other.put_object, Bucket="life-bucket", Key="k", Body=b"x")
    expect_error("403", 403, other.head_bucket, Bucket="life-bucket")
    assert "life-bucket" not in [b["Name"] for b in other.list_buckets()["Buckets"]]

    s3.put_object(Bucket="life-bucket", Key="k", Body=b"x")
    expect_error("BucketNotEmpty", 409, s3.delete_bucket, Bucket="life-bucket")
    s3.delete_object(Bucket="life-bucket", Key="k")
    s3.delete_bucket(Bucket="life-bucket")
    expect_error("404", 404, s3.head_bucket, Bucket="life-bucket")
    expect_error("NoSuchBucket", 404, s3.list_objects_v2, Bucket="life-bucket")
    expect_error("NoSuchBucket", 404, s3.delete_bucket, Bucket="life-bucket")
    resp = expect_error("NoSuchBucket", 404, s3.get_object, Bucket="life-bucket", Key="k")
    assert resp["Error"]["BucketName"] == "life-bucket"


# ---- objects ----

def test_put_get_head_with_metadata_and_ranges(s3, bucket):
    body = os.urandom(100_000)
    put = s3.put_object(Bucket=bucket, Key="dir/obj.bin", Body=body, ContentType="application/x-thing",
                        Metadata={"Color": "blue", "n": "1"}, CacheControl="max-age=60",
                        ContentDisposition='attachment; filename="o.bin"')
    assert put["ETag"] == f'"{md5_hex(body)}"'
    assert "VersionId" not in put

    got = s3.get_object(Bucket=bucket, Key="dir/obj.bin")
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/x-thing"
    assert got["Metadata"] == {"color": "blue", "n": "1"}
    assert got["CacheControl"] == "max-age=60"
    assert got["ContentDisposition"] == 'attachment; filename="o.bin"'
    assert got["ContentLength"] == len(body) and got["ETag"] == put["ETag"]
    assert abs(got["LastModified"].timestamp() - time.time()) < 60
    head = s3.head_object(Bucket=bucket, Key="dir/obj.bin")
    assert head["ContentLength"] == len(body) and head["Metadata"] == got["Metadata"]
    assert head["LastModified"] == got["LastModified"]

    part = s3.get_object(Bucket=bucket, Key="dir/obj.bin", Range="bytes=10-19")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["ContentRange"] == f"bytes 10-19/{len(body)}"
    assert part["Body"].read() == body[10:20]
    assert s3.get_object(Bucket=bucket, Key="dir/obj.bin", Range="bytes=99990-")["Body"].read() == body[99990:]
    assert s3.get_object(Bucket=bucket, Key="dir/obj.bin", Range="bytes=-5")["Body"].read() == body[-5:]
    assert s3.get_object(Bucket=bucket, Key="dir/obj.bin", Range="bytes=99990-200000")["Body"].read() == body[99990:]
    resp = expect_error("InvalidRange", 416, s3.get_object, Bucket=bucket, Key="dir/obj.bin", Range="bytes=100000-")
    assert resp["Error"]["ActualObjectSize"] == str(len(body))

    # Conditional reads.
    expect_error("304", 304, s3.get_object, Bucket=bucket, Key="dir/obj.bin", IfNoneMatch=put["ETag"])
    expect_error("PreconditionFailed", 412, s3.get_object, Bucket=bucket, Key="dir/obj.bin", IfMatch='"nope"')
    assert s3.get_object(Bucket=bucket, Key="dir/obj.bin", IfMatch=put["ETag"])["Body"].read() == body

    # Overwrite, empty object, default content type, keys that need encoding.
    s3.put_object(Bucket=bucket, Key="dir/obj.bin", Body=b"new")
    assert s3.get_object(Bucket=bucket, Key="dir/obj.bin")["Body"].read() == b"new"
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    empty = s3.get_object(Bucket=bucket, Key="empty")
    assert empty["Body"].read() == b"" and empty["ContentLength"] == 0
    assert empty["ContentType"] == "binary/octet-stream"
    for key in ["with space/and+plus", "ünïcödé/κλειδί", "a%2Fb?c=d&e#f", "trailing/", "semi;colon,comma"]:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()

    expect_error("NoSuchKey", 404, s3.get_object, Bucket=bucket, Key="missing")
    expect_error("404", 404, s3.head_object, Bucket=bucket, Key="missing")
    expect_error("KeyTooLongError", 400, s3.put_object, Bucket=bucket, Key="k" * 1025, Body=b"x")
    s3.delete_object(Bucket=bucket, Key="dir/obj.bin")
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=bucket, Key="dir/obj.bin")
    # Deleting what is not there succeeds, as on S3.
    assert s3.delete_object(Bucket=bucket, Key="dir/obj.bin")["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_content_md5_is_checked(s3, bucket):
    import base64
    good = base64.b64encode(hashlib.md5(b"data").digest()).decode()
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", ContentMD5=good)
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    expect_error("BadDigest", 400, s3.put_object, Bucket=bucket, Key="k2", Body=b"data", ContentMD5=bad)
    expect_error("InvalidDigest", 400, s3.put_object, Bucket=bucket, Key="k2", Body=b"data", ContentMD5="nope")
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=bucket, Key="k2")


# ---- versioning ----

def test_versioning_versions_and_delete_markers(s3, bucket):
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"before versioning")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"

    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    assert v1 != v2 and "null" not in (v1, v2)
    latest = s3.get_object(Bucket=bucket, Key="k")
    assert latest["Body"].read() == b"two" and latest["VersionId"] == v2
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v1)["Body"].read() == b"one"
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"before versioning"
    assert s3.head_object(Bucket=bucket, Key="k", VersionId=v1)["ContentLength"] == 3
    expect_error("NoSuchVersion", 404, s3.get_object, Bucket=bucket, Key="k", VersionId="no-such-version-id")

    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    resp = expect_error("NoSuchKey", 404, s3.get_object, Bucket=bucket, Key="k")
    assert resp["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    expect_error("MethodNotAllowed", 405, s3.get_object, Bucket=bucket, Key="k", VersionId=marker)
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v2)["Body"].read() == b"two"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)

    versions = s3.list_object_versions(Bucket=bucket)
    assert [(v["VersionId"], v["IsLatest"]) for v in versions["Versions"]] == [(v2, False), (v1, False), ("null", False)]
    assert [(m["VersionId"], m["IsLatest"]) for m in versions["DeleteMarkers"]] == [(marker, True)]
    page = s3.list_object_versions(Bucket=bucket, MaxKeys=2)
    assert page["IsTruncated"] and page["NextKeyMarker"] == "k"
    rest = s3.list_object_versions(Bucket=bucket, KeyMarker=page["NextKeyMarker"],
                                   VersionIdMarker=page["NextVersionIdMarker"])
    assert len(rest["Versions"]) + len(rest.get("DeleteMarkers", [])) == 2

    # Removing the marker by id brings v2 back; removing v2 permanently makes v1 the latest.
    removed = s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    assert removed["DeleteMarker"] is True and removed["VersionId"] == marker
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v2)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"one"
    expect_error("NoSuchVersion", 404, s3.get_object, Bucket=bucket, Key="k", VersionId=v2)

    # Suspended: new writes are the "null" version, replacing it.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.put_object(Bucket=bucket, Key="k", Body=b"s1").get("VersionId") == "null"
    s3.put_object(Bucket=bucket, Key="k", Body=b"s2")
    ids = [v["VersionId"] for v in s3.list_object_versions(Bucket=bucket)["Versions"]]
    assert ids == ["null", v1]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"s2"
    expect_error("MalformedXML", 400, s3.put_bucket_versioning, Bucket=bucket,
                 VersioningConfiguration={"Status": "Sometimes"})


# ---- copy ----

def test_copy_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"source bytes", ContentType="text/x-src", Metadata={"a": "1"})
    copied = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert copied["CopyObjectResult"]["ETag"] == f'"{md5_hex(b"source bytes")}"'
    dst = s3.get_object(Bucket=bucket, Key="dst")
    assert dst["Body"].read() == b"source bytes"
    assert (dst["ContentType"], dst["Metadata"]) == ("text/x-src", {"a": "1"})

    s3.copy_object(Bucket=bucket, Key="dst2", CopySource=f"{bucket}/src", MetadataDirective="REPLACE",
                   ContentType="text/x-new", Metadata={"b": "2"})
    dst2 = s3.head_object(Bucket=bucket, Key="dst2")
    assert (dst2["ContentType"], dst2["Metadata"]) == ("text/x-new", {"b": "2"})

    # Deleting or overwriting the source leaves the copy intact.
    s3.put_object(Bucket=bucket, Key="src", Body=b"changed")
    s3.delete_object(Bucket=bucket, Key="src")
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"source bytes"

    # From a version, and across buckets.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old = s3.put_object(Bucket=bucket, Key="v", Body=b"old")["VersionId"]
    s3.put_object(Bucket=bucket, Key="v", Body=b"new")
    other_bucket = bucket[:50] + "-2"
    s3.create_bucket(Bucket=other_bucket)
    res = s3.copy_object(Bucket=other_bucket, Key="from-old", CopySource={"Bucket": bucket, "Key": "v", "VersionId": old})
    assert res["CopySourceVersionId"] == old
    assert s3.get_object(Bucket=other_bucket, Key="from-old")["Body"].read() == b"old"

    expect_error("InvalidRequest", 400, s3.copy_object, Bucket=bucket, Key="dst", CopySource=f"{bucket}/dst")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource=f"{bucket}/dst", MetadataDirective="REPLACE", Metadata={"c": "3"})
    assert s3.head_object(Bucket=bucket, Key="dst")["Metadata"] == {"c": "3"}
    expect_error("NoSuchKey", 404, s3.copy_object, Bucket=bucket, Key="x", CopySource=f"{bucket}/missing")
    expect_error("NoSuchBucket", 404, s3.copy_object, Bucket=bucket, Key="x", CopySource="no-such-bucket-xyz/k")


# ---- delete_objects ----

def test_delete_objects_normal_and_quiet(s3, bucket):
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x")
    res = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k0"}, {"Key": "k1"}, {"Key": "absent"}]})
    assert sorted(d["Key"] for d in res["Deleted"]) == ["absent", "k0", "k1"]
    assert "Errors" not in res
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k2"}, {"Key": "k3"}], "Quiet": True})
    assert "Deleted" not in quiet and "Errors" not in quiet
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k4"]

    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    vid = s3.put_object(Bucket=bucket, Key="v", Body=b"x")["VersionId"]
    res = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k4"}, {"Key": "v", "VersionId": vid}]})
    by_key = {d["Key"]: d for d in res["Deleted"]}
    assert by_key["k4"]["DeleteMarker"] is True and by_key["k4"]["DeleteMarkerVersionId"]
    assert by_key["v"]["VersionId"] == vid and "DeleteMarker" not in by_key["v"]
    expect_error("NoSuchVersion", 404, s3.get_object, Bucket=bucket, Key="v", VersionId=vid)


def test_delete_objects_malformed_xml(emu, bucket):
    body = b"<Delete><Object><Key>k</Key></Object>"
    headers = {"Content-MD5": __import__("base64").b64encode(hashlib.md5(body).digest()).decode()}
    response = send(signed(f"{emu.url}/{bucket}?delete", "POST", headers, body)[0])
    assert response.status_code == 400 and error_code(response) == "MalformedXML", response.text


# ---- listing ----

def test_list_objects_v2_pagination_prefix_delimiter(s3, bucket):
    keys = [f"photos/2024/{i:02}.jpg" for i in range(7)] + ["photos/2025/a.jpg", "photos/readme", "docs/x",
                                                             "docs/y", "root1", "root2", "a b+c"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())

    everything = []
    token = None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=bucket, MaxKeys=4, **kw)
        assert page["KeyCount"] == len(page.get("Contents", []))
        everything += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert everything == sorted(keys)

    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["a b+c", "root1", "root2"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["docs/", "photos/"]
    assert top["KeyCount"] == 5

    photos = s3.list_objects_v2(Bucket=bucket, Prefix="photos/", Delimiter="/")
    assert [o["Key"] for o in photos["Contents"]] == ["photos/readme"]
    assert [p["Prefix"] for p in photos["CommonPrefixes"]] == ["photos/2024/", "photos/2025/"]

    # Paging by one through a delimited listing returns each prefix once.
    seen, token = [], None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=bucket, Delimiter="/", MaxKeys=1, **kw)
        seen += [o["Key"] for o in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == ["a b+c", "docs/", "photos/", "root1", "root2"]

    paginator = s3.get_paginator("list_objects_v2")
    pages = list(paginator.paginate(Bucket=bucket, Prefix="photos/2024/", PaginationConfig={"PageSize": 3}))
    assert len(pages) == 3
    assert [o["Key"] for p in pages for o in p["Contents"]] == [f"photos/2024/{i:02}.jpg" for i in range(7)]

    after = s3.list_objects_v2(Bucket=bucket, StartAfter="photos/2025/a.jpg")
    assert [o["Key"] for o in after["Contents"]] == ["photos/readme", "root1", "root2"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix="nothing/")["KeyCount"] == 0
    assert s3.list_objects_v2(Bucket=bucket, Prefix="a b")["Contents"][0]["Key"] == "a b+c"
    expect_error("InvalidArgument", 400, s3.list_objects_v2, Bucket=bucket, ContinuationToken="garbage!")

    v1 = s3.list_objects(Bucket=bucket, MaxKeys=3, Delimiter="/")
    assert v1["IsTruncated"] and v1["NextMarker"] == "photos/"
    rest = s3.list_objects(Bucket=bucket, Marker=v1["NextMarker"], Delimiter="/")
    assert [o["Key"] for o in rest["Contents"]] == ["root1", "root2"]


# ---- multipart ----

def test_multipart_upload_complete_list_abort(s3, bucket):
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB + 17), b"tail"]
    up = s3.create_multipart_upload(Bucket=bucket, Key="big", ContentType="application/x-big", Metadata={"m": "v"})
    uid = up["UploadId"]
    etags = []
    for n, data in enumerate(parts, start=1):
        etags.append(s3.upload_part(Bucket=bucket, Key="big", UploadId=uid, PartNumber=n, Body=data)["ETag"])
        assert etags[-1] == f'"{md5_hex(data)}"'
    # Re-uploading a part replaces it.
    etags[2] = s3.upload_part(Bucket=bucket, Key="big", UploadId=uid, PartNumber=3, Body=b"TAIL!")["ETag"]
    parts[2] = b"TAIL!"

    listed = s3.list_parts(Bucket=bucket, Key="big", UploadId=uid)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed["Parts"]] == [
        (n, e, len(d)) for n, (e, d) in enumerate(zip(etags, parts), start=1)]
    page = s3.list_parts(Bucket=bucket, Key="big", UploadId=uid, MaxParts=2)
    assert page["IsTruncated"] and page["NextPartNumberMarker"] == 2
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=bucket, Key="big", UploadId=uid,
                                                   PartNumberMarker=2)["Parts"]] == [3]
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("big", uid)]

    done = s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]})
    assert done["ETag"] == multipart_etag(parts)
    got = s3.get_object(Bucket=bucket, Key="big")
    assert got["Body"].read() == b"".join(parts)
    assert (got["ContentType"], got["Metadata"], got["ETag"]) == ("application/x-big", {"m": "v"}, done["ETag"])
    for n, data in enumerate(parts, start=1):
        part = s3.get_object(Bucket=bucket, Key="big", PartNumber=n)
        assert (part["PartsCount"], part["ContentLength"]) == (3, len(data))
        assert part["Body"].read() == data
    assert s3.head_object(Bucket=bucket, Key="big", PartNumber=2)["ContentLength"] == len(parts[1])
    expect_error("InvalidPartNumber", 416, s3.get_object, Bucket=bucket, Key="big", PartNumber=4)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    expect_error("NoSuchUpload", 404, s3.list_parts, Bucket=bucket, Key="big", UploadId=uid)

    aborted = s3.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="gone", UploadId=aborted, PartNumber=1, Body=b"x")
    s3.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=aborted)
    expect_error("NoSuchUpload", 404, s3.upload_part, Bucket=bucket, Key="gone", UploadId=aborted, PartNumber=2, Body=b"y")
    expect_error("NoSuchUpload", 404, s3.abort_multipart_upload, Bucket=bucket, Key="gone", UploadId=aborted)
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=bucket, Key="gone")


def test_multipart_errors(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    small = [s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=n, Body=b"small")["ETag"] for n in (1, 2)]
    resp = expect_error("EntityTooSmall", 400, s3.complete_multipart_upload, Bucket=bucket, Key="k", UploadId=uid,
                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": small[0]}, {"PartNumber": 2, "ETag": small[1]}]})
    assert resp["Error"]["MinSizeAllowed"] == str(5 * MIB)
    expect_error("InvalidPart", 400, s3.complete_multipart_upload, Bucket=bucket, Key="k", UploadId=uid,
                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0123456789abcdef0123456789abcdef"'}]})
    expect_error("InvalidPart", 400, s3.complete_multipart_upload, Bucket=bucket, Key="k", UploadId=uid,
                 MultipartUpload={"Parts": [{"PartNumber": 7, "ETag": small[0]}]})
    expect_error("InvalidPartOrder", 400, s3.complete_multipart_upload, Bucket=bucket, Key="k", UploadId=uid,
                 MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": small[1]}, {"PartNumber": 1, "ETag": small[0]}]})
    expect_error("InvalidArgument", 400, s3.upload_part, Bucket=bucket, Key="k", UploadId=uid, PartNumber=10001,
                 Body=b"x")
    expect_error("NoSuchUpload", 404, s3.upload_part, Bucket=bucket, Key="other-key", UploadId=uid, PartNumber=1,
                 Body=b"x")
    # A single small part is a valid upload.
    done = s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=uid,
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": small[0]}]})
    assert done["ETag"] == multipart_etag([b"small"])
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"small"


def test_upload_part_copy(s3, bucket):
    src = os.urandom(6 * MIB)
    s3.put_object(Bucket=bucket, Key="src", Body=src)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]
    p1 = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=uid, PartNumber=1,
                             CopySource={"Bucket": bucket, "Key": "src"}, CopySourceRange=f"bytes=0-{5 * MIB - 1}")
    p2 = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=uid, PartNumber=2,
                             CopySource={"Bucket": bucket, "Key": "src"}, CopySourceRange=f"bytes={5 * MIB}-{6 * MIB - 1}")
    s3.complete_multipart_upload(Bucket=bucket, Key="assembled", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="assembled")["Body"].read() == src


# ---- checksums ----

def test_flexible_checksums_put_get_head(s3, bucket):
    data = os.urandom(200_000)
    crc = s3.put_object(Bucket=bucket, Key="crc32", Body=data, ChecksumAlgorithm="CRC32")
    assert crc["ChecksumCRC32"] == crc32_b64(data)
    sha = s3.put_object(Bucket=bucket, Key="sha256", Body=data, ChecksumAlgorithm="SHA256")
    assert sha["ChecksumSHA256"] == sha256_b64(data)
    sha1 = s3.put_object(Bucket=bucket, Key="sha1", Body=data, ChecksumSHA1=sha1_b64(data))
    assert sha1["ChecksumSHA1"] == sha1_b64(data)
    # botocore needs the CRT to compute CRC64NVME; a precomputed value is sent as is.
    nvme = s3.put_object(Bucket=bucket, Key="crc64", Body=data, ChecksumCRC64NVME=crc64nvme_b64(data))
    assert nvme["ChecksumCRC64NVME"] == crc64nvme_b64(data)

    for key, field, value in [("crc32", "ChecksumCRC32", crc32_b64(data)), ("sha256", "ChecksumSHA256", sha256_b64(data)),
                              ("sha1", "ChecksumSHA1", sha1_b64(data)), ("crc64", "ChecksumCRC64NVME", crc64nvme_b64(data))]:
        got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert got[field] == value and got["ChecksumType"] == "FULL_OBJECT", (key, got)
        assert got["Body"].read() == data  # botocore validates CRC32/SHA1/SHA256 while reading
        assert s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")[field] == value
    # Without checksum mode, no checksum headers; an object written without one gets CRC64NVME.
    assert "ChecksumCRC32" not in s3.head_object(Bucket=bucket, Key="crc32")
    s3.put_object(Bucket=bucket, Key="plain", Body=data, ChecksumSHA256=sha256_b64(data))
    listed = {o["Key"]: o for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed["crc32"]["ChecksumAlgorithm"] == ["CRC32"]
    assert listed["crc64"]["ChecksumAlgorithm"] == ["CRC64NVME"]

    expect_error("BadDigest", 400, s3.put_object, Bucket=bucket, Key="bad", Body=data, ChecksumCRC32=crc32_b64(b"other"))
    expect_error("BadDigest", 400, s3.put_object, Bucket=bucket, Key="bad", Body=data,
                 ChecksumCRC64NVME=crc64nvme_b64(b"other"))
    expect_error("InvalidRequest", 400, s3.put_object, Bucket=bucket, Key="bad", Body=data, ChecksumCRC32="not-base64")
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=bucket, Key="bad")


def test_multipart_checksums_composite_and_full_object(s3, bucket):
    parts = [os.urandom(5 * MIB), os.urandom(1000)]
    # SHA256: composite (hash of the parts' hashes, "-N").
    uid = s3.create_multipart_upload(Bucket=bucket, Key="sha", ChecksumAlgorithm="SHA256")["UploadId"]
    done_parts = []
    for n, data in enumerate(parts, start=1):
        r = s3.upload_part(Bucket=bucket, Key="sha", UploadId=uid, PartNumber=n, Body=data, ChecksumAlgorithm="SHA256")
        assert r["ChecksumSHA256"] == sha256_b64(data)
        done_parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
    listed = s3.list_parts(Bucket=bucket, Key="sha", UploadId=uid)
    assert [p["ChecksumSHA256"] for p in listed["Parts"]] == [sha256_b64(p) for p in parts]
    assert listed["ChecksumAlgorithm"] == "SHA256"
    done = s3.complete_multipart_upload(Bucket=bucket, Key="sha", UploadId=uid, MultipartUpload={"Parts": done_parts})
    import base64
    composite = base64.b64encode(hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).digest()).decode()
    assert done["ChecksumSHA256"] == f"{composite}-2"
    head = s3.head_object(Bucket=bucket, Key="sha", ChecksumMode="ENABLED")
    assert (head["ChecksumSHA256"], head["ChecksumType"]) == (f"{composite}-2", "COMPOSITE")

    # A part with the wrong algorithm is refused; a wrong checksum in Complete is InvalidPart.
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mixed", ChecksumAlgorithm="CRC32")["UploadId"]
    expect_error("InvalidRequest", 400, s3.upload_part, Bucket=bucket, Key="mixed", UploadId=uid, PartNumber=1,
                 Body=b"x", ChecksumAlgorithm="SHA256")
    r = s3.upload_part(Bucket=bucket, Key="mixed", UploadId=uid, PartNumber=1, Body=b"x", ChecksumAlgorithm="CRC32")
    expect_error("InvalidPart", 400, s3.complete_multipart_upload, Bucket=bucket, Key="mixed", UploadId=uid,
                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": r["ETag"], "ChecksumCRC32": crc32_b64(b"y")}]})

    # CRC64NVME: full object (the checksum of all the bytes), precomputed values sent as is.
    whole = b"".join(parts)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="nvme", ChecksumAlgorithm="CRC64NVME",
                                     ChecksumType="FULL_OBJECT")["UploadId"]
    done_parts = []
    for n, data in enumerate(parts, start=1):
        r = s3.upload_part(Bucket=bucket, Key="nvme", UploadId=uid, PartNumber=n, Body=data,
                           ChecksumCRC64NVME=crc64nvme_b64(data))
        done_parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC64NVME": crc64nvme_b64(data)})
    expect_error("BadDigest", 400, s3.complete_multipart_upload, Bucket=bucket, Key="nvme", UploadId=uid,
                 MultipartUpload={"Parts": done_parts}, ChecksumCRC64NVME=crc64nvme_b64(b"wrong"), ChecksumType="FULL_OBJECT")
    done = s3.complete_multipart_upload(Bucket=bucket, Key="nvme", UploadId=uid, MultipartUpload={"Parts": done_parts},
                                        ChecksumCRC64NVME=crc64nvme_b64(whole), ChecksumType="FULL_OBJECT")
    assert done["ChecksumCRC64NVME"] == crc64nvme_b64(whole)
    head = s3.head_object(Bucket=bucket, Key="nvme", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC64NVME"], head["ChecksumType"]) == (crc64nvme_b64(whole), "FULL_OBJECT")
    assert s3.get_object(Bucket=bucket, Key="nvme")["Body"].read() == whole
    expect_error("InvalidRequest", 400, s3.create_multipart_upload, Bucket=bucket, Key="x", ChecksumAlgorithm="SHA256",
                 ChecksumType="FULL_OBJECT")


# ---- presigned URLs, unsigned payloads, signatures ----

def presign_client(emu, version):
    config = botocore.config.Config(signature_version=version) if version else None
    return boto3_client_with(emu, config)


@pytest.mark.parametrize("version", [None, "s3v4"], ids=["default", "s3v4"])
def test_presigned_get_and_put(emu, s3, bucket, version):
    """boto3's default presigned URLs are SigV2 (`AWSAccessKeyId`/`Signature`/`Expires`); with
    `signature_version="s3v4"` they are SigV4 (`X-Amz-*`). Both work, both expire."""
    presigner = presign_client(emu, version)
    marker = "X-Amz-Signature=" if version else "AWSAccessKeyId="
    s3.put_object(Bucket=bucket, Key="shared.txt", Body=b"presigned content")
    url = presigner.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared.txt"}, ExpiresIn=300)
    assert marker in url, url
    with urllib.request.urlopen(url) as r:
        assert r.read() == b"presigned content"

    put_url = presigner.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "uploaded.bin"},
                                               ExpiresIn=300)
    payload = os.urandom(50_000)
    # SigV2 signs the Content-Type (empty here); urllib would otherwise add a form type.
    req = urllib.request.Request(put_url, data=payload, method="PUT", headers={"Content-Type": ""})
    with urllib.request.urlopen(req) as r:
        assert r.status == 200 and r.headers["ETag"] == f'"{md5_hex(payload)}"'
    assert s3.get_object(Bucket=bucket, Key="uploaded.bin")["Body"].read() == payload

    # Tampering with the signed URL (another key) fails the signature.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url.replace("shared.txt", "uploaded.bin"))
    assert e.value.code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in e.value.read()

    expired = presigner.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared.txt"},
                                               ExpiresIn=1)
    time.sleep(2.1)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(expired)
    body = e.value.read()
    assert e.value.code == 403 and b"<Code>AccessDenied</Code>" in body and b"Request has expired" in body


def test_unsigned_payload_client(emu, bucket):
    client = boto3_client_with(emu, botocore.config.Config(s3={"payload_signing_enabled": False}))
    seen = []
    client.meta.events.register("before-send.s3.PutObject",
                                lambda request, **_: seen.append(request.headers["X-Amz-Content-SHA256"]))
    client.put_object(Bucket=bucket, Key="unsigned", Body=b"unsigned payload bytes")
    assert seen == [b"UNSIGNED-PAYLOAD"] or seen == ["UNSIGNED-PAYLOAD"]
    assert client.get_object(Bucket=bucket, Key="unsigned")["Body"].read() == b"unsigned payload bytes"


def boto3_client_with(emu, config, endpoint=None):
    import boto3
    return boto3.session.Session().client("s3", endpoint_url=endpoint or emu.url, region_name=REGION,
                                          aws_access_key_id="test", aws_secret_access_key="test", config=config)


def test_signature_errors(emu, s3, bucket):
    bad = boto_client(emu.url, "s3", secret="wrong-secret")
    resp = expect_error("SignatureDoesNotMatch", 403, bad.list_objects_v2, Bucket=bucket)
    assert resp["Error"]["StringToSign"].startswith("AWS4-HMAC-SHA256\n")
    assert resp["Error"]["CanonicalRequest"].startswith(f"GET\n/{bucket}\n")
    assert resp["Error"]["AWSAccessKeyId"] == "test"
    expect_error("SignatureDoesNotMatch", 403, bad.put_object, Bucket=bucket, Key="k", Body=b"x" * 100_000)
    expect_error("InvalidAccessKeyId", 403, boto_client(emu.url, "s3", access_key="AKIDNOBODY").list_buckets)
    # A body that does not match its declared SHA-256.
    request, _ = signed(f"{emu.url}/{bucket}/tampered", "PUT", {}, b"declared body")
    response = send(request, body=b"declared bodY")
    assert response.status_code == 400 and error_code(response) == "XAmzContentSHA256Mismatch", response.text
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=bucket, Key="tampered")
    # Anonymous requests are refused (as every unsigned request to the emulator is).
    anonymous = urllib.request.Request(f"{emu.url}/{bucket}")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(anonymous)
    assert e.value.code == 403


def test_method_not_allowed_and_unimplemented(emu, bucket):
    response = send(signed(f"{emu.url}/{bucket}/obj", "POST")[0])
    assert response.status_code == 405 and error_code(response) == "MethodNotAllowed", response.text
    response = send(signed(f"{emu.url}/{bucket}?policy", "GET")[0])
    assert response.status_code == 501 and error_code(response) == "NotImplemented", response.text


def test_virtual_host_addressing(emu, s3, bucket):
    port = urllib.parse.urlsplit(emu.url).port
    host = f"{bucket}.localhost:{port}"
    body = b"virtually hosted"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    request, _ = signed(f"http://{host}/vh/key.txt", "PUT", {"Host": host}, body)
    conn.request("PUT", "/vh/key.txt", body=body, headers=dict(request.headers.items()))
    response = conn.getresponse()
    assert response.status == 200, response.read()
    response.read()
    assert s3.get_object(Bucket=bucket, Key="vh/key.txt")["Body"].read() == body
    request, _ = signed(f"http://{host}/?list-type=2", "GET", {"Host": host})
    conn.request("GET", "/?list-type=2", headers=dict(request.headers.items()))
    listing = conn.getresponse().read().decode()
    assert f"<Name>{bucket}</Name>" in listing and "<Key>vh/key.txt</Key>" in listing
    # Presigned URLs of a client configured for virtual-host style, SigV2 (whose signed resource
    # names the bucket) and SigV4 (which signs the bucket-less path).
    for version in ("s3", "s3v4"):
        vhost = boto3_client_with(emu, botocore.config.Config(signature_version=version, s3={"addressing_style": "virtual"}),
                                  endpoint=f"http://localhost:{port}")
        url = urllib.parse.urlsplit(vhost.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "vh/key.txt"}))
        assert url.netloc == host, url
        conn.request("GET", f"{url.path}?{url.query}", headers={"Host": url.netloc})
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, body), version
    conn.close()


def test_owner_account_is_the_credentials_account(emu, s3):
    s3.create_bucket(Bucket="owned-by-default")
    owner = s3.list_buckets()["Owner"]
    other = boto_client(emu.url, "s3", **OTHER)
    other.create_bucket(Bucket="owned-by-other")
    assert other.list_buckets()["Owner"]["ID"] != owner["ID"]
    assert [b["Name"] for b in other.list_buckets()["Buckets"]] == ["owned-by-other"]
    expect_error("AccessDenied", 403, s3.get_object, Bucket="owned-by-other", Key="k")
    expect_error("AccessDenied", 403, s3.copy_object, Bucket="owned-by-default", Key="k",
                 CopySource="owned-by-other/k")
    assert ACCOUNT in owner["DisplayName"]
