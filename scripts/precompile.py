"""Compile what copilot imports, and only that, for a read-only install (the image).

Run by scripts/install-image with the install's own python:
    python scripts/precompile.py PREFIX

Every module under PREFIX that copilot's commands import gets its .pyc (checked
by hash never, the install being read-only): each copilot module, each store's
library as its client loads it, and a task run end to end on local files (the
converters' lazy imports).  Modules nothing imports keep their source only; the
libraries bring many (gRPC stubs, cloud APIs copilot does not call), and their
.pyc files would be about 10 MB of the image for no start-up time saved.
"""

from __future__ import annotations

import compileall
import contextlib
import importlib
import importlib.util
import io
import os
import pkgutil
import py_compile
import sys
import tempfile

TASK = """\
name: warm_up
input_data_dir: /var/inputs
output_data_dir: /var/outputs
inputs:
  n: int
  words: list[str]
  opts: dict[str, float]
  doc: File
  blob: Dir
outputs:
  total: int
  note: str
  copy: File
  tree: Dir
  flags: list[bool]
command:
  - /bin/sh
  - -c
  - |
    echo {{.inputs.n}} > /var/outputs/total
    echo hi > /var/outputs/note
    cp /var/inputs/doc /var/outputs/copy
    mkdir -p /var/outputs/tree /var/outputs/flags
    cp -r /var/inputs/blob/. /var/outputs/tree/
    echo true > /var/outputs/flags/0
"""


#: The fsspec engine's libraries for S3 and Azure (extras the default image leaves out).
FSSPEC_ENGINE = ("s3fs", "aiobotocore", "botocore", "adlfs", "azure")

#: Libraries of extras an image may leave out (copilot imports them lazily).
OPTIONAL = {"flyte", "flytekit", "gcsfs", "redis", "s3fs", "adlfs"}


def warm_up() -> None:
    """Import what copilot's commands import."""
    import copilot

    for info in pkgutil.walk_packages(copilot.__path__, "copilot."):
        if info.name.endswith("__main__"):  # runs the command line
            continue
        try:
            importlib.import_module(info.name)
        except ImportError as exc:  # only an extra this install leaves out
            if (exc.name or "").split(".")[0] not in OPTIONAL:
                raise
    # Each store's library, the way its client loads it (redis and gcsfs are extras).
    for name in ("obstore.store", "fsspec.implementations.http"):
        importlib.import_module(name)
    with contextlib.suppress(ImportError):
        importlib.import_module("redis.asyncio")
    with contextlib.suppress(ImportError):
        from copilot.storage import gcs

        gcs.fsspec_class()
    # A task run end to end on local files: stage, download, run, sidecar, outputs.
    from copilot.cli import main_group

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["COPILOT_HOME"] = tmp
        task = os.path.join(tmp, "task.yaml")
        with open(task, "w") as f:
            f.write(TASK)
        doc = os.path.join(tmp, "doc.txt")
        blob = os.path.join(tmp, "blob")
        os.makedirs(blob)
        for path in (doc, os.path.join(blob, "a.txt")):
            with open(path, "w") as f:
                f.write("x\n")
        args = ["run", task, "-q", "-o", "json", "-i", "n=3", "-i", "words=[a, b]"]
        args += ["-i", "opts={k: 1.5}", "-i", f"doc={doc}", "-i", f"blob={blob}"]
        with contextlib.redirect_stdout(io.StringIO()):
            code = main_group.main(args, prog_name="copilot", standalone_mode=False)
        if code:  # its error is on stderr already
            sys.exit(f"precompile: the warm-up run failed (exit status {code})")


UNCHECKED = py_compile.PycInvalidationMode.UNCHECKED_HASH


def main() -> None:
    prefix = os.path.realpath(sys.argv[1]) + os.sep

    def installed(path: str) -> bool:
        return os.path.realpath(path).startswith(prefix)

    sys.dont_write_bytecode = True
    warm_up()
    imported = [getattr(m, "__file__", None) or "" for m in list(sys.modules.values())]
    sources = [path for path in imported if path.endswith(".py") and installed(path)]
    if len(sources) < 100:  # the warm-up did not import the install (a wrong PREFIX)
        sys.exit(f"precompile: only {len(sources)} modules under {prefix} were imported")
    for path in sources:
        py_compile.compile(path, doraise=True, invalidation_mode=UNCHECKED)
    # The fsspec engine's S3 and Azure libraries, in an image built with those
    # extras (EXTRAS=s3 / azure), are compiled whole: what they import depends on
    # the request (botocore loads much of itself lazily).
    for name in FSSPEC_ENGINE:
        spec = importlib.util.find_spec(name)
        for where in (spec and spec.submodule_search_locations) or ():
            if installed(where):
                compileall.compile_dir(where, quiet=1, workers=0, invalidation_mode=UNCHECKED)
    print(f"precompile: {len(sources)} modules compiled")


if __name__ == "__main__":
    main()
