"""Both steps with exactly the argument list Flyte's plugin builds when the storage
configuration is a projected Secret (flytek8s/copilot.go ``CopilotCommandArgs``):
no credential on the command line, the stow section read from ``--config``."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import lits
import pytest
from conftest import ACCESS_KEY, REGION, S3, SECRET_KEY, clean_env, copilot_exe, record, run_copilot
from sidecar_helpers import typed_interface

T = lits.T


def _projected_secret(s3: S3, tmp_path: Path) -> Path:
    """The Secret as the kubelet projects it: read-only files (0444), the secret key
    in a file of its own with a trailing newline, as `kubectl create secret` keeps it."""
    mount = tmp_path / "etc-flyte-copilot"
    mount.mkdir()
    key_file = mount / "secret-key"
    key_file.write_text(SECRET_KEY + "\n")
    (mount / "storage.yaml").write_text(
        "storage:\n"
        "  stow:\n"
        "    kind: s3\n"
        "    config:\n"
        "      auth_type: accesskey\n"
        f"      access_key_id: {ACCESS_KEY}\n"
        f"      secret_key_path: {key_file}\n"
        f"      endpoint: {s3.endpoint}\n"
        f"      region: {REGION}\n"
        "      disable_ssl: true\n"
    )
    (mount / "README").write_text("not a .yaml key: mounted, never read\n")
    for f in mount.iterdir():
        f.chmod(0o444)
    return mount


def _root_args(s3: S3, mount: Path) -> list[str]:
    return [
        "--storage.limits.maxDownloadMBs=0",
        "--logger.level=4",
        "--storage.enable-multicontainer",
        f"--storage.container={s3.bucket}",
        "--storage.type=stow",
        "--config",
        f"{mount}/*.yaml",
    ]


def test_both_steps_with_the_plugins_exact_arguments_and_a_projected_secret(
    s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import copilot.storage.config

    mount = _projected_secret(s3, tmp_path)
    root = _root_args(s3, mount)
    assert not any(SECRET_KEY in a or ACCESS_KEY in a for a in root)
    s3.put("data/in.txt", b"file input")
    inputs = lits.literal_map({"n": lits.integer(5), "f": lits.blob(s3.uri("data/in.txt"))})
    inputs_uri = s3.put("run/inputs.pb", inputs.SerializeToString())
    in_iface = typed_interface({}, {"n": lits.simple(T.INTEGER), "f": lits.blob_type()})

    opened: list[str] = []
    real_open = open

    def counting_open(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(copilot.storage.config, "open", counting_open, raising=False)
    res = run_copilot(
        [
            *root,
            "download",
            "--from-remote",
            inputs_uri,
            "--to-output-prefix",
            s3.uri("run/"),
            "--to-local-dir",
            str(tmp_path / "inputs"),
            "--format",
            "JSON",
            "--file-input-layout",
            "DIRECT",
            "--input-interface",
            lits.b64(in_iface.inputs),
        ],
        env={**clean_env(), "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "inputs" / "n").read_text() == "5"
    assert (tmp_path / "inputs" / "f").read_bytes() == b"file input"
    assert opened.count(str(mount / "secret-key")) == 1, opened  # read once, trimmed

    # The sidecar, with the plugin's arguments and no watcher flag: the default
    # waits for the SIGTERM the kubelet sends a native sidecar when main exits.
    out = tmp_path / "outputs"
    out.mkdir()
    (out / "total").write_text("42\n")
    (out / "report").write_bytes(b"a report")
    iface = typed_interface({"total": lits.simple(T.INTEGER), "report": lits.blob_type()})
    proc = subprocess.Popen(
        [
            copilot_exe(),
            *root,
            "sidecar",
            "--timeout",
            "1h0m0s",
            "--to-raw-output",
            s3.uri("raw/"),
            "--to-output-prefix",
            s3.uri("run/"),
            "--from-local-dir",
            str(out),
            "--interface",
            lits.b64(iface),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    assert proc.stderr is not None
    early = []
    for line in proc.stderr:
        early.append(line)
        if "waiting for SIGTERM" in line:
            break
    else:
        raise AssertionError("".join(early))
    proc.send_signal(signal.SIGTERM)
    rest, err = proc.communicate(timeout=60)
    record(rest, "".join(early) + err)
    assert proc.returncode == 0, "".join(early) + err
    lm = lits.L.LiteralMap()
    lm.ParseFromString(s3.get("run/outputs.pb"))
    assert lm.literals["total"].scalar.primitive.integer == 42
    assert s3.get(lm.literals["report"].scalar.blob.uri.removeprefix(s3.uri(""))) == b"a report"
    assert not s3.exists("run/error.pb")
    assert os.stat(mount / "storage.yaml").st_mode & 0o777 == 0o444


def test_storage_schemes_one_deployment_reads_several_stores(
    s3: S3, azure_server, tmp_path: Path
) -> None:
    """flytestdlib's multi-scheme store (flyte #7555): the primary scheme (S3, from
    the stow kind) uses the top-level config; abfs:// uses its `schemes` entry
    (Azurite).  An input on S3, outputs on Azure."""
    from stores import AzureContainer

    container = AzureContainer(azure_server)
    cfg = tmp_path / "storage.yaml"
    cfg.write_text(
        "storage:\n"
        "  type: stow\n"
        "  stow:\n"
        "    kind: s3\n"
        "    config:\n"
        f"      access_key_id: {ACCESS_KEY}\n"
        f"      secret_key: {SECRET_KEY}\n"
        f"      endpoint: {s3.endpoint}\n"
        f"      region: {REGION}\n"
        "      disable_ssl: true\n"
        "  schemes:\n"
        "    abfs:\n"
        "      kind: azure\n"
        "      config:\n"
        f"        account: {azure_server.account}\n"
        f"        key: {azure_server.key}\n"
        f"        endpoint: {azure_server.blob_endpoint}\n"
    )
    s3.put("data/in.txt", b"from s3")
    inputs = lits.literal_map({"f": lits.blob(s3.uri("data/in.txt"))})
    inputs_uri = s3.put("run/inputs.pb", inputs.SerializeToString())
    env = clean_env()
    for k in [k for k in env if k.startswith(("AWS_", "AZURE_"))]:
        del env[k]
    res = run_copilot(
        ["--config", str(cfg), "download", "-f", inputs_uri, "-o", str(tmp_path / "in")], env=env
    )
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out"
    out.mkdir()
    (out / "copy").write_bytes((tmp_path / "in" / "f").read_bytes() + b", then azure")
    iface = typed_interface({"copy": lits.blob_type()})
    res = run_copilot(
        [
            "--config",
            str(cfg),
            "sidecar",
            "-o",
            container.uri("run/"),
            "-x",
            container.uri("raw/"),
            "-f",
            str(out),
            "-i",
            lits.b64(iface),
            "--exit-watcher-type",
            "noop",
        ],
        env=env,
    )
    assert res.returncode == 0, res.stderr
    lm = lits.L.LiteralMap()
    lm.ParseFromString(container.get("run/outputs.pb"))
    assert lm.literals["copy"].scalar.blob.uri == container.uri("raw/copy")
    assert container.get("raw/copy") == b"from s3, then azure"


def test_a_schemes_entry_is_checked_like_the_stow_section(tmp_path: Path) -> None:
    cfg = tmp_path / "storage.yaml"
    cfg.write_text(
        "storage:\n  type: s3\n  schemes:\n    gcs:\n      kind: google\n"
        "      config:\n        acount: x\n"
    )
    res = run_copilot(["--config", str(cfg), "download", "-f", "s3://b/i.pb", "-o", str(tmp_path)])
    assert res.returncode == 2
    assert "storage.schemes.gcs.config: unknown key 'acount'" in res.stderr, res.stderr
