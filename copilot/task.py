"""A task file: the fields of the SDK's ContainerTask that copilot uses, and the
``-i name=value`` inputs given for it.  Read by ``copilot run`` and ``copilot pod``."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flyteidl2.core import interface_pb2, literals_pb2, types_pb2

from copilot.config_values import check_section_keys
from copilot.errors import UsageError
from copilot.interface import load_interface_file, variable_map
from copilot.literals.given import GivenValue, literals_from_values
from copilot.modes import FileLayout, MetadataFormat
from copilot.storage import Transfer
from copilot.yamlfile import load_yaml

log = logging.getLogger("copilot")


@dataclass
class TaskSpec:
    """The ContainerTask fields of a task file."""

    name: str
    command: list[str]
    interface: interface_pb2.TypedInterface
    arguments: list[str] = field(default_factory=list)
    defaults: dict[str, Any] = field(default_factory=dict)
    input_data_dir: str = "/var/inputs"
    output_data_dir: str = "/var/outputs"
    metadata_format: MetadataFormat = MetadataFormat.JSON
    file_input_layout: FileLayout = FileLayout.DIRECT
    image: str = ""
    env: dict[str, str] = field(default_factory=dict)
    base_dir: str = "."
    #: For a task loaded through an SDK: converts a given value (``-i`` text or a
    #: value from ``--inputs``) with the SDK's own type engine, or returns None to
    #: leave it to copilot's converters.
    convert: Callable[[str, Any], literals_pb2.Literal | None] | None = None
    #: For a task loaded through an SDK: its outputs' literals in the SDK's JSON
    #: view (``copilot run -o json``); None keeps copilot's own.
    view: Callable[[Mapping[str, literals_pb2.Literal]], dict[str, Any]] | None = None


#: The fields a task file takes (those of the SDK's ContainerTask that copilot uses).
TASK_FIELDS = (
    "name", "image", "command", "arguments", "inputs", "outputs", "input_data_dir",
    "output_data_dir", "metadata_format", "file_input_layout", "env",
)  # fmt: skip


def load_task(path: str) -> TaskSpec:
    """Read a task YAML file (the fields of the SDK's ContainerTask)."""
    doc = load_yaml(path, "task file")
    where = f"task file {path}"
    if not isinstance(doc, dict):
        raise UsageError(f"{where}: expected a mapping of task fields")
    check_section_keys(where, doc, TASK_FIELDS, noun="field")
    command = doc.get("command")
    if isinstance(command, str):
        command = [command]
    if not isinstance(command, list) or not command:
        raise UsageError(f"{where}: command must be a non-empty list of strings")
    arguments = doc.get("arguments") or []
    if not isinstance(arguments, list):
        raise UsageError(f"{where}: arguments must be a list of strings")
    for key, items in (("command", command), ("arguments", arguments)):
        for i, item in enumerate(items):
            if isinstance(item, bool) or item is None or isinstance(item, (list, dict)):
                # YAML reads true, no, ~ or [a] as something else than text.
                raise UsageError(
                    f"{where}: {key}[{i}]: expected a string, found {yaml_kind(item)} "
                    f'{item!r} (quote it: "{"" if item is None else str(item).lower()}")'
                )
    defaults: dict[str, Any] = {}
    inputs = variable_map(doc.get("inputs"), f"{where}: inputs", defaults)
    outputs = variable_map(doc.get("outputs"), f"{where}: outputs")
    fmt = MetadataFormat.parse(
        str(doc.get("metadata_format") or "JSON"), f"{where}: metadata_format"
    )
    layout = FileLayout.parse(
        str(doc.get("file_input_layout") or "DIRECT"), f"{where}: file_input_layout"
    )
    env = doc.get("env") or {}
    if not isinstance(env, dict):
        raise UsageError(f"{where}: env must be a mapping")
    return TaskSpec(
        name=str(doc.get("name") or os.path.splitext(os.path.basename(path))[0]),
        command=[str(c) for c in command],
        arguments=[str(a) for a in arguments],
        interface=interface_pb2.TypedInterface(inputs=inputs, outputs=outputs),
        defaults=defaults,
        input_data_dir=str(doc.get("input_data_dir") or "/var/inputs"),
        output_data_dir=str(doc.get("output_data_dir") or "/var/outputs"),
        metadata_format=fmt,
        file_input_layout=layout,
        image=str(doc.get("image") or ""),
        env={str(k): str(v) for k, v in env.items()},
        base_dir=os.path.dirname(os.path.abspath(path)),
    )


def load_any_task(reference: str) -> TaskSpec:
    """A task file, or a Flyte SDK task named ``PATH.py:TASK`` / ``MODULE:TASK``
    (loaded through the SDK, which is imported only for that form)."""
    from copilot.sdk import is_sdk_reference

    if is_sdk_reference(reference):
        from copilot.sdk import load_sdk_task

        loaded = load_sdk_task(reference)
        spec = spec_from_template(loaded.template, reference)
        spec.convert = loaded.convert
        spec.view = loaded.view
        return spec
    return load_task(reference)


def interface_of(reference: str) -> interface_pb2.TypedInterface:
    """The interface a file names: an interface or task file's, or a Flyte SDK
    task's (``PATH.py:TASK`` / ``MODULE:TASK``)."""
    from copilot.sdk import is_sdk_reference

    if is_sdk_reference(reference):
        return load_any_task(reference).interface
    return load_interface_file(reference)


def spec_from_template(template: Any, reference: str) -> TaskSpec:
    """A task spec from a raw-container ``TaskTemplate`` (what Flyte registers)."""
    from flyteidl2.core import tasks_pb2

    c = template.container
    if not (c.command or c.args):
        raise UsageError(f"{reference}: the task's container has no command")
    dc = c.data_config
    fmt = tasks_pb2.DataLoadingConfig.LiteralMapFormat.Name(dc.format)
    layout = tasks_pb2.DataLoadingConfig.FileInputLayout.Name(dc.file_input_layout)
    return TaskSpec(
        name=template.id.name,
        command=list(c.command) or list(c.args),
        arguments=list(c.args) if c.command else [],
        interface=template.interface,
        input_data_dir=dc.input_path or "/var/inputs",
        output_data_dir=dc.output_path or "/var/outputs",
        metadata_format=MetadataFormat.parse(fmt, "metadata_format"),
        file_input_layout=FileLayout.parse(layout, "file_input_layout"),
        image=c.image,
        env={kv.key: kv.value for kv in c.env},
        base_dir=os.getcwd(),
    )


def task_document(spec: TaskSpec) -> dict[str, Any]:
    """``spec`` as a task file's fields (what ``copilot task export`` prints)."""
    from copilot.interface import to_yaml_doc

    iface = to_yaml_doc(spec.interface)
    doc: dict[str, Any] = {"name": spec.name}
    if spec.image:
        doc["image"] = spec.image
    doc["command"] = list(spec.command)
    if spec.arguments:
        doc["arguments"] = list(spec.arguments)
    doc["inputs"] = {k: _with_default(v, spec.defaults, k) for k, v in iface["inputs"].items()}
    doc["outputs"] = iface["outputs"]
    doc["input_data_dir"] = spec.input_data_dir
    doc["output_data_dir"] = spec.output_data_dir
    doc["metadata_format"] = str(spec.metadata_format.value)
    doc["file_input_layout"] = str(spec.file_input_layout.value)
    if spec.env:
        doc["env"] = dict(spec.env)
    return doc


def _with_default(type_spec: Any, defaults: dict[str, Any], name: str) -> Any:
    if name not in defaults:
        return type_spec
    return {"type": type_spec, "default": defaults[name]}


def yaml_kind(value: Any) -> str:
    return {bool: "a boolean", type(None): "null", list: "a list", dict: "a mapping"}.get(
        type(value), type(value).__name__
    )


def load_inputs_file(path: str) -> dict[str, Any]:
    """``--inputs FILE``: a YAML or JSON mapping of input name -> value.  A string
    is read as ``-i`` text is (by the input's type); anything else is the value
    itself (a list, a mapping, a number).  Paths are relative to the current
    directory, as with ``-i``."""
    doc = load_yaml(path, "--inputs")
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise UsageError(
            f"--inputs {path}: expected a mapping of input name -> value, found {yaml_kind(doc)}"
        )
    return {str(k): v for k, v in doc.items()}


def merge_inputs(from_file: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``-i`` values over ``--inputs`` ones (the flag on the command line wins, said once)."""
    for name in sorted(set(from_file) & set(given)):
        log.warning("-i %s replaces the value --inputs gives", name)
    return {**from_file, **given}


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """``-i name=value`` flags into a dict."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"-i {pair!r}: expected name=value")
        if name in out and out[name] != value:
            log.warning(
                "-i %s given twice: %r replaces %r (the last one counts)", name, value, out[name]
            )
        out[name] = value
    return out


def _cli_value(text: Any, lt: types_pb2.LiteralType) -> Any:
    """Text from the command line, as the value a document would hold for this type."""
    if not isinstance(text, str):
        return text  # a default from the task file is already a value
    which = lt.WhichOneof("type")
    if which in ("collection_type", "map_value_type") or (
        which == "simple" and lt.simple == types_pb2.STRUCT
    ):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            return text
    if which == "simple" and lt.simple == types_pb2.NONE:
        return None
    return text


def input_literals(
    spec: TaskSpec, given: dict[str, Any], data_uri: str, only: set[str] | None = None
) -> tuple[literals_pb2.LiteralMap, list[Transfer]]:
    """The task's inputs from ``-i`` values and the task's defaults, as literals.

    Local files and directories become uploads under ``data_uri`` (returned,
    not run); every declared input must have a value unless it is Optional.
    ``only`` limits both to those names.
    """
    declared = {e.key: e.value.type for e in spec.interface.inputs.variables}
    if only is not None:
        declared = {k: v for k, v in declared.items() if k in only or k in given}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise UsageError(
            f"unknown input {unknown[0]!r}; the task takes: {', '.join(declared) or 'none'}"
        )
    values = {**spec.defaults, **given}
    missing = [n for n, lt in declared.items() if n not in values and not _optional(lt)]
    if missing:
        raise UsageError(f"missing input {missing[0]!r} (give it with -i {missing[0]}=VALUE)")
    given_values = {}
    converted: dict[str, literals_pb2.Literal] = {}
    for name, lt in declared.items():
        if spec.convert is not None and name in values:
            literal = spec.convert(name, values[name])
            if literal is not None:
                converted[name] = literal
                continue
        # Relative paths: from the task file for its defaults, else from here.
        from_file = name in spec.defaults and name not in given
        base = spec.base_dir if from_file else os.getcwd()
        value = _cli_value(values[name], lt) if name in values else None
        given_values[name] = GivenValue(value, lt, base)
    literals, transfers = literals_from_values(given_values, data_uri)
    for name, literal in converted.items():
        literals.literals[name].CopyFrom(literal)
    # In the order the task declares them, whoever converted them.
    ordered = literals_pb2.LiteralMap()
    for name in declared:
        if name in literals.literals:
            ordered.literals[name].CopyFrom(literals.literals[name])
    return ordered, transfers


def _optional(lt: types_pb2.LiteralType) -> bool:
    return lt.WhichOneof("type") == "union_type" and any(
        v.WhichOneof("type") == "simple" and v.simple == types_pb2.NONE
        for v in lt.union_type.variants
    )


def stage_inputs(store: Any, spec: TaskSpec, given: dict[str, Any], prefix: str) -> str:
    """Upload the local files and directories among ``given`` (and the task's
    defaults) under ``<prefix>/data`` and write ``<prefix>/inputs.pb``, as Flyte
    would have before starting the pod; returns the document's URI."""
    from copilot.storage import join_uri

    literals, transfers = input_literals(spec, given, join_uri(prefix, "data"))
    store.upload(transfers)
    uri = join_uri(prefix, "inputs.pb")
    store.write_bytes(uri, literals.SerializeToString(deterministic=True), what="write inputs")
    return uri
