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

import importlib
import importlib.util
import os
import re
import sys
from typing import Any

from flyteidl2.core import tasks_pb2

from copilot.errors import UsageError

#: ``examples/tasks.py:greet`` or ``my_pkg.tasks:greet``.
_REFERENCE = re.compile(r"^(?P<where>[^:]+):(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")


def is_sdk_reference(text: str) -> bool:
    """A task reference rather than a task file: ``X.py:NAME`` or ``a.b:NAME``
    (and not an existing file whose name happens to hold a colon)."""
    m = _REFERENCE.match(text)
    if not m or os.path.isfile(text):
        return False
    where = m["where"]
    return where.endswith(".py") or re.fullmatch(r"[A-Za-z_][\w.]*", where) is not None


def _import_sdk() -> Any:
    try:
        import flyte
        import flyte.extras
    except ImportError:
        raise UsageError(
            "a PATH.py:TASK reference needs the Flyte 2 SDK: pip install 'copilot[flyte]'"
        ) from None
    return flyte


class UserCodeError(UsageError):
    """The user's module failed to import: its own traceback is the message."""


def _import_module(where: str) -> Any:
    import traceback

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
        return importlib.import_module(where)
    except UsageError:
        raise
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        # The user's own frames and error, without the interpreter's header (a
        # traceback from copilot itself would be a bug; this one is the module's).
        frames = traceback.extract_tb(exc.__traceback__)
        own = [
            f for f in frames if not f.filename.startswith((os.path.dirname(__file__), "<frozen"))
        ]
        lines = traceback.format_list(own or frames)
        lines += traceback.format_exception_only(type(exc), exc)
        text = "".join(lines).rstrip()
        raise UserCodeError(f"{where} did not import; its traceback:\n{text}") from None


def load_template(reference: str) -> tasks_pb2.TaskTemplate:
    """The ``TaskTemplate`` the SDK serializes for the task ``reference`` names."""
    return _load(reference)[0]


def _load(reference: str) -> tuple[tasks_pb2.TaskTemplate, Any]:
    """The template and the SDK's task object."""
    m = _REFERENCE.match(reference)
    if not m:
        raise UsageError(f"{reference}: expected PATH.py:TASK or MODULE:TASK")
    flyte = _import_sdk()
    from flyte.extras import ContainerTask

    module = _import_module(m["where"])
    obj = getattr(module, m["name"], None)
    if obj is None:
        raise UsageError(f"{reference}: {m['where']} has no {m['name']!r}")
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

    serialized = get_proto_task(task, SerializationContext(version="local"))
    # The SDK's classes come from its own flyteidl2; copilot reads the bytes.
    return tasks_pb2.TaskTemplate.FromString(serialized.SerializeToString()), task


def load_sdk_task(reference: str) -> tuple[tasks_pb2.TaskTemplate, Any]:
    """``PATH.py:TASK``: the template the SDK serializes, and a converter that
    turns a given dataclass or pydantic input value into the SDK's own literal
    (None for other types, which copilot's converters serve)."""
    template, task = _load(reference)
    types = {name: typ for name, (typ, _default) in task.interface.inputs.items()}

    def convert(name: str, value: Any) -> Any:
        return _sdk_literal(name, value, types.get(name), template)

    return template, convert


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
    literal = asyncio.run(TypeEngine.to_literal(obj, typ, lt))
    return literals_pb2.Literal.FromString(literal.SerializeToString())
