"""STS GetCallerIdentity with the real AWS CLI and boto3: the account of the credentials, awsQuery
errors for bad signatures and unknown keys."""
import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, Cli, Emulator, boto_client
from s3util import OTHER, OTHER_ACCOUNT, TWO_ACCOUNTS, send, signed


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    emu = Emulator(extra_args=TWO_ACCOUNTS).start(tmp_path_factory.mktemp("sts") / "emulator.log")
    yield emu
    emu.stop()


def test_cli_get_caller_identity(emu):
    out = Cli(emu.url).json("sts", "get-caller-identity")
    assert out == {"UserId": ACCOUNT, "Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:root"}
    out = Cli(emu.url, **OTHER).json("sts", "get-caller-identity")
    assert out["Account"] == OTHER_ACCOUNT
    assert out["Arn"] == f"arn:aws:iam::{OTHER_ACCOUNT}:root"


def test_boto3_get_caller_identity_per_account_and_region(emu):
    ident = boto_client(emu.url, "sts").get_caller_identity()
    assert (ident["Account"], ident["UserId"], ident["Arn"]) == (ACCOUNT, ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root")
    assert ident["ResponseMetadata"]["RequestId"]
    other = boto_client(emu.url, "sts", region="eu-west-1", **OTHER).get_caller_identity()
    assert other["Account"] == OTHER_ACCOUNT


def test_bad_credentials_are_rejected_in_sts_wording(emu):
    with pytest.raises(ClientError) as e:
        boto_client(emu.url, "sts", secret="wrong").get_caller_identity()
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as e:
        boto_client(emu.url, "sts", access_key="AKIDUNKNOWN").get_caller_identity()
    assert e.value.response["Error"]["Code"] == "InvalidClientTokenId"
    proc = Cli(emu.url, secret="wrong").run("sts", "get-caller-identity", check=False)
    assert proc.returncode != 0 and "SignatureDoesNotMatch" in proc.stderr


def test_other_actions_and_query_form(emu):
    with pytest.raises(ClientError) as e:
        boto_client(emu.url, "sts").get_session_token()
    assert e.value.response["Error"]["Code"] == "InvalidAction"
    # awsQuery also accepts the action in the query string of a GET.
    request, _ = signed(f"{emu.url}/?Action=GetCallerIdentity&Version=2011-06-15", service="sts")
    response = send(request)
    assert response.status_code == 200, response.text
    assert f"<Account>{ACCOUNT}</Account>" in response.text
