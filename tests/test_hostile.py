"""A main container that plays the attacker, on every store kind (README "Security").

The container writes whatever it likes into its output dir; the sidecar holds
what it must never see (here a secret file beside the output dir, standing in
for the storage Secret at /etc/flyte/copilot/ or /proc/self/environ).  Every
route that could name a file outside the output dir is tried: declared names,
whole-outputs documents in all three formats, list elements, Dir walks,
``file://`` URIs, symlinks, and a swap made after the sidecar checked the
tree.  Each must end as a USER error naming the output, with no object
holding the secret anywhere in the store, nothing of the output left under
the raw prefix, and no ``outputs.pb``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import lits
import pytest
from flyteidl2.core import literals_pb2
from hostile import TARGETS, make_target
from sidecar_helpers import typed_interface

from copilot.errors import USER, DataError
from copilot.literals.output_dir import OutputDir
from copilot.outputs import UploadOptions, upload_outputs
from copilot.steps import StepFailed, sidecar

T = lits.T
FILE, DIR, STR = lits.blob_type(), lits.blob_type(multipart=True), lits.simple(T.STRING)


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest, tmp_path: Path):
    return make_target(request.param, request, tmp_path)


class Pod:
    """An output dir the attacker fills, and a secret it must not get out."""

    def __init__(self, tmp_path: Path) -> None:
        self.out = tmp_path / "outputs"
        self.out.mkdir()
        self.secret_dir = tmp_path / "etc-flyte-copilot"
        self.secret_dir.mkdir()
        self.secret = f"aws_secret_access_key: HOSTILE-{uuid.uuid4().hex}\n".encode()
        self.secret_file = self.secret_dir / "storage.yaml"
        self.secret_file.write_bytes(self.secret)

    def dir_of(self, count: int, size: int) -> list[Path]:
        """A Dir output ``d`` of ``count`` plain files of ``size`` bytes each."""
        d = self.out / "d"
        d.mkdir()
        files = [d / f"{i:04d}.bin" for i in range(count)]
        for path in files:
            path.write_bytes(b"x" * size)
        return files


# -- the routes: each fills the output dir and returns the declared outputs ---------


def _pb(pod: Pod, literals: dict[str, literals_pb2.Literal]) -> None:
    (pod.out / "outputs.pb").write_bytes(lits.literal_map(literals).SerializeToString())


def outputs_pb_file_uri(pod: Pod) -> dict:
    _pb(pod, {"f": lits.blob(f"file://{pod.secret_file}")})
    return {"f": FILE}


def outputs_pb_bare_path(pod: Pod) -> dict:
    _pb(pod, {"f": lits.blob(str(pod.secret_file))})
    return {"f": FILE}


def outputs_pb_relative_climb(pod: Pod) -> dict:
    _pb(pod, {"f": lits.blob(f"../{pod.secret_dir.name}/storage.yaml")})
    return {"f": FILE}


def outputs_pb_list_element(pod: Pod) -> dict:
    (pod.out / "ok.txt").write_text("fine")
    elements = lits.collection(lits.blob("ok.txt"), lits.blob(f"file://{pod.secret_file}"))
    _pb(pod, {"fs": elements})
    return {"fs": lits.list_of(FILE)}


def outputs_pb_dir_outside(pod: Pod) -> dict:
    _pb(pod, {"d": lits.blob(str(pod.secret_dir), multipart=True)})
    return {"d": DIR}


def outputs_json_through_a_linked_dir(pod: Pod) -> dict:
    os.symlink(pod.secret_dir, pod.out / "link")
    (pod.out / "outputs.json").write_text(json.dumps({"f": "link/storage.yaml"}))
    return {"f": FILE}


def outputs_yaml_absolute(pod: Pod) -> dict:
    (pod.out / "outputs.yaml").write_text(f"f: {pod.secret_file}\n")
    return {"f": FILE}


def outputs_json_file_uri_in_a_list(pod: Pod) -> dict:
    (pod.out / "outputs.json").write_text(json.dumps({"fs": [f"file://{pod.secret_file}"]}))
    return {"fs": lits.list_of(FILE)}


def link_at(rel: str, to: str, outputs: dict, *plain: str) -> Callable[[Pod], dict]:
    """An attack that puts a link to the secret file (``to="file"``) or directory at
    ``rel`` in the output dir, beside the ``plain`` files it writes."""

    def attack(pod: Pod) -> dict:
        for name in (*plain, rel):
            (pod.out / name).parent.mkdir(parents=True, exist_ok=True)
        for name in plain:
            (pod.out / name).write_text("fine")
        os.symlink(pod.secret_dir if to == "dir" else pod.secret_file, pod.out / rel)
        return outputs

    return attack


ROUTES: dict[str, tuple[Callable[[Pod], dict], str]] = {
    # route -> (the attack, the output the error must name)
    "outputs.pb File file://": (outputs_pb_file_uri, "output 'f'"),
    "outputs.pb File bare path": (outputs_pb_bare_path, "output 'f'"),
    "outputs.pb File ../": (outputs_pb_relative_climb, "output 'f'"),
    "outputs.pb list[File] element": (outputs_pb_list_element, "output 'fs'[1]"),
    "outputs.pb Dir outside": (outputs_pb_dir_outside, "output 'd'"),
    "outputs.json via a linked dir": (outputs_json_through_a_linked_dir, "output 'f'"),
    "outputs.yaml absolute path": (outputs_yaml_absolute, "output 'f'"),
    "outputs.json list of file://": (outputs_json_file_uri_in_a_list, "output 'fs'"),
    "declared File is a link": (link_at("f", "file", {"f": FILE}), "output 'f'"),
    "declared str is a link": (link_at("s", "file", {"s": STR}), "output 's'"),
    "list element is a link": (
        link_at("xs/1", "file", {"xs": lits.list_of(STR)}, "xs/0"),
        "output 'xs'[1]",
    ),
    "Dir holds a link": (link_at("d/b.txt", "file", {"d": DIR}, "d/a.txt"), "output 'd'"),
    "Dir holds a linked dir": (link_at("d/etc", "dir", {"d": DIR}, "d/a.txt"), "output 'd'"),
    "the Dir is a link": (link_at("d", "dir", {"d": DIR}), "output 'd'"),
    "_ERROR is a link": (link_at("_ERROR", "file", {"s": STR}), "the error file"),
    "outputs.json is a link": (link_at("outputs.json", "file", {"s": STR}), "outputs document"),
}


def _options(target, pod: Pod, outputs: dict, fmt: str = "JSON") -> UploadOptions:
    """The sidecar's options for the pod's output dir, into ``target``."""
    return UploadOptions(
        from_local_dir=str(pod.out),
        to_output_prefix=target.uri("meta/"),
        to_raw_output=target.uri("raw/"),
        interface=typed_interface(outputs),
        format=fmt,  # type: ignore[arg-type]
    )


def _run(target, pod: Pod, outputs: dict, fmt: str = "JSON") -> StepFailed:
    with target.store() as store, pytest.raises(StepFailed) as info:
        sidecar(store, _options(target, pod, outputs, fmt))
    return info.value


def _nothing_got_out(target, pod: Pod) -> None:
    stored = target.everything()
    holding = [key for key, data in stored.items() if pod.secret in data]
    assert not holding, f"the secret was uploaded to {holding}"
    assert target.keys("raw/") == []
    assert "meta/outputs.pb" not in target.keys("meta/")


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_no_route_gets_a_file_from_outside_the_output_dir(target, tmp_path, route) -> None:
    attack, names = ROUTES[route]
    pod = Pod(tmp_path)
    outputs = attack(pod)
    fmt = "PROTO" if "outputs.pb" in route else "YAML" if "yaml" in route else "JSON"
    failed = _run(target, pod, outputs, fmt)
    assert failed.origin == USER, failed.message
    assert names in failed.message and "refused" in failed.message, failed.message
    assert pod.secret.decode().strip() not in failed.message
    doc = lits.read_error_document(target.get("meta/error.pb"))
    assert doc.origin == lits.execution_pb2.ExecutionError.USER
    assert doc.kind == lits.execution_pb2.ContainerError.NON_RECOVERABLE
    _nothing_got_out(target, pod)


# -- the race: checked, then swapped, then uploaded ------------------------------


def _swap_for_links(paths: list[Path], secret: Path) -> None:
    for path in paths:
        path.unlink()
        os.symlink(secret, path)


@pytest.mark.parametrize("same_size", [True, False], ids=["same-size", "other-size"])
def test_files_swapped_for_links_after_the_check_are_never_read(
    target, tmp_path, same_size: bool
) -> None:
    """The tree is walked and checked, then a third of its files become links to
    the secret (what a container still running, or a shared-process-ns pod, can
    do), then the upload runs: each file is opened beneath the output dir without
    following links, so the swap is refused and nothing of the Dir stays."""
    pod = Pod(tmp_path)
    files = pod.dir_of(30, len(pod.secret) if same_size else 10)
    opts = _options(target, pod, {"d": DIR})
    reader = OutputDir(str(pod.out), opts.to_raw_output)
    reader.outputs(opts.declared(), "JSON")  # the check, as upload_outputs makes it

    import copilot.outputs as outputs_module

    class SwappingReader(OutputDir):
        def outputs(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            found = super().outputs(*args, **kwargs)
            _swap_for_links(files[10:20], pod.secret_file)  # after the walk
            return found

    with target.store() as store:
        original = outputs_module.OutputDir
        outputs_module.OutputDir = SwappingReader  # type: ignore[misc]
        try:
            with pytest.raises(DataError) as info:
                upload_outputs(store, opts)
        finally:
            outputs_module.OutputDir = original  # type: ignore[misc]
    assert info.value.origin == USER
    assert "output 'd'" in info.value.message and "refused" in info.value.message
    _nothing_got_out(target, pod)


SWAPPER = """
import os, sys, time
secret, size, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print("swapping", flush=True)
while True:
    for path in paths:
        link, plain = path + ".l", path + ".p"
        try:
            os.symlink(secret, link)
            os.rename(link, path)  # the file is now a link to the secret
            with open(plain, "wb") as fh:
                fh.write(b"x" * size)
            os.rename(plain, path)  # and a plain file again
        except OSError:
            pass
