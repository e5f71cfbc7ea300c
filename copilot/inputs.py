"""Inputs: a remote ``LiteralMap`` -> files in the input dir, plus ``inputs.pb`` and friends.

The steps are kept apart so each can fail with its own clear message:

1. read and parse the inputs document;
2. inline offloaded literals, wherever they are in the tree;
3. check the inputs against the declared interface, when one is given;
4. lay the values out as files (small ones written at once, blobs planned);
5. copy the blobs concurrently, each to a temporary name renamed when complete;
6. write the metadata files last.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from flyteidl2.core import interface_pb2, literals_pb2

from copilot.errors import DataError, UsageError
from copilot.literals.to_files import InputWriter
from copilot.literals.types import mismatch, type_name
from copilot.literals.walk import walk
from copilot.modes import DownloadMode
from copilot.options import DownloadOptions
from copilot.protobuf import parse_message
from copilot.sources import InputSources
from copilot.storage import Store, discard, display_uri, publish
from copilot.validation import Validation

log = logging.getLogger("copilot")

#: What download writes beside the inputs themselves.
METADATA_FILES = ("inputs.pb", "inputs.json", "inputs.yaml")


#: How deep offloaded literals may point at further offloaded literals.
MAX_OFFLOAD_DEPTH = 16


@dataclass
class DownloadResult:
    """What was written, for callers and the run summary."""

    local_dir: str
    literals: literals_pb2.LiteralMap
    values: dict[str, Any]
    files: int
    bytes: int
    seconds: float


def inline_offloaded(
    store: Store, lit: literals_pb2.Literal, label: str, sources: InputSources | None = None
) -> None:
    """Replace, in place, every offloaded literal under ``lit`` by the literal it points to.

    Offloaded literals may hold more of them; past ``MAX_OFFLOAD_DEPTH`` levels
    (counted along each path from the top) the data is refused, so a cycle of
    documents cannot keep the download going forever.  With ``sources``, a URI
    outside the stores it allows is refused before anything is read.
    """

    def visit(node: literals_pb2.Literal, node_label: str, depth: int) -> int:
        while node.WhichOneof("value") == "offloaded_metadata":
            if depth >= MAX_OFFLOAD_DEPTH:
                raise DataError(
                    f"{node_label}: offloaded literals nest deeper than {MAX_OFFLOAD_DEPTH} levels"
                )
            uri = node.offloaded_metadata.uri
            if not uri:
                raise DataError(f"{node_label}: offloaded literal has an empty URI")
            if sources is not None:
                sources.check(uri, node_label)
            raw = store.read_bytes(uri, what=f"{node_label}: read offloaded literal")
            node.CopyFrom(
                parse_message(
                    literals_pb2.Literal, raw, f"{node_label}: offloaded literal {display_uri(uri)}"
                )
            )
            depth += 1
        return depth

    walk(lit, label, visit, 0)


def interface_problems(
    inputs: literals_pb2.LiteralMap, interface: interface_pb2.VariableMap
) -> list[str]:
    """Every way ``inputs`` does not fit the declared inputs (missing or mistyped)."""
    declared = {entry.key: entry.value for entry in interface.variables}
    problems = []
    for name in sorted(declared):
        if name not in inputs.literals:
            problems.append(
                f"input {name!r}: declared in the interface as "
                f"{type_name(declared[name].type)} but missing from the inputs document"
            )
            continue
        reason = mismatch(inputs.literals[name], declared[name].type, f"input {name!r}")
        if reason:
            problems.append(reason)
    return problems


def validate_inputs(store: Store, uri: str, interface: interface_pb2.VariableMap) -> Validation:
    """An inputs document read and checked against the declared inputs, every
    problem collected (``copilot validate --inputs``); nothing is downloaded."""
    data = store.read_bytes(uri, what="read inputs")
    inputs = parse_message(literals_pb2.LiteralMap, data, f"inputs {uri}")
    return Validation(inputs, interface_problems(inputs, interface))


def check_against_interface(
    inputs: literals_pb2.LiteralMap, interface: interface_pb2.VariableMap
) -> None:
    """Every declared input is present and of its declared type."""
    problems = interface_problems(inputs, interface)
    if problems:
        raise DataError(problems[0])
    declared = {entry.key for entry in interface.variables}
    for name in sorted(set(inputs.literals) - declared):
        log.warning("input %r is not declared in the interface; laid out anyway", name)


#: inputs.json's encoding: compact, keys sorted, text as it is.
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
#: Elements encoded at once by :func:`json_pieces`.
JSON_SLICE = 2000


def _more_than(values: Iterable[Any], limit: int) -> bool:
    """Whether ``values`` hold more than ``limit`` elements, counting nested ones."""
    stack = list(values)
    count = 0
    while stack:
        value = stack.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def _slices(value: dict[Any, Any] | list[Any]) -> Iterator[Any]:
    """``value`` ``JSON_SLICE`` elements at a time: sub-lists, or sub-maps in key order."""
    keys = sorted(value) if isinstance(value, dict) else None
    for start in range(0, len(value), JSON_SLICE):
        if keys is None:
            yield value[start : start + JSON_SLICE]
        else:
            yield {k: value[k] for k in keys[start : start + JSON_SLICE]}


def json_pieces(value: Any) -> Iterator[str]:
    """``value`` as ``inputs.json`` text (what ``_JSON.encode`` gives), in pieces.

    Each piece comes from at most ``JSON_SLICE`` elements, nested ones counted:
    encoded in one go, a 100,000-key map held enough small strings at once to
    take the download past the memory Flyte gives it (docs/BENCHMARKS.md,
    "Tuning measurements").  A slice that
    holds more goes element by element.
    """
    if not isinstance(value, (dict, list)):
        yield _JSON.encode(value)
        return
    is_map = isinstance(value, dict)
    yield "{" if is_map else "["
    for n, part in enumerate(_slices(value)):
        if n:
            yield ","
        if not _more_than(part.values() if is_map else part, JSON_SLICE):
            yield _JSON.encode(part)[1:-1]
            continue
        members = (
            ((_JSON.encode(k) + ":", item) for k, item in part.items())
            if is_map
            else (("", item) for item in part)
        )
        for i, (prefix, item) in enumerate(members):
            yield ("," if i else "") + prefix
            yield from json_pieces(item)
    yield "}" if is_map else "]"


def render_values(values: dict[str, Any], fmt: str) -> Iterator[bytes]:
    """``inputs.json`` / ``inputs.yaml`` content: one object, variable -> value."""
    pieces = json_pieces(values) if fmt == "JSON" else yaml_pieces(values)
    return (piece.encode("utf-8") for piece in pieces)


def yaml_pieces(values: dict[str, Any]) -> Iterator[str]:
    """``inputs.yaml`` in pieces: a variable holding more than ``JSON_SLICE``
    elements is dumped a slice at a time under its key (PyYAML builds a node
    per element: whole, a 100,000-key map took the download past Flyte's memory;
    docs/BENCHMARKS.md, "Tuning measurements")."""
    import yaml

    def dump(value: Any) -> str:
        return yaml.safe_dump(value, sort_keys=True, allow_unicode=True)

    if not values:
        yield dump(values)
    for name in sorted(values):
        value = values[name]
        small = not isinstance(value, (dict, list)) or len(value) <= JSON_SLICE
        head = "" if small else dump({name: None})  # "name: null": the key as PyYAML writes it
        if small or not head.endswith(": null\n") or "\n" in head[:-1]:
            yield dump({name: value})
            continue
        yield head.removesuffix(" null\n") + "\n"
        for part in _slices(value):
            yield "".join("  " + line for line in dump(part).splitlines(keepends=True))


def download_inputs(store: Store, opts: DownloadOptions) -> DownloadResult:
    """Fetch the inputs named by ``opts`` into ``opts.to_local_dir``.

    Raises :class:`~copilot.errors.CopilotError` with a one-line message on
    any expected failure; nothing is written outside the input directory.
    """
    opts.validate()
    started = time.monotonic()
    root = os.path.abspath(opts.to_local_dir)
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"--to-local-dir {opts.to_local_dir}: cannot create the directory ({exc.strerror})"
        ) from None
    already = set(os.listdir(root))
    raw = store.read_bytes(opts.from_remote, what="read inputs")
    inputs = parse_message(literals_pb2.LiteralMap, raw, f"inputs {display_uri(opts.from_remote)}")
    del raw  # not needed again while the tree is laid out (large for a big map)
    sources = InputSources.for_download(
        store.config, opts.from_remote, allow_local=opts.allow_local_inputs
    )
    for name in sorted(inputs.literals):
        inline_offloaded(store, inputs.literals[name], f"input {name!r}", sources)
    if opts.interface is not None:
        check_against_interface(inputs, opts.interface)

    strangers = sorted(already - set(inputs.literals) - set(METADATA_FILES))
    if strangers:
        # Not fatal (a re-run lands here), but never silently mixed in.
        shown = ", ".join(strangers[:5]) + (", ..." if len(strangers) > 5 else "")
        log.warning(
            "input dir %s: %d entr%s already there, not among the inputs: %s",
            root, len(strangers), "y" if len(strangers) == 1 else "ies", shown,
        )  # fmt: skip
    layout = InputWriter(
        store,
        root,
        layout=opts.layout,
        fetch=opts.mode != DownloadMode.DO_NOT_DOWNLOAD,
        verify=opts.verify_inputs,
        sources=sources,
    )
    try:
        laid = layout.lay_out(inputs)
        stats: dict[str, int] = {}
        copied = store.download(laid.transfers, stats)
        layout.check_dirs()
        for staged, final in laid.stages:
            publish(staged, final)
    except BaseException:
        for staged, _ in layout.stages:
            discard(staged)
        raise

    store.write_bytes(
        os.path.join(root, "inputs.pb"), laid.literals.SerializeToString(deterministic=True)
    )
    if opts.format in ("JSON", "YAML"):
        name = "inputs.json" if opts.format == "JSON" else "inputs.yaml"
        store.write_bytes(os.path.join(root, name), render_values(laid.values, opts.format))
    seconds = time.monotonic() - started
    log.info(
        "downloaded %d inputs (%d files, %d bytes) to %s in %.3fs",
        len(laid.values),
        stats["files"],
        copied,
        root,
        seconds,
        extra={"fields": {"files": stats["files"], "bytes": copied, "seconds": seconds}},
    )
    return DownloadResult(root, laid.literals, laid.values, stats["files"], copied, seconds)
