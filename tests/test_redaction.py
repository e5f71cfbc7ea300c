"""Secrets are never printed: signed URLs, SAS tokens, user info, auth headers.

Each store's way of signing a request is tried for real: a presigned S3 URL
made by boto3 for moto, an Azure SAS made by the Azure SDK for Azurite (as an
http input, and as the store's own credential on the native engine), and a
GCS V4 signed URL's query.  Every one answers a retryable status (a fault
proxy in front of the server), so copilot retries, warns and fails: the
signature must appear nowhere at any log level, in either log format, on
stderr or in ``error.pb``.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import lits
import pytest
from conftest import S3, run_copilot
from faultproxy import FaultProxy

from copilot.errors import CopilotError
from copilot.redaction import MASK, RedactingFilter, redact

# -- the rule -------------------------------------------------------------------------

SIG = "c0ffee" * 8


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"GET https://b.s3.amazonaws.com/k?X-Amz-Signature={SIG}&X-Amz-Expires=60 failed", SIG),
        ("https://h/k?X-Amz-Credential=AKIAEXAMPLE%2F20240101%2Fus-east-1", "AKIAEXAMPLE"),
        ("https://h/k?X-Amz-Security-Token=IQoJb3JpZ2luX2VjEJr%2F", "IQoJb3JpZ2luX2VjEJr"),
        (f"https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&sig={SIG}%3D", SIG),
        (f"https://storage.googleapis.com/b/o?X-Goog-Signature={SIG}", SIG),
        ("Error performing DELETE http://h/b/k?uploadId=2~Zx9Pq in 3ms", "2~Zx9Pq"),
        ("redis://default:hunter2@127.0.0.1:6379/key", "hunter2"),
        ("https://ghp_token123@example.com/data.csv", "ghp_token123"),
        ("{'Authorization': 'AWS4-HMAC-SHA256 Credential=AKIA/x, Signature=abc'}", "AKIA/x"),
        ("Authorization: Bearer ya29.secret-token", "ya29.secret-token"),
        ("AccountName=dev;AccountKey=Eby8vdM02x==;BlobEndpoint=http://x", "Eby8vdM02x=="),
        ('{"password": "pw-123", "user": "me"}', "pw-123"),
    ],
)
def test_every_kind_of_secret_is_masked(text: str, secret: str) -> None:
    clean = redact(text)
    assert secret not in clean and MASK in clean, clean


@pytest.mark.parametrize(
    "text",
    [
        "output 'x': /var/outputs/token.txt: expected int, found 'abc' is not an integer",
        "input 'x': gs://bucket/secret.txt: not found",
        "abfs://container@account.dfs.core.windows.net/path",
        "s3://bucket/run/raw?partNumber=3",
        "exit-watcher-type=signal",
    ],
)
def test_what_names_an_object_is_kept(text: str) -> None:
    assert redact(text) == text


def test_an_error_message_is_masked_where_it_is_made() -> None:
    err = CopilotError(f"download https://h/k?X-Amz-Signature={SIG}: HTTP 503")
    assert SIG not in err.message and SIG not in str(err)


def test_log_records_are_masked_with_their_arguments_and_tracebacks() -> None:
    record = logging.LogRecord(
        "copilot", logging.WARNING, __file__, 1, "%s failed", (f"https://h/k?sig={SIG}",), None
    )
    try:
        raise ValueError(f"https://h/k?X-Goog-Signature={SIG}")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert SIG not in text and "failed" in text and "ValueError" in text


# -- for real, per store ----------------------------------------------------------------


def _download(s3: S3, url: str, level: int, fmt: str, tmp_path: Path) -> tuple[str, str]:
    """A download of one http input at ``url``; (everything printed, error.pb's message)."""
    key = f"r-{uuid.uuid4().hex[:6]}/"
    inputs = s3.put(key + "inputs.pb", lits.literal_map({"x": lits.blob(url)}).SerializeToString())
    flags = [f for f in s3.stow_flags() if not f.startswith("--logger.level")]
    res = run_copilot(
        [
            *flags,
            f"--logger.level={level}",
            f"--logger.formatter.type={fmt}",
            "download",
            "--from-remote",
            inputs,
            "--to-output-prefix",
            s3.uri(key),
            "--to-local-dir",
            str(tmp_path / uuid.uuid4().hex[:6]),
            "--retries",
            "2",
            "--retry-for",
            "0s",
        ]
    )
    assert res.returncode == 0, res.stderr
    doc = lits.read_error_document(s3.get(key + "error.pb"))
    return res.stdout + res.stderr, doc.message


def _signed_urls(
    s3: S3, proxy: str, request: pytest.FixtureRequest
) -> dict[str, tuple[str, list[str]]]:
    """Each store's signed URL for an object, pointed at the failing proxy; with the
    parts of it that must never be printed.  The secret parameters come first in
    the query, where a message that shows the URL cut short would still hold them."""
    from urllib.parse import parse_qs, quote, urlsplit

    import boto3
    from botocore.config import Config
    from conftest import ACCESS_KEY, REGION, SECRET_KEY

    s3.put("data/x.csv", b"a,b\n")
    signer = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        aws_session_token="FwoGZXIvYXdzEXAMPLESESSIONTOKEN",
        region_name=REGION,
        config=Config(signature_version="s3v4"),
    )
    presigned = signer.generate_presigned_url(
        "get_object", Params={"Bucket": s3.bucket, "Key": "data/x.csv"}, ExpiresIn=600
    )
    s3_url = proxy + presigned[len(s3.endpoint) :]
    query = parse_qs(urlsplit(s3_url).query)
    assert query["X-Amz-Security-Token"] == ["FwoGZXIvYXdzEXAMPLESESSIONTOKEN"]
    s3_secrets = [query["X-Amz-Signature"][0], ACCESS_KEY, "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"]

    from datetime import datetime, timedelta, timezone

    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    azure = request.getfixturevalue("azure_server")
    sas = generate_blob_sas(
        azure.account,
        "c",
        "x.csv",
        account_key=azure.key,
        permission=BlobSasPermissions(read=True),
        expiry=datetime.now(timezone.utc) + timedelta(minutes=10),
    )
    azure_sig = parse_qs(sas)["sig"][0]
    rest = "&".join(p for p in sas.split("&") if not p.startswith("sig="))
    azure_url = f"{proxy}/{azure.account}/c/x.csv?sig={quote(azure_sig, safe='')}&{rest}"

    gcs_sig = "6a" * 128  # a V4 signature's shape: 256 hex digits
    gcs_url = (
        f"{proxy}/bucket/x.csv?X-Goog-Signature={gcs_sig}&X-Goog-Algorithm=GOOG4-RSA-SHA256"
        "&X-Goog-Credential=copilot%40project.iam.gserviceaccount.com%2F20261207%2Fauto"
        "&X-Goog-Date=20261207T000000Z&X-Goog-Expires=600&X-Goog-SignedHeaders=host"
    )
    return {
        "s3": (s3_url, s3_secrets),
        "abfs": (azure_url, [azure_sig]),
        "gs": (gcs_url, [gcs_sig]),
    }