"""


@pytest.mark.slow
@pytest.mark.parametrize("same_size", [True, False], ids=["same-size", "other-size"])
def test_a_racing_swapper_never_gets_the_secret_out(target, tmp_path, same_size: bool) -> None:
    """A process of the container's keeps swapping a third of a Dir's files between
    plain files and links to the secret while the sidecar checks and uploads the
    Dir.  Whatever the timing, no object ever holds the secret: the run succeeds
    with plain data, or is refused with nothing of the Dir left."""
    import subprocess
    import sys

    pod = Pod(tmp_path)
    size = len(pod.secret) if same_size else 7
    files = [str(path) for path in pod.dir_of(600, size)]
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(pod.secret_file), str(size), *files[::3]],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert swapper.stdout is not None and swapper.stdout.readline() == "swapping\n"
        opts = _options(target, pod, {"d": DIR})
        failure: StepFailed | None = None
        with target.store() as store:
            try:
                sidecar(store, opts)
            except StepFailed as exc:
                failure = exc
    finally:
        swapper.kill()
        swapper.wait()
    stored = target.everything()
    assert not [k for k, data in stored.items() if pod.secret in data]
    if failure is not None:
        assert failure.origin == USER and "refused" in failure.message, failure.message
        assert target.keys("raw/") == []
        assert "meta/outputs.pb" not in target.keys("meta/")
    else:
        assert len(target.keys("raw/")) == 600


# -- the download: URIs an upstream task planted in the inputs --------------------


def _download(s3, tmp_path: Path, inputs: dict, *extra: str):
    """A Flyte-shaped download of ``inputs`` from S3; (exit status, error document
    or None, the input dir)."""
    from conftest import run_copilot

    uri = s3.put(
        f"run-{uuid.uuid4().hex[:6]}/inputs.pb", lits.literal_map(inputs).SerializeToString()
    )
    local = tmp_path / "inputs"
    res = run_copilot(
        [
            *s3.stow_flags(),
            "download",
            "--from-remote",
            uri,
            "--to-output-prefix",
            s3.uri("meta/"),
            "--to-local-dir",
            str(local),
            *extra,
        ]
    )
    doc = lits.read_error_document(s3.get("meta/error.pb")) if s3.exists("meta/error.pb") else None
    return res, doc, local


def _holds(directory: Path, secret: bytes) -> list[str]:
    return [str(p) for p in directory.rglob("*") if p.is_file() and secret in p.read_bytes()]


LOCAL_INPUTS = {
    "File file://": lambda pod: lits.blob(f"file://{pod.secret_file}"),
    "File bare path": lambda pod: lits.blob(str(pod.secret_file)),
    "Dir file://": lambda pod: lits.blob(f"file://{pod.secret_dir}/", multipart=True),
    "File in a list": lambda pod: lits.collection(lits.blob(f"file://{pod.secret_file}")),
    "structured dataset": lambda pod: lits.structured_dataset(f"file://{pod.secret_dir}"),
}


@pytest.mark.parametrize("route", sorted(LOCAL_INPUTS))
def test_an_input_cannot_name_a_local_file_when_the_store_is_remote(s3, tmp_path, route) -> None:
    pod = Pod(tmp_path)
    res, doc, local = _download(s3, tmp_path, {"x": LOCAL_INPUTS[route](pod)})
    assert res.returncode == 0 and doc is not None, res.stderr
    assert doc.code == "InputDownloadFailed"
    assert doc.kind == lits.execution_pb2.ContainerError.NON_RECOVERABLE
    assert "input 'x'" in doc.message and "is a local file" in doc.message, doc.message
    assert "--allow-local-inputs" in doc.message
    assert not local.exists() or not _holds(local, pod.secret)


def test_an_offloaded_literal_cannot_name_a_local_file(s3, tmp_path) -> None:
    pod = Pod(tmp_path)
    planted = tmp_path / "literal.pb"
    planted.write_bytes(lits.string(pod.secret.decode()).SerializeToString())
    res, doc, local = _download(s3, tmp_path, {"x": lits.offloaded(f"file://{planted}")})
    assert doc is not None and "input 'x'" in doc.message and "is a local file" in doc.message
    assert not local.exists() or not _holds(local, pod.secret)


def test_allow_local_inputs_reads_them(s3, tmp_path) -> None:
    pod = Pod(tmp_path)
    res, doc, local = _download(
        s3, tmp_path, {"x": lits.blob(f"file://{pod.secret_file}")}, "--allow-local-inputs"
    )
    assert res.returncode == 0 and doc is None, res.stderr
    assert (local / "x").read_bytes() == pod.secret


def test_a_scheme_the_configuration_does_not_serve_is_refused(s3, tmp_path) -> None:
    res, doc, _ = _download(s3, tmp_path, {"x": lits.blob("gs://elsewhere/secret.txt")})
    assert doc is not None, res.stderr
    assert "input 'x'" in doc.message and "gs:// is not a store this configuration serves" in (
        doc.message
    )
    assert "storage.schemes" in doc.message


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "https://[::ffff:169.254.169.254]/",
    ],
)
def test_an_input_is_never_read_from_a_metadata_address(s3, tmp_path, url) -> None:
    res, doc, _ = _download(s3, tmp_path, {"x": lits.blob(url)})
    assert doc is not None, res.stderr
    assert "input 'x'" in doc.message and "metadata address" in doc.message, doc.message


def test_a_redirect_to_a_metadata_address_is_not_followed(s3, tmp_path) -> None:
    from httpserve import FileServer

    target = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    with FileServer({}, redirects={"/data.csv": target}) as http:
        res, doc, local = _download(s3, tmp_path, {"x": lits.blob(http.url + "/data.csv")})
    assert doc is not None, res.stderr
    assert "input 'x'" in doc.message and "169.254.169.254" in doc.message
    assert "metadata address" in doc.message
    assert http.requests == ["/data.csv"]


def test_a_name_that_resolves_to_a_metadata_address_is_not_connected_to(
    s3, tmp_path, monkeypatch
) -> None:
    """The http client's own resolver drops link-local answers, at connect time."""
    import socket

    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == "innocent.example":
            return real("169.254.169.254", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    res, doc, _ = _download(s3, tmp_path, {"x": lits.blob("http://innocent.example/x.csv")})
    assert doc is not None, res.stderr
    assert "innocent.example" in doc.message and "metadata address" in doc.message, doc.message


# -- limits for code nobody reviewed ------------------------------------------------


def _limited(s3, pod: Pod, outputs: dict, *flags: str, config: Path | None = None):
    from conftest import run_copilot
    from sidecar_helpers import noop_sidecar_args

    root = ["--config", str(config)] if config is not None else []
    res = run_copilot(
        [*root, *noop_sidecar_args(s3, pod.out, "-i", lits.b64(typed_interface(outputs)), *flags)]
    )
    assert res.returncode == 0, res.stderr
    return lits.read_error_document(s3.get("meta/error.pb")) if s3.exists("meta/error.pb") else None


def _assert_limit(doc, *fragments: str) -> None:
    assert doc is not None
    assert doc.origin == lits.execution_pb2.ExecutionError.USER
    assert doc.kind == lits.execution_pb2.ContainerError.NON_RECOVERABLE
    for fragment in fragments:
        assert fragment in doc.message, doc.message
    assert "nothing uploaded" in doc.message


def test_more_files_than_the_limit_uploads_nothing(s3, tmp_path) -> None:
    pod = Pod(tmp_path)
    (pod.out / "d").mkdir()
    for i in range(11):
        (pod.out / "d" / f"{i}.txt").write_text("x")
    (pod.out / "f").write_text("y")
    doc = _limited(s3, pod, {"f": FILE, "d": DIR}, "--max-output-files", "10")
    _assert_limit(doc, "output 'd'", "more than 10 files", "--max-output-files 10")
    assert s3.keys("raw/") == [] and not s3.exists("meta/outputs.pb")


def test_a_sparse_terabyte_is_refused_by_its_size_without_being_read(s3, tmp_path) -> None:
    pod = Pod(tmp_path)
    with open(pod.out / "f", "wb") as fh:
        fh.truncate(1 << 40)
    doc = _limited(s3, pod, {"f": FILE}, "--max-output-bytes", "1GiB")
    _assert_limit(doc, "output 'f'", f"at least {1 << 40} bytes", "--max-output-bytes 1073741824")
    assert s3.keys("raw/") == []


def test_a_tree_deeper_than_the_limit_is_refused_before_its_depths_are_walked(s3, tmp_path) -> None:
    pod = Pod(tmp_path)
    deep = pod.out / "d" / "a" / "b" / "c" / "e"
    deep.mkdir(parents=True)
    (deep / "x.txt").write_text("deep")
    doc = _limited(s3, pod, {"d": DIR}, "--max-output-depth", "3")
    _assert_limit(doc, "output 'd'", "lies 4 levels below the output directory")
    assert "--max-output-depth 3" in doc.message
    assert s3.keys("raw/") == []


def test_limits_come_from_the_config_file_and_flags_win(s3, tmp_path) -> None:
    pod = Pod(tmp_path)
    (pod.out / "d").mkdir()
    for i in range(3):
        (pod.out / "d" / f"{i}.txt").write_text("x")
    config = tmp_path / "copilot.yaml"
    config.write_text("sidecar:\n  max-output-files: 2\n  max-output-bytes: 1KiB\n")
    doc = _limited(s3, pod, {"d": DIR}, config=config)
    _assert_limit(doc, "more than 2 files", "--max-output-files 2")
    s3.client.delete_object(Bucket=s3.bucket, Key="meta/error.pb")
    assert _limited(s3, pod, {"d": DIR}, "--max-output-files", "0", config=config) is None
    assert len(s3.keys("raw/d/")) == 3


def test_a_misspelt_limit_key_is_an_error_naming_the_right_one(s3, tmp_path) -> None:
    from conftest import run_copilot

    config = tmp_path / "copilot.yaml"
    config.write_text("sidecar:\n  max-output-file: 2\n")
    res = run_copilot(["--config", str(config), "sidecar", "--help"])
    assert res.returncode == 2
    assert "max-output-file" in res.stderr and "did you mean max-output-files" in res.stderr


def test_validate_reports_a_limit_as_the_sidecar_would(tmp_path) -> None:
    from conftest import run_copilot

    pod = Pod(tmp_path)
    (pod.out / "f").write_bytes(b"x" * 2048)
    res = run_copilot(
        [
            "validate",
            "-i",
            lits.b64(typed_interface({"f": FILE})),
            "--max-output-bytes",
            "1KiB",
            str(pod.out),
        ]
    )
    assert res.returncode == 1, res.stdout + res.stderr
    assert "--max-output-bytes 1024" in res.stdout + res.stderr


def test_the_eager_uploader_keeps_within_the_limits(s3, tmp_path) -> None:
    """UPLOAD_EAGER never sends what would pass a limit; at exit the outputs are
    refused, and what it did send early is removed."""
    import time

    from copilot.eager import EagerUploader
    from copilot.limits import OutputLimits

    pod = Pod(tmp_path)
    (pod.out / "small").write_bytes(b"s" * 100)
    (pod.out / "big").write_bytes(b"b" * 5000)
    old = time.time() - 60
    for name in ("small", "big"):
        os.utime(pod.out / name, (old, old))
    opts = UploadOptions(
        from_local_dir=str(pod.out),
        to_output_prefix=s3.uri("meta/"),
        to_raw_output=s3.uri("raw/"),
        interface=typed_interface({"small": FILE, "big": FILE}),
        mode="UPLOAD_EAGER",  # type: ignore[arg-type]
        limits=OutputLimits(max_bytes=1000),
    )
    with s3.store() as store:
        eager = EagerUploader(store, opts, poll=0.01, settle=1)
        eager.scan()
        eager.scan()
        assert s3.keys("raw/") == ["raw/small"]  # big would pass the limit: kept back
        with pytest.raises(DataError, match=r"--max-output-bytes 1000"):
            upload_outputs(store, opts, eager)
    assert s3.keys("raw/") == []
