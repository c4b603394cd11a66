"""The embedded S3 subset through the real AWS CLI's high-level `aws s3` commands and `aws s3api`:
make and remove buckets, copy small and multipart-sized files both ways, list, sync a tree,
ranges; every download compared byte for byte."""
import filecmp
import hashlib
import json
import os

import pytest

from conftest import Cli, Emulator
from s3util import crc32_b64

BIG = 20 * 1024 * 1024 + 12345  # above the CLI's 8 MiB multipart threshold: three parts


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    emu = Emulator(extra_args=["--sandbox", "none"]).start(tmp_path_factory.mktemp("s3cli") / "emulator.log")
    yield emu
    emu.stop()


@pytest.fixture
def cli(emu):
    return Cli(emu.url)


def s3(cli, *args, check=True):
    quiet = ("--only-show-errors",) if args[0] in ("cp", "sync", "rm", "mv") else ()
    return cli.run("s3", *args, *quiet, check=check)


def test_mb_cp_ls_rm_rb_with_small_and_multipart_files(cli, tmp_path):
    s3(cli, "mb", "s3://cli-bucket")
    listing = cli.run("s3", "ls").stdout
    assert "cli-bucket" in listing

    small = tmp_path / "small.txt"
    small.write_bytes(b"hello from the aws cli\n")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(BIG))

    s3(cli, "cp", str(small), "s3://cli-bucket/docs/small.txt")
    s3(cli, "cp", str(big), "s3://cli-bucket/data/big.bin")

    # The CLI uploaded the big file in parts: S3's multipart ETag and composite CRC32 checksum.
    head = cli.json("s3api", "head-object", "--bucket", "cli-bucket", "--key", "data/big.bin",
                    "--checksum-mode", "ENABLED")
    assert head["ContentLength"] == BIG
    assert head["ETag"].endswith('-3"'), head
    assert head["ChecksumType"] == "COMPOSITE" and head["ChecksumCRC32"].endswith("-3"), head
    small_head = cli.json("s3api", "head-object", "--bucket", "cli-bucket", "--key", "docs/small.txt",
                          "--checksum-mode", "ENABLED")
    assert small_head["ETag"] == '"%s"' % hashlib.md5(small.read_bytes()).hexdigest()
    assert small_head["ChecksumCRC32"] == crc32_b64(small.read_bytes())
    assert small_head["ContentType"] == "text/plain"

    down_small, down_big = tmp_path / "small.down", tmp_path / "big.down"
    s3(cli, "cp", "s3://cli-bucket/docs/small.txt", str(down_small))
    s3(cli, "cp", "s3://cli-bucket/data/big.bin", str(down_big))
    assert down_small.read_bytes() == small.read_bytes()
    assert down_big.read_bytes() == big.read_bytes()

    top = cli.run("s3", "ls", "s3://cli-bucket/").stdout
    assert "PRE docs/" in top and "PRE data/" in top
    recursive = cli.run("s3", "ls", "--recursive", "s3://cli-bucket").stdout
    assert "docs/small.txt" in recursive and f"{BIG} data/big.bin" in recursive

    # rb refuses a bucket that still has objects; rm then rb succeeds.
    proc = s3(cli, "rb", "s3://cli-bucket", check=False)
    assert proc.returncode != 0 and "BucketNotEmpty" in proc.stderr
    s3(cli, "rm", "s3://cli-bucket/docs/small.txt")
    assert "small.txt" not in cli.run("s3", "ls", "--recursive", "s3://cli-bucket").stdout
    s3(cli, "rm", "--recursive", "s3://cli-bucket")
    assert cli.run("s3", "ls", "--recursive", "s3://cli-bucket").stdout.strip() == ""
    s3(cli, "rb", "s3://cli-bucket")
    assert "cli-bucket" not in cli.run("s3", "ls").stdout
    proc = cli.run("s3", "ls", "s3://cli-bucket", check=False)
    assert proc.returncode != 0 and "NoSuchBucket" in proc.stderr


def make_tree(root):
    files = {
        "README.md": b"# tree\n",
        "src/main.py": b"print('hi')\n",
        "src/pkg/__init__.py": b"",
        "src/pkg/mod with space.py": b"x = 1\n" * 100,
        "data/blob.bin": os.urandom(300_000),
        "data/deep/er/still+plus.txt": b"plus",
    }
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return files


def assert_same_tree(a, b, files):
    for rel in files:
        assert (b / rel).read_bytes() == (a / rel).read_bytes(), rel
    assert not filecmp.dircmp(a, b).diff_files


