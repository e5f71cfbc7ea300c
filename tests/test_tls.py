"""A store behind a private CA: trusted with ``--storage.ca-bundle`` (KFP's launcher
has ``--ca_cert_path``), refused without it, on every engine that serves S3."""

from __future__ import annotations

from pathlib import Path

import lits
import pytest
from conftest import S3, run_copilot
from faultproxy import FaultProxy
from tls import make_ca_and_server


def _download(s3: S3, flags: list[str], uri: str, out: Path):
    return run_copilot(["--logger.level=4", *flags, "download", "-f", uri, "-o", str(out)])


@pytest.mark.parametrize("engine", ["obstore", "fsspec"])
def test_a_private_ca_is_trusted_only_when_given(s3: S3, tmp_path: Path, engine: str) -> None:
    ca, server = make_ca_and_server(tmp_path)
    uri = s3.put("tls/inputs.pb", lits.literal_map({"a": lits.integer(7)}).SerializeToString())
    with FaultProxy(s3.endpoint, tls=server) as proxy:
        assert proxy.url.startswith("https://127.0.0.1:")
        flags = [*s3.stow_flags(proxy.url), f"--storage.engine={engine}"]
        refused = _download(s3, flags, uri, tmp_path / "refused")
        trusted = _download(s3, [*flags, f"--storage.ca-bundle={ca}"], uri, tmp_path / "in")
    assert refused.returncode == 1
    assert "certificate" in refused.stderr.lower(), refused.stderr
    assert "--storage.ca-bundle" in refused.stderr, refused.stderr
    assert "attempt 2 of" not in refused.stderr, "an untrusted certificate is retried"
    assert trusted.returncode == 0, trusted.stderr
    assert (tmp_path / "in" / "a").read_text() == "7"


def test_an_https_input_is_read_through_a_private_ca(s3: S3, tmp_path: Path) -> None:
    ca, server = make_ca_and_server(tmp_path)
    s3.client.put_object(
        Bucket=s3.bucket, Key="web/report.csv", Body=b"a,b\n1,2\n", ACL="public-read"
    )
    with FaultProxy(s3.endpoint, tls=server) as proxy:
        url = f"{proxy.url}/{s3.bucket}/web/report.csv"  # public: read unsigned
        inputs = tmp_path / "inputs.pb"
        inputs.write_bytes(lits.literal_map({"f": lits.blob(url)}).SerializeToString())
        args = ["download", "-f", str(inputs), "-o"]
        refused = run_copilot([*args, str(tmp_path / "refused")])
        trusted = run_copilot([f"--storage.ca-bundle={ca}", *args, str(tmp_path / "in")])
    assert refused.returncode == 1 and "--storage.ca-bundle" in refused.stderr, refused.stderr
    assert trusted.returncode == 0, trusted.stderr
    assert (tmp_path / "in" / "f").read_bytes() == b"a,b\n1,2\n"


@pytest.mark.parametrize(("kind", "protocol"), [("google", "gs"), ("azure", "abfs")])
def test_a_ca_bundle_a_library_cannot_take_is_refused_not_ignored(
    tmp_path: Path, kind: str, protocol: str
) -> None:
    from copilot.config import StorageConfig
    from copilot.errors import UsageError
    from copilot.storage import Store

    ca, _ = make_ca_and_server(tmp_path)
    config = StorageConfig(kind=kind, engine="fsspec", ca_bundle=str(ca))
    with pytest.raises(UsageError, match="takes no CA bundle; set SSL_CERT_FILE"):
        Store(config).client(protocol)


def test_a_ca_bundle_that_is_not_pem_is_a_clear_error(tmp_path: Path) -> None:
    from copilot.config import StorageConfig
    from copilot.errors import UsageError

    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(UsageError, match=r"storage.ca-bundle .*ca.pem: expected PEM certificates"):
        StorageConfig(kind="s3", ca_bundle=str(bad)).ca_certificates()
    with pytest.raises(UsageError, match="cannot read it"):
        StorageConfig(kind="s3", ca_bundle=str(tmp_path / "missing.pem")).ca_certificates()
