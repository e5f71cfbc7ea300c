"""The credential routes users deploy with, on the engine that serves each store, all
against servers on loopback: S3 keys from the environment, a shared credentials
profile, a session token, IRSA web identity (moto's STS), Azure account keys,
connection strings (configured or from the environment) and SAS tokens."""

from __future__ import annotations

import datetime
from pathlib import Path

import lits
import pytest
from conftest import ACCESS_KEY, REGION, S3, SECRET_KEY, clean_env, run_copilot
from stores import AzureContainer

from copilot.config import StorageConfig
from copilot.storage import Store


def _inputs(remote) -> str:
    return remote.put(
        "cred/inputs.pb", lits.literal_map({"a": lits.integer(5)}).SerializeToString()
    )


def _download(flags: list[str], uri: str, out: Path, env: dict[str, str]):
    return run_copilot(["--logger.level=4", *flags, "download", "-f", uri, "-o", str(out)], env=env)


@pytest.mark.parametrize("engine", ["obstore", "fsspec"])
def test_s3_keys_from_a_shared_credentials_profile(s3: S3, tmp_path: Path, engine: str) -> None:
    uri = _inputs(s3)
    creds = tmp_path / "credentials"
    creds.write_text(
        f"[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n"
        f"[copilot]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    config = tmp_path / "config"
    config.write_text(f"[profile copilot]\nregion = {REGION}\n")
    env = clean_env(
        AWS_SHARED_CREDENTIALS_FILE=str(creds),
        AWS_CONFIG_FILE=str(config),
        AWS_PROFILE="copilot",
        AWS_ENDPOINT_URL_S3=s3.endpoint,
    )
    res = _download([f"--storage.engine={engine}"], uri, tmp_path / "in", env)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "in" / "a").read_text() == "5"
    if engine == "obstore":
        from copilot.storage.s3 import obstore_options as s3_options

        opts = s3_options(StorageConfig(kind="s3"), env)
        assert opts["access_key_id"] == ACCESS_KEY and opts["region"] == REGION


