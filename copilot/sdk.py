"""Flyte tasks as their authors wrote them: ``PATH.py:TASK`` or ``MODULE:TASK``.

The module is imported with the Flyte 2 SDK (the optional ``flyte`` extra), the
named ``ContainerTask`` (or a shell task's ``as_task()``: its ``Glob`` outputs
are directories on the wire) is serialized to the ``TaskTemplate`` the SDK
would register, which :func:`copilot.task.spec_from_template` turns into a
task spec: so ``copilot run``, ``copilot pod`` and ``copilot task export`` all
read one template, the one Flyte's propeller reads.

The SDK's serializer (``flyte._internal.runtime.task_serde.get_proto_task``)
is private API: tests/test_sdk.py holds its canary.  The SDK is imported only
for this form of task reference.
"""

from __future__ import annotations

import difflib
import enum
import importlib
import importlib.util
import json
import logging
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flyteidl2.core import tasks_pb2

from copilot.errors import UsageError

log = logging.getLogger(__name__)

#: ``examples/tasks.py:greet`` or ``my_pkg.tasks:greet``.
_REFERENCE = re.compile(r"^(?P<where>[^:]+):(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")


def is_sdk_reference(text: str) -> bool:
    """A task reference rather than a task file: ``X.py:NAME`` or ``a.b:NAME``
    (and not an existing file whose name happens to hold a colon).  A Python file
    named alone, or with an empty or malformed task name (``tasks.py:``), is one
    too: loading it says what is missing."""
    if os.path.isfile(text):
        return text.endswith(".py")
    where, colon, _ = text.rpartition(":")
    if not colon:
        return False
    return where.endswith(".py") or re.fullmatch(r"[A-Za-z_][\w.]*", where) is not None


#: The install command for each SDK a task module may use.
INSTALL = {
    "flyte": "a PATH.py:TASK reference needs the Flyte 2 SDK: pip install 'flyte-copilot[flyte]'",
    "flytekit": "a Flyte 1 task needs flytekit: pip install flytekit",
}


def _import_sdk() -> Any:
    try:
        import flyte
        import flyte.extras
    except ImportError:
        raise UsageError(INSTALL["flyte"]) from None
    return flyte


class UserCodeError(UsageError):
    """The user's module failed to import: its own traceback is the message."""


def _import_module(where: str) -> Any:
    try:
        if where.endswith(".py"):
            path = os.path.abspath(where)
            if not os.path.isfile(path):
                raise UsageError(f"{where}: no such file")
            name = "copilot_sdk_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise UsageError(f"{where}: not a Python module")
            module = importlib.util.module_from_spec(spec)
            # The module's own imports of its siblings work as under `flyte run`.
            sys.path.insert(0, os.path.dirname(path))
            sys.modules[name] = module
            spec.loader.exec_module(module)
            return module
        # A module of the current directory's, as `flyte run` and `python -m` find it.
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        return importlib.import_module(where)
    except UsageError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name in INSTALL:
            raise UsageError(f"{where} imports {exc.name}: {INSTALL[exc.name]}") from None
        raise _user_error(where, exc) from None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _user_error(where, exc) from None


def _user_error(where: str, exc: BaseException) -> UserCodeError:
    """The module's own traceback, as the one-screen message of a usage error."""
    import traceback

    # The user's own frames and error, without the interpreter's header (a
    # traceback from copilot itself would be a bug; this one is the module's).
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if not f.filename.startswith((os.path.dirname(__file__), "<frozen"))]
    lines = traceback.format_list(own or frames)
    lines += traceback.format_exception_only(type(exc), exc)
    text = "".join(lines).rstrip()
    return UserCodeError(f"{where} did not import; its traceback:\n{text}")


def _tasks(module: Any) -> list[str]:
    """The names of the tasks a module defines (anything with a task's ``as_task``
    or a Flyte 1 task's ``task_type``), for messages."""
    names = []
    for name, obj in vars(module).items():
        if name.startswith("_") or isinstance(obj, type | types.ModuleType):
            continue
        kind = type(obj).__module__.split(".")[0]
        if kind in ("flyte", "flytekit") and (hasattr(obj, "as_task") or hasattr(obj, "task_type")):
            names.append(name)
    return sorted(names)


def _tasks_in(where: str) -> list[str]:
    """:func:`_tasks` of a file or module named alone; nothing if it does not import."""
    try:
        return _tasks(_import_module(where))
    except UsageError:
        return []


def load_template(reference: str) -> tasks_pb2.TaskTemplate:
    """The ``TaskTemplate`` the SDK serializes for the task ``reference`` names."""
    return _load(reference)[0]