#: Debug (5) shows everything the lower levels show and more: the everyday run takes it.
@pytest.mark.parametrize(
    "level", [pytest.param(3, marks=pytest.mark.slow), pytest.param(4, marks=pytest.mark.slow), 5]
)
def test_a_failing_signed_url_is_never_printed_at_any_level(
    s3: S3, tmp_path: Path, request: pytest.FixtureRequest, level: int
) -> None:
    with FaultProxy(s3.endpoint, mode="503", rate=1.0) as proxy:
        urls = _signed_urls(s3, proxy.url, request)
        for store, (url, secrets) in urls.items():
            for fmt in ("text", "json"):
                printed, message = _download(s3, url, level, fmt, tmp_path)
                where = f"{store}, level {level}, {fmt}"
                for secret in secrets:
                    assert secret not in printed, f"{where}: printed {printed}"
                    assert secret not in message, f"{where}: error.pb {message}"
                assert "input 'x'" in message and "HTTP 503" in message, f"{where}: {message}"
                if level >= 3:
                    assert "retrying" in printed, f"{where}: no retry warning: {printed}"


def test_the_stores_own_sas_token_never_reaches_error_pb(
    s3: S3, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Azure on the native engine with a SAS as its credential: every request carries
    the token in its query, and obstore's error text holds the request URL."""
    from datetime import datetime, timedelta, timezone

    from azure.storage.blob import (
        AccountSasPermissions,
        ResourceTypes,
        generate_account_sas,
    )

    azure = request.getfixturevalue("azure_server")
    sas = generate_account_sas(
        azure.account,
        azure.key,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, list=True),
        expiry=datetime.now(timezone.utc) + timedelta(minutes=10),
    )
    from urllib.parse import parse_qs

    secret = parse_qs(sas)["sig"][0]
    upstream = azure.blob_endpoint.rsplit("/", 1)[0]
    with FaultProxy(upstream, mode="503", rate=1.0) as proxy:
        config = tmp_path / "azure.yaml"
        config.write_text(
            "storage:\n  type: stow\n  stow:\n    kind: azure\n    config:\n"
            f"      connection_string: 'BlobEndpoint={proxy.url}/{azure.account};"
            f"SharedAccessSignature={sas}'\n"
        )
        for level in (3, 5):
            res = run_copilot(
                [
                    "--config",
                    str(config),
                    f"--logger.level={level}",
                    "download",
                    "--from-remote",
                    "abfs://c/run/inputs.pb",
                    "--to-local-dir",
                    str(tmp_path / f"in{level}"),
                    "--retries",
                    "2",
                    "--retry-for",
                    "0s",
                ]
            )
            assert res.returncode == 1, res.stderr  # no prefix for error.pb: the line says it
            assert "inputs.pb" in res.stderr
            assert secret not in res.stdout + res.stderr, res.stderr
