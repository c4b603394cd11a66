"""Objects in --data-dir survive a clean restart and a kill -9 right after the API answered
(versions, delete markers, multipart objects, unfinished uploads); files of interrupted writes are
removed after start-up (in the background); with --in-memory the object files live in a temp directory removed at exit."""
import os
import re
import signal
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import Emulator, boto_client, crash
from s3util import crc32_b64, multipart_etag

MIB = 1024 * 1024


@pytest.fixture
def launch(tmp_path):
    started = []

    def start(data_dir=tmp_path / "data"):
        emu = Emulator(data_dir=data_dir, extra_args=["--sandbox", "none"]).start(
            tmp_path / f"emulator-{len(started)}.log")
        started.append(emu)
        return emu, boto_client(emu.url, "s3")

    yield start
    for emu in started:
        emu.stop(signal.SIGKILL)


def write_everything(s3):
    """Writes one of each kind of state; returns what must be read back."""
    s3.create_bucket(Bucket="plain")
    s3.create_bucket(Bucket="versioned")
    s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
    small = b"small object"
    medium = os.urandom(6 * MIB + 3)
    s3.put_object(Bucket="plain", Key="small.txt", Body=small, ContentType="text/plain", Metadata={"k": "v"},
                  ChecksumAlgorithm="CRC32")
    s3.put_object(Bucket="plain", Key="dir/medium.bin", Body=medium)
    parts = [os.urandom(5 * MIB), b"end"]
    uid = s3.create_multipart_upload(Bucket="plain", Key="multi")["UploadId"]
    etags = [s3.upload_part(Bucket="plain", Key="multi", UploadId=uid, PartNumber=n, Body=p)["ETag"]
             for n, p in enumerate(parts, start=1)]
    s3.complete_multipart_upload(Bucket="plain", Key="multi", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]})
    v1 = s3.put_object(Bucket="versioned", Key="doc", Body=b"first")["VersionId"]
    v2 = s3.put_object(Bucket="versioned", Key="doc", Body=b"second")["VersionId"]
    marker = s3.delete_object(Bucket="versioned", Key="doc")["VersionId"]
    pending = s3.create_multipart_upload(Bucket="plain", Key="pending")["UploadId"]
    pending_part = os.urandom(5 * MIB)
    pending_etag = s3.upload_part(Bucket="plain", Key="pending", UploadId=pending, PartNumber=1,
                                  Body=pending_part)["ETag"]
    return dict(small=small, medium=medium, parts=parts, v1=v1, v2=v2, marker=marker, pending=pending,
                pending_part=pending_part, pending_etag=pending_etag)


def check_everything(s3, w):
    assert sorted(b["Name"] for b in s3.list_buckets()["Buckets"]) == ["plain", "versioned"]
    got = s3.get_object(Bucket="plain", Key="small.txt", ChecksumMode="ENABLED")
    assert got["Body"].read() == w["small"]
    assert (got["ContentType"], got["Metadata"], got["ChecksumCRC32"]) == ("text/plain", {"k": "v"}, crc32_b64(w["small"]))
    assert s3.get_object(Bucket="plain", Key="dir/medium.bin")["Body"].read() == w["medium"]
    multi = s3.get_object(Bucket="plain", Key="multi")
    assert multi["Body"].read() == b"".join(w["parts"]) and multi["ETag"] == multipart_etag(w["parts"])
    assert s3.get_bucket_versioning(Bucket="versioned")["Status"] == "Enabled"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="versioned", Key="doc")
    assert e.value.response["Error"]["Code"] == "NoSuchKey"
    assert s3.get_object(Bucket="versioned", Key="doc", VersionId=w["v1"])["Body"].read() == b"first"
    assert s3.get_object(Bucket="versioned", Key="doc", VersionId=w["v2"])["Body"].read() == b"second"
    versions = s3.list_object_versions(Bucket="versioned")
    assert [m["VersionId"] for m in versions["DeleteMarkers"]] == [w["marker"]]
    parts = s3.list_parts(Bucket="plain", Key="pending", UploadId=w["pending"])["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, w["pending_etag"])]


def test_objects_survive_clean_restart_and_kill_9(launch, tmp_path):
    emu, s3 = launch()
    written = write_everything(s3)
    crash(emu)  # right after the last acknowledged write

    emu, s3 = launch()
    check_everything(s3, written)
    # The upload left unfinished before the crash can be completed now.
    s3.complete_multipart_upload(Bucket="plain", Key="pending", UploadId=written["pending"], MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": written["pending_etag"]}]})
    assert s3.get_object(Bucket="plain", Key="pending")["Body"].read() == written["pending_part"]
    s3.delete_object(Bucket="plain", Key="small.txt")
    emu.stop()  # clean

    emu, s3 = launch()
    with pytest.raises(ClientError):
        s3.head_object(Bucket="plain", Key="small.txt")
    assert s3.get_object(Bucket="plain", Key="pending")["Body"].read() == written["pending_part"]
    assert s3.get_object(Bucket="plain", Key="dir/medium.bin")["Body"].read() == written["medium"]
    emu.stop()

    # Every file in the data directory belongs to a live object version or part.
    data = tmp_path / "data" / "objects" / "data"
    files = [p for p in data.rglob("*") if p.is_file()]
    assert len(files) == 5, files  # medium, multi, pending (completed), versions first and second


def test_files_of_interrupted_writes_are_removed_at_start(launch, tmp_path):
    emu, s3 = launch()
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="kept", Body=b"kept")
    crash(emu)
    root = tmp_path / "data" / "objects"
    orphan = root / "data" / "ff" / "ff00000000000000000000000000dead"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"written, never committed")
    staging = root / "tmp" / "upload-half-written"
    staging.write_bytes(b"half")

    emu, s3 = launch()
    assert not staging.exists()
    # Orphans are removed in the background once the emulator serves; writes meanwhile are safe.
    s3.put_object(Bucket="bkt", Key="during-the-scan", Body=b"new")
    deadline = time.monotonic() + 10
    while orphan.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not orphan.exists()
    assert s3.get_object(Bucket="bkt", Key="kept")["Body"].read() == b"kept"
    assert s3.get_object(Bucket="bkt", Key="during-the-scan")["Body"].read() == b"new"
    assert "removed object files left by an interrupted write" in emu.log()


def test_in_memory_object_files_are_removed_at_shutdown(tmp_path):
    emu = Emulator(extra_args=["--sandbox", "none"]).start(tmp_path / "emulator.log")
    try:
        s3 = boto_client(emu.url, "s3")
        s3.create_bucket(Bucket="mem")
        s3.put_object(Bucket="mem", Key="k", Body=b"in memory")
        log = re.sub(r"\x1b\[[0-9;]*m", "", emu.log())
        match = re.search(r"object files dir=(\S+)", log)
        assert match, log
        directory = Path(match.group(1))
        assert any(p.is_file() for p in directory.rglob("*"))
    finally:
        assert emu.stop() == 0
    assert not directory.exists()
