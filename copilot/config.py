"""Storage and logging configuration: environment, ``--config`` YAML, ``--storage.*`` flags.

Flyte's plugin configures its helper the way flytestdlib does: pflag-style
``--storage.X`` / ``--logger.X`` flags and YAML files with the same keys under
``storage:`` and ``logger:`` (and copilot's own ``sidecar:`` bounds).  This module
reads all of that into :class:`Settings`: it finds the files, applies the flags
over them and checks the sections; the ``storage`` section itself is
:mod:`copilot.storage.config`'s, and what a store makes of its keys is the
store's module's.  Precedence, later wins: the environment (which botocore reads
itself), the YAML files in order, then the flags.
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from copilot.config_values import (
    check_section_keys,
    deep_merge,
    get_path,
    parse_bool,
    parse_pairs,
    set_path,
    text_value,
)
from copilot.constants import ERROR_DOCUMENT_NAME
from copilot.errors import UsageError
from copilot.limits import SECTION_KEYS as LIMIT_KEYS
from copilot.limits import OutputLimits
from copilot.storage.backends import STOW_KEYS
from copilot.storage.config import StorageConfig
from copilot.yamlfile import load_yaml

#: Re-exported: what callers of the configuration used to find here.
__all__ = [
    "STOW_KEYS",
    "FlagOverrides",
    "Settings",
    "StorageConfig",
    "load_config_files",
    "parse_bool",
    "parse_pairs",
    "resolve_settings",
    "text_value",
]

log = logging.getLogger("copilot")

# Every ``--storage.*`` key flytestdlib defines (Flyte 1 and 2), with its kind.
# "map" is pflag's StringToString: repeatable, and a value may hold several
# comma-separated KEY=VAL pairs.
STORAGE_KEYS: dict[str, str] = {
    "type": "str",
    "engine": "str",
    "ca-bundle": "str",
    "container": "str",
    "enable-multicontainer": "bool",
    "enableLegacyMetrics": "bool",
    "stow.kind": "str",
    "stow.config": "map",
    "connection.endpoint": "str",
    "connection.auth-type": "str",
    "connection.access-key": "str",
    "connection.secret-key": "str",
    "connection.region": "str",
    "connection.disable-ssl": "bool",
    "cache.max_size_mbs": "int",
    "cache.target_gc_percent": "int",
    "limits.maxDownloadMBs": "int",
    "defaultHttpClient.timeout": "str",
    "defaultHttpClient.maxIdleConns": "int",
    "defaultHttpClient.maxIdleConnsPerHost": "int",
    "defaultHttpClient.maxConnsPerHost": "int",
    "defaultHttpClient.idleConnTimeout": "str",
    "signedUrl.stowConfigOverride": "map",
}

LOGGER_KEYS: dict[str, str] = {
    "level": "int",
    "show-source": "bool",
    "mute": "bool",
    "formatter.type": "str",
}


@dataclass
class FlagOverrides:
    """``--storage.*`` and ``--logger.*`` values from the command line."""

    storage: dict[str, Any] = field(default_factory=dict)
    logger: dict[str, Any] = field(default_factory=dict)

    def set(self, section: str, key: str, kind: str, raw: str) -> None:
        flag = f"--{section}.{key}"
        tree = self.storage if section == "storage" else self.logger
        if kind == "map":
            merged = dict(get_path(tree, key) or {})
            merged.update(parse_pairs(raw, flag))
            set_path(tree, key, merged)
        elif kind == "bool":
            set_path(tree, key, parse_bool(raw, flag))
        elif kind == "int":
            try:
                set_path(tree, key, int(raw))
            except ValueError:
                raise UsageError(f"{flag}: expected an integer, found {raw!r}") from None
        else:
            set_path(tree, key, raw)


def load_config_files(patterns: list[str], notes: list[str] | None = None) -> dict[str, Any]:
    """Read every YAML file matching the patterns, in order; missing ones are skipped.

    Flyte passes ``/etc/flyte/copilot/*.yaml`` without a shell, so the glob is
    expanded here.  A file that exists but is not valid YAML is an error.
    """
    merged: dict[str, Any] = {}
    for pattern in patterns:
        if not pattern:
            continue
        paths = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        found = [p for p in paths if os.path.isfile(p)]
        if not found and glob.has_magic(pattern):
            log.debug("config %s: no such file, skipped", pattern)
        elif not found:
            # Not fatal (as upstream), but said: a silent miss sends people chasing
            # "Unable to locate credentials" instead of the file's path.
            note = f"--config {pattern}: no such file; continuing without it"
            if notes is None:
                log.warning(note)
            else:
                notes.append(note)
        for path in found:
            data = load_yaml(path, "--config")
            if data is None:
                continue
            if not isinstance(data, dict):
                raise UsageError(
                    f"--config {path}: expected a mapping at the top level, "
                    f"found {type(data).__name__}"
                )
            merged = deep_merge(merged, data)
    return merged


LOGGER_SECTION_KEYS = ("level", "formatter", "show-source", "mute")

LOG_LEVELS = range(0, 6)

#: The --config sections copilot reads; a Flyte config file may hold others.
CONFIG_SECTIONS = ("storage", "logger", "sidecar")


def _check_sections(tree: dict[str, Any]) -> None:
    """A section close to one copilot reads is a typo (``storge:``): an error.  Any
    other belongs to another Flyte component sharing the file, and is ignored."""
    import difflib

    for key in tree:
        if key in CONFIG_SECTIONS:
            continue
        near = difflib.get_close_matches(str(key).lower(), CONFIG_SECTIONS, n=1, cutoff=0.7)
        if near:
            raise UsageError(
                f"--config: unknown section {key!r} (did you mean {near[0]}?); "
                f"copilot reads: {', '.join(CONFIG_SECTIONS)}"
            )


@dataclass
class Settings:
    """Everything the root command resolved before a subcommand runs."""

    storage: StorageConfig = field(default_factory=StorageConfig)
    log_level: int = 3
    log_format: str = "text"
    show_source: bool = False
    err_output_name: str = ERROR_DOCUMENT_NAME
    error_exit_code: int = 0
    #: The ``sidecar`` section's bounds on outputs (flags put theirs over them).
    output_limits: OutputLimits = field(default_factory=OutputLimits)
    #: Warnings found while resolving, to log once logging is set up.
    notes: list[str] = field(default_factory=list)


def resolve_settings(
    config_patterns: list[str],
    overrides: FlagOverrides,
    *,
    show_source: bool = False,
    err_output_name: str = ERROR_DOCUMENT_NAME,
) -> Settings:
    """Combine YAML files and flags into :class:`Settings`."""
    notes: list[str] = []
    tree = load_config_files(config_patterns, notes)
    _check_sections(tree)
    storage_tree = tree.get("storage") or {}
    logger_tree = tree.get("logger") or {}
    sidecar_tree = tree.get("sidecar") or {}
    if not all(isinstance(t, dict) for t in (storage_tree, logger_tree, sidecar_tree)):
        raise UsageError("--config: the storage, logger and sidecar sections must be mappings")
    check_section_keys("sidecar", sidecar_tree, LIMIT_KEYS)
    storage_tree = deep_merge(storage_tree, overrides.storage)
    logger_tree = deep_merge(logger_tree, overrides.logger)
    check_section_keys("logger", logger_tree, LOGGER_SECTION_KEYS)
    raw_level = logger_tree.get("level", 3)
    try:
        level = int(raw_level)
    except (TypeError, ValueError):
        level = -1
    if level not in LOG_LEVELS:
        raise UsageError(
            f"logger.level: expected an integer 0-5 (3 warn, 4 info, 5 debug), found {raw_level!r}"
        )
    fmt = text_value(get_path(logger_tree, "formatter.type", "text")).lower() or "text"
    if fmt not in ("text", "json"):
        raise UsageError(f"logger.formatter.type: expected text or json, found {fmt!r}")
    settings = Settings(
        storage=StorageConfig.from_tree(storage_tree),
        log_level=level,
        log_format=fmt,
        show_source=show_source or bool(logger_tree.get("show-source", False)),
        err_output_name=err_output_name,
        output_limits=OutputLimits.from_tree(sidecar_tree),
        notes=notes,
    )
    if logger_tree.get("mute"):
        settings.log_level = 0
    return settings
