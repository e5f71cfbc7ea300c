"""S7: S1 for GCS (fake-gcs-server) and Azure Blob (Azurite), against each backend's
own get_file / put_file.
"""

from __future__ import annotations

import os
import shutil

import lits

from benchmarks.files import clear, random_file
from benchmarks.harness import Bench, sidecar_argv
from benchmarks.measure import COPILOT, PY, Sample, measure, side_by_side


def s7_cloud_large_file(b: Bench, size_mb: int) -> None:
    """S1 for GCS (fake-gcs-server) and Azure Blob (Azurite), each against its backend's
    own get_file / put_file, in the same run on the same server."""
    import uuid

    from emulators import azurite, fake_gcs_server
    from sidecar_helpers import typed_interface

    src = b.work / "s7.bin"
    random_file(src, size_mb)
    with fake_gcs_server() as gcs, azurite() as azure:
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        gcs.create_bucket(bucket)
        azure.create_container(bucket)
        stores = {
            "GCS": (
                "gs",
                ["--storage.stow.kind=google", f"--storage.stow.config=endpoint={gcs.endpoint}"],
                # gcsfs's plain class, as copilot takes it (its default since 2026 looks
                # up each bucket's type over gRPC first: a minute per call here).
                f"import gcsfs.core\nfs = gcsfs.core.GCSFileSystem(endpoint_url={gcs.endpoint!r}, "
                "token='anon')\n",
                "gcsfs",
            ),
            "Azure": (
                "abfs",
                [
                    "--storage.stow.kind=azure",
                    "--storage.stow.config",
                    f"connection_string={azure.connection_string}",
                ],
                "import adlfs\nfs = adlfs.AzureBlobFileSystem("
                f"connection_string={azure.connection_string!r})\n",
                "adlfs",
            ),
        }
        for label, (proto, flags, prelude, lib) in stores.items():
            key = f"{bucket}/s7/large.bin"
            measure([PY, "-c", prelude + f"fs.put_file({str(src)!r}, {key!r})"])
            body = lits.literal_map({"big": lits.blob(f"{proto}://{key}")}).SerializeToString()
            (b.work / "s7-inputs.pb").write_bytes(body)
            measure(
                [
                    PY,
                    "-c",
                    prelude + f"fs.put_file({str(b.work / 's7-inputs.pb')!r}, "
                    f"'{bucket}/s7/inputs.pb')",
                ]
            )

            def down(proto=proto, flags=flags) -> Sample:
                return measure(
                    [
                        COPILOT,
                        *flags,
                        "download",
                        "-f",
                        f"{proto}://{bucket}/s7/inputs.pb",
                        "-o",
                        str(b.fresh("s7-in")),
                        "-m",
                        "PROTO",
                    ]
                )

            def base_down(prelude: str = prelude, key: str = key) -> Sample:
                get = f"fs.get_file({key!r}, {str(b.fresh('s7-base'))!r})"
                return measure([PY, "-c", prelude + get])

            mine, base = side_by_side(down, base_down, b.runs)
            what = f"{label}: download File {size_mb} MiB"
            b.row("S7", what, mine, base, f"{lib} get_file", "<=1.10, <=150 MB")
            out = b.work / "s7-out"
            out.mkdir(exist_ok=True)
            if not (out / "big").exists():
                os.link(src, out / "big")
            iface = lits.b64(typed_interface({"big": lits.blob_type()}))

            def up(proto=proto, flags=flags, out=out, iface=iface) -> Sample:
                return measure(
                    sidecar_argv(
                        flags,
                        f"{proto}://{bucket}/s7/up/",
                        f"{proto}://{bucket}/s7/raw",
                        out,
                        iface,
                    )
                )

            def base_up(prelude: str = prelude) -> Sample:
                put = f"fs.put_file({str(src)!r}, '{bucket}/s7/base.bin')"
                return measure([PY, "-c", prelude + put])

            mine, base = side_by_side(up, base_up, b.runs)
            what = f"{label}: sidecar File {size_mb} MiB"
            b.row("S7", what, mine, base, f"{lib} put_file", "<=1.10, <=150 MB")
            clear(b.work, "s7-in-*", "s7-base-*")
    shutil.rmtree(b.work / "s7-out", ignore_errors=True)
    src.unlink()