def _load(reference: str) -> tuple[tasks_pb2.TaskTemplate, Any]:
    """The template and the SDK's task object (None for a Flyte 1 task)."""
    m = _REFERENCE.match(reference)
    if not m:
        where = reference.rpartition(":")[0] if ":" in reference else reference
        found = _tasks_in(where)
        raise UsageError(
            f"{reference}: name the task in the file, as {where}:TASK"
            + (f" (it defines {', '.join(found)})" if found else "")
        )
    # The module first: it imports the SDK it was written for, and only that one.
    module = _import_module(m["where"])
    obj = getattr(module, m["name"], None)
    if obj is None:
        found = _tasks(module)
        close = difflib.get_close_matches(m["name"], found, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        listed = f" (its tasks: {', '.join(found)})" if found else " (it defines no task)"
        raise UsageError(f"{reference}: {m['where']} has no {m['name']!r}{hint}{listed}")
    if type(obj).__module__.split(".")[0] == "flytekit":
        return _flytekit_template(reference, obj), None
    flyte = _import_sdk()
    from flyte.extras import ContainerTask

    task = obj.as_task() if hasattr(obj, "as_task") and callable(obj.as_task) else obj
    if not isinstance(task, ContainerTask):
        kind = type(obj).__name__
        hint = (
            " (a @env.task function runs Python; copilot runs containers)" if callable(obj) else ""
        )
        raise UsageError(f"{reference}: is a {kind}, not a ContainerTask or shell task{hint}")
    if not (task.parent_env and task.parent_env()):
        # Serializing needs an environment; a task defined alone gets its own.
        flyte.TaskEnvironment.from_task(f"copilot-{task.name}"[:63], task)
    from flyte._internal.runtime.task_serde import get_proto_task
    from flyte.models import SerializationContext

    # The SDK builds its messages from the same flyteidl2 package copilot uses.
    template: tasks_pb2.TaskTemplate = get_proto_task(task, SerializationContext(version="local"))
    return template, task


def _flytekit_template(reference: str, obj: Any) -> tasks_pb2.TaskTemplate:
    """A Flyte 1 ``flytekit.ContainerTask``'s template, as ``pyflyte register``
    serializes it (``flytekit.tools.translator.get_serializable``; canary in
    tests/test_sdk.py).  Its inputs and outputs go through copilot's converters."""
    from collections import OrderedDict

    from flytekit import ContainerTask
    from flytekit.configuration import ImageConfig, SerializationSettings
    from flytekit.tools.translator import get_serializable

    if not isinstance(obj, ContainerTask):
        raise UsageError(
            f"{reference}: is a flytekit {type(obj).__name__}, not a ContainerTask "
            "(a flytekit task that runs Python needs flytekit in its image; copilot "
            "runs containers)"
        )
    settings = SerializationSettings(image_config=ImageConfig.auto_default_image(), version="local")
    spec = get_serializable(OrderedDict(), settings, obj)
    data = spec.template.to_flyte_idl().SerializeToString()
    # flyteidl (Flyte 1) and flyteidl2 share the core messages' wire format.
    return tasks_pb2.TaskTemplate.FromString(data)


@dataclass
class SdkTask:
    """A task loaded through the SDK: its template, and the SDK's type engine on
    each side of it for the task's own Python types."""

    template: tasks_pb2.TaskTemplate
    #: A given dataclass or pydantic input value -> the SDK's own literal (None
    #: for other types, which copilot's converters serve; no converter at all
    #: for a Flyte 1 task).
    convert: Callable[[str, Any], Any] | None
    #: The outputs' literals -> the SDK's JSON view of each typed value (None for
    #: a Flyte 1 task: copilot's own view).
    view: Callable[[Mapping[str, Any]], dict[str, Any]] | None


def load_sdk_task(reference: str) -> SdkTask:
    """``PATH.py:TASK``: the template the SDK serializes, with the converters
    that use the SDK's type engine for the task's Python types."""
    template, task = _load(reference)
    if task is None:  # Flyte 1: copilot's converters both ways
        return SdkTask(template, None, None)
    inputs = {name: typ for name, (typ, _default) in task.interface.inputs.items()}
    outputs = dict(task.interface.outputs)

    def convert(name: str, value: Any) -> Any:
        return _sdk_literal(name, value, inputs.get(name), template)

    def view(literals: Mapping[str, Any]) -> dict[str, Any]:
        return json_view(literals, outputs)

    return SdkTask(template, convert, view)


def json_view(literals: Mapping[str, Any], py_types: Mapping[str, Any]) -> dict[str, Any]:
    """Each output as the SDK's type engine reads it into the task's Python type,
    in the JSON shape of the SDK's JSON schema for that type (the shape its
    tools take back as input): File and Dir as ``{uri, format, dimensionality}``,
    data frames ``{uri, format}``, dataclasses and pydantic models as objects,
    enums by member name (what the wire holds; inside a dataclass or model, by
    value, as its schema says), datetimes in ISO 8601 and durations as ISO 8601
    durations (both what ``flyte run`` parses).

    ``serialize_json_value`` is the SDK's private serializer (canary in
    tests/test_sdk.py); a value it cannot read keeps copilot's own view."""
    import asyncio

    from flyte.types import TypeEngine
    from flyte.types._json_coercion import serialize_json_value

    from copilot.literals.to_files import python_value

    async def one(literal: Any, typ: Any) -> Any:
        return await shown(await TypeEngine.to_python_value(literal, typ), typ)

    async def shown(value: Any, typ: Any) -> Any:
        # An enum is its member's name on the wire, and its value inside a
        # dataclass or model (whose schema is mashumaro's or pydantic's).
        if isinstance(value, enum.Enum):
            return value.name
        typ = _unwrap_optional(typ)
        origin, args = typing.get_origin(typ), typing.get_args(typ)
        if origin is list and isinstance(value, list) and args:
            return [await shown(v, args[0]) for v in value]
        if origin is dict and isinstance(value, dict) and len(args) == 2:
            return {k: await shown(v, args[1]) for k, v in value.items()}
        serialized = await serialize_json_value(value, typ)
        return json.loads(json.dumps(serialized, default=_json_leaf))

    async def every() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, literal in literals.items():
            try:
                out[name] = await one(literal, py_types[name])
            except Exception as exc:
                # A downstream Flyte task would fail the same way: say so, show the value.
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                log.warning(
                    "output %r: the Flyte SDK cannot read it as %s (%s); shown as stored",
                    name,
                    getattr(py_types[name], "__name__", py_types[name]),
                    first,
                )
                out[name] = python_value(literal)
        return out

    return asyncio.run(every())


def _unwrap_optional(typ: Any) -> Any:
    """``Optional[X]`` -> ``X``; any other type as it is."""
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    if typing.get_origin(typ) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return typ


def _json_leaf(value: Any) -> Any:
    """The JSON form of a leaf the SDK's serializer leaves as a Python object."""
    import datetime

    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return iso_duration(value)
    raise TypeError(f"no JSON form for {type(value).__name__}")


def iso_duration(td: Any) -> str:
    """``timedelta`` as an ISO 8601 duration (``P1DT2H3M4.5S``), the form the SDK's
    command line parses."""
    micros = td.days * 86_400_000_000 + td.seconds * 1_000_000 + td.microseconds
    sign = "-" if micros < 0 else ""
    days, rest = divmod(abs(micros), 86_400_000_000)
    hours, rest = divmod(rest, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, frac = divmod(rest, 1_000_000)
    secs = f"{seconds}.{frac:06d}".rstrip("0") if frac else str(seconds)
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M")) if n) + (
        f"{secs}S" if secs != "0" else ""
    )
    text = (f"{days}D" if days else "") + (f"T{time}" if time else "")
    return f"{sign}P{text or 'T0S'}"


def _structured(typ: Any) -> str | None:
    """What kind of structured Python type the SDK converts here, if any."""
    import dataclasses

    if not isinstance(typ, type) or typ.__module__.split(".")[0] == "flyte":
        return None  # flyte.io's File, Dir, DataFrame: copilot's own converters
    if dataclasses.is_dataclass(typ):
        return "dataclass"
    try:
        from pydantic import BaseModel
    except ImportError:  # pragma: no cover - the SDK depends on pydantic
        return None
    if issubclass(typ, BaseModel):
        return "pydantic"
    return None


def _sdk_literal(name: str, value: Any, typ: Any, template: Any) -> Any:
    """A dataclass or pydantic input as the SDK makes its literal (msgpack with the
    SDK's tags); None for every other type (copilot's converters serve those)."""
    kind = _structured(typ)
    if kind is None:
        return None
    import asyncio

    import yaml
    from flyte.types import TypeEngine
    from flyteidl2.core import literals_pb2

    label = f"input {name!r}"
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise UsageError(f"{label}: expected {typ.__name__} as JSON or YAML: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(
            f"{label}: expected {typ.__name__} as a mapping of its fields, found {value!r}"
        )
    try:
        if kind == "pydantic":
            obj = typ.model_validate(value)
        else:
            from mashumaro.codecs.basic import decode

            obj = decode(value, typ)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{label}: not a valid {typ.__name__}: {first}") from None
    lt = next(e.value.type for e in template.interface.inputs.variables if e.key == name)
    literal: literals_pb2.Literal = asyncio.run(TypeEngine.to_literal(obj, typ, lt))
    return literal