def test_sync_and_recursive_copy_of_a_tree(cli, tmp_path):
    src = tmp_path / "src"
    files = make_tree(src)
    s3(cli, "mb", "s3://tree-bucket")
    s3(cli, "sync", str(src), "s3://tree-bucket/tree")
    keys = sorted(o["Key"] for o in cli.json("s3api", "list-objects-v2", "--bucket", "tree-bucket")["Contents"])
    assert keys == sorted(f"tree/{rel}" for rel in files)

    down = tmp_path / "down"
    s3(cli, "sync", "s3://tree-bucket/tree", str(down))
    assert_same_tree(src, down, files)

    # A second sync has nothing to do; a changed file is uploaded again.
    proc = cli.run("s3", "sync", str(src), "s3://tree-bucket/tree")
    assert "upload:" not in proc.stdout
    (src / "src/main.py").write_bytes(b"print('changed and longer')\n")
    proc = cli.run("s3", "sync", str(src), "s3://tree-bucket/tree")
    assert "upload: " in proc.stdout and "main.py" in proc.stdout

    copy = tmp_path / "copy"
    s3(cli, "cp", "--recursive", "s3://tree-bucket/tree/src", str(copy))
    assert (copy / "main.py").read_bytes() == b"print('changed and longer')\n"
    assert (copy / "pkg/mod with space.py").read_bytes() == files["src/pkg/mod with space.py"]

    # Server-side copies between prefixes, then a delimiter listing through s3api.
    s3(cli, "cp", "--recursive", "s3://tree-bucket/tree/data", "s3://tree-bucket/copied")
    listing = cli.json("s3api", "list-objects-v2", "--bucket", "tree-bucket", "--delimiter", "/")
    assert sorted(p["Prefix"] for p in listing["CommonPrefixes"]) == ["copied/", "tree/"]
    nested = cli.json("s3api", "list-objects-v2", "--bucket", "tree-bucket", "--prefix", "copied/", "--delimiter", "/")
    assert [o["Key"] for o in nested["Contents"]] == ["copied/blob.bin"]
    assert [p["Prefix"] for p in nested["CommonPrefixes"]] == ["copied/deep/"]
    s3(cli, "rb", "--force", "s3://tree-bucket")


def test_s3api_head_object_and_ranged_get_object(cli, tmp_path):
    s3(cli, "mb", "s3://api-bucket")
    content = bytes(range(256)) * 40
    src = tmp_path / "src.bin"
    src.write_bytes(content)
    put = cli.json("s3api", "put-object", "--bucket", "api-bucket", "--key", "k.bin", "--body", str(src),
                   "--content-type", "application/x-test", "--metadata", "owner=tests,purpose=range")
    assert put["ETag"] == '"%s"' % hashlib.md5(content).hexdigest()
    head = cli.json("s3api", "head-object", "--bucket", "api-bucket", "--key", "k.bin")
    assert head["ContentLength"] == len(content)
    assert head["ContentType"] == "application/x-test"
    assert head["Metadata"] == {"owner": "tests", "purpose": "range"}
    assert head["ETag"] == put["ETag"]

    out = tmp_path / "part.bin"
    got = cli.json("s3api", "get-object", "--bucket", "api-bucket", "--key", "k.bin", "--range", "bytes=100-1123", str(out))
    assert got["ContentRange"] == f"bytes 100-1123/{len(content)}"
    assert got["ContentLength"] == 1024
    assert out.read_bytes() == content[100:1124]
    got = cli.json("s3api", "get-object", "--bucket", "api-bucket", "--key", "k.bin", "--range", "bytes=-10", str(out))
    assert out.read_bytes() == content[-10:]

    proc = cli.run("s3api", "get-object", "--bucket", "api-bucket", "--key", "k.bin", "--range",
                   f"bytes={len(content)}-", str(out), check=False)
    assert proc.returncode != 0 and "InvalidRange" in proc.stderr
    proc = cli.run("s3api", "head-object", "--bucket", "api-bucket", "--key", "missing", check=False)
    assert proc.returncode != 0 and "404" in proc.stderr
    proc = cli.run("s3api", "get-object", "--bucket", "api-bucket", "--key", "missing", str(out), check=False)
    assert proc.returncode != 0 and "NoSuchKey" in proc.stderr
    json.loads(cli.run("s3api", "delete-object", "--bucket", "api-bucket", "--key", "k.bin").stdout or "{}")
    s3(cli, "rb", "s3://api-bucket")