def test_a_profile_only_botocore_can_serve_moves_s3_to_the_fsspec_engine(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("[profile ops]\nrole_arn = arn:aws:iam::123456789012:role/ops\n")
    env = {"AWS_CONFIG_FILE": str(config), "AWS_PROFILE": "ops",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}  # fmt: skip
    from copilot.storage.engines import engine_for
    from copilot.storage.s3 import unsupported

    assert "role_arn" in unsupported(StorageConfig(kind="s3"), env)
    import os

    old = dict(os.environ)
    os.environ.update(env)
    try:
        assert engine_for("s3", StorageConfig(kind="s3")) == "fsspec"
        assert engine_for("s3", StorageConfig(kind="s3", engine="fsspec")) == "fsspec"
        # Asked for by name, obstore says why it cannot, instead of guessing.
        with pytest.raises(Exception, match="role_arn .*use --storage.engine fsspec"):
            Store(StorageConfig(kind="s3", engine="obstore")).client("s3")
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_a_named_profile_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    from copilot.errors import NON_RECOVERABLE, StorageError
    from copilot.storage.s3 import obstore_options as s3_options

    env = {"AWS_PROFILE": "nope", "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}  # fmt: skip
    with pytest.raises(StorageError, match="AWS_PROFILE 'nope': no such profile") as info:
        s3_options(StorageConfig(kind="s3"), env)
    assert info.value.kind == NON_RECOVERABLE


@pytest.mark.parametrize("engine", ["obstore", "fsspec"])
def test_s3_irsa_web_identity_through_sts(s3: S3, tmp_path: Path, engine: str) -> None:
    """IRSA: a projected service-account token and a role; the engine exchanges them
    at STS (moto's, behind TLS on loopback: object_store calls STS over https
    only) for temporary keys, then reads the inputs with them."""
    from faultproxy import FaultProxy
    from tls import make_ca_and_server

    uri = _inputs(s3)
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJl")
    ca, server = make_ca_and_server(tmp_path)
    with FaultProxy(s3.endpoint, tls=server, query_to_form=True) as sts:
        env = clean_env(
            AWS_WEB_IDENTITY_TOKEN_FILE=str(token),
            AWS_ROLE_ARN="arn:aws:iam::123456789012:role/copilot",
            AWS_ROLE_SESSION_NAME="copilot-test",
            AWS_ENDPOINT_URL_STS=sts.url,
            AWS_ENDPOINT_URL_S3=s3.endpoint,
            AWS_CA_BUNDLE=str(ca),
            AWS_REGION=REGION,
        )
        res = _download([f"--storage.engine={engine}"], uri, tmp_path / "in", env)
        calls = [p for m, p, _ in sts.seen if "AssumeRoleWithWebIdentity" in p or m == "POST"]
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "in" / "a").read_text() == "5"
    assert calls, "the role was never assumed"


@pytest.mark.parametrize("engine", ["obstore", "fsspec"])
def test_s3_session_token_from_the_stow_config(s3: S3, tmp_path: Path, engine: str) -> None:
    uri = _inputs(s3)
    flags = [*s3.stow_flags(), "--storage.stow.config", "token=FQoGZXIvYXdzEXAMPLE",
             f"--storage.engine={engine}"]  # fmt: skip
    res = _download(flags, uri, tmp_path / "in", clean_env())
    assert res.returncode == 0, res.stderr
    from copilot.storage.s3 import obstore_options as s3_options

    config = StorageConfig(kind="s3", stow_config={"access_key_id": "a", "secret_key": "b",
                                                   "token": "FQoGZXIvYXdzEXAMPLE"})  # fmt: skip
    assert s3_options(config, {})["session_token"] == "FQoGZXIvYXdzEXAMPLE"


def _azure(request: pytest.FixtureRequest) -> AzureContainer:
    return AzureContainer(request.getfixturevalue("azure_server"))


@pytest.mark.parametrize("engine", ["obstore", "fsspec"])
def test_azure_connection_string_from_the_environment(
    request: pytest.FixtureRequest, tmp_path: Path, engine: str
) -> None:
    az = _azure(request)
    uri = _inputs(az)
    env = clean_env(AZURE_STORAGE_CONNECTION_STRING=az.server.connection_string)
    flags = ["--storage.stow.kind=azure", f"--storage.engine={engine}"]
    res = _download(flags, uri, tmp_path / "in", env)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "in" / "a").read_text() == "5"


@pytest.mark.parametrize("engine", ["obstore", "fsspec"])
def test_azure_sas_token_in_a_connection_string(
    request: pytest.FixtureRequest, tmp_path: Path, engine: str
) -> None:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    az = _azure(request)
    uri = _inputs(az)
    sas = generate_container_sas(
        az.server.account,
        az.bucket,
        account_key=az.server.key,
        permission=ContainerSasPermissions(read=True, list=True, write=True),
        expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1),
    )
    conn = f"BlobEndpoint={az.server.blob_endpoint};SharedAccessSignature={sas}"
    flags = ["--storage.stow.kind=azure", "--storage.stow.config", f'"connection_string={conn}"',
             f"--storage.engine={engine}"]  # fmt: skip
    res = _download(flags, uri, tmp_path / "in", clean_env())
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "in" / "a").read_text() == "5"
    assert sas not in res.stderr  # a credential is never shown


def test_azure_settings_read_every_part_of_a_connection_string() -> None:
    conn = (
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5PT0=;"
        "EndpointSuffix=core.chinacloudapi.cn"
    )
    from copilot.storage import azure

    az = azure.settings(StorageConfig(kind="azure", stow_config={"connection_string": conn}), {})
    assert (az.account, az.key) == ("acct", "a2V5PT0=")
    assert az.endpoint == "https://acct.blob.core.chinacloudapi.cn"
    assert "a2V5PT0=" not in repr(az)
    suffix = azure.settings(
        StorageConfig(
            kind="azure", stow_config={"account": "acct", "domain_suffix": "core.usgovcloudapi.net"}
        ),
        {},
    )
    assert suffix.endpoint == "https://acct.blob.core.usgovcloudapi.net"
