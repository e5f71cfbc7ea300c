"""Storage and logging configuration: environment, ``--config`` YAML, ``--storage.*`` flags.

Flyte's plugin configures its helper the way flytestdlib does: pflag-style
``--storage.X`` / ``--logger.X`` flags and YAML files with the same keys under
``storage:`` and ``logger:``.  This module turns all of that into plain fsspec
keyword arguments per protocol.  Precedence, later wins: the environment (which
botocore reads itself), the YAML files in order, then the flags.

Secrets never leave this module except inside the options handed to fsspec:
:meth:`StorageConfig.redacted` is what gets logged.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from copilot.constants import ERROR_DOCUMENT_NAME, SCHEME_ALIASES
from copilot.errors import UsageError
from copilot.limits import SECTION_KEYS as LIMIT_KEYS
from copilot.limits import OutputLimits
from copilot.yamlfile import load_yaml

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

# The ``--storage.stow.config`` keys each stow kind takes (Go's stow names,
# plus ``endpoint`` / ``connection_string`` for emulators and private
# endpoints).  Anything else is a typo, and an error: a misspelt endpoint key
# must not silently send data to the public cloud.
STOW_KEYS: dict[str, tuple[str, ...]] = {
    "s3": (
        "auth_type",
        "access_key_id",
        "secret_key",
        "secret_key_path",
        "token",
        "region",
        "endpoint",
        "disable_ssl",
        "disable_force_path_style",
        "v2_signing",
    ),
    "google": ("json", "project_id", "scopes", "endpoint", "credentials_path"),
    "azure": (
        "account",
        "key",
        "domain_suffix",
        "base_url",
        "upload_concurrency",
        "endpoint",
        "connection_string",
    ),
    "local": ("path",),
}
STOW_KIND_ALIASES = {"gcs": "google", "gs": "google", "abfs": "azure", "minio": "s3"}

# Keys whose values are credentials: masked wherever configuration is shown.
SECRET_KEYS = frozenset(
    {
        "secret_key",
        "secret-key",
        "access_key_id",
        "access-key",
        "token",
        "key",
        "json",
        "password",
        "client_secret",
        "sas_token",
        "connection_string",
    }
)

_TRUE = {"1", "t", "true", "yes", "y", "on"}
_FALSE = {"0", "f", "false", "no", "n", "off", ""}


def parse_bool(value: Any, name: str) -> bool:
    """Accept Go's and YAML's spellings of a boolean."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise UsageError(f"{name}: expected true or false, found {value!r}")


def parse_pairs(value: str, name: str) -> dict[str, str]:
    """Parse ``K=V[,K=V...]`` as pflag's StringToString does: one CSV record.

    A field in double quotes keeps its commas and ``=`` (``"json={""a"": 1}"``,
    quotes doubled inside, as Go's csv reads them), so a service-account JSON
    arrives whole.  An unquoted field without ``=`` continues the previous
    value (``secret_key=a,b``), which pflag would refuse.
    """
    import csv

    try:
        fields = next(csv.reader([value], skipinitialspace=False), [])
    except csv.Error as exc:
        raise UsageError(f"{name}: cannot read {value!r} as KEY=VALUE pairs ({exc})") from None
    pairs: dict[str, str] = {}
    last: str | None = None
    for piece in fields:
        if "=" in piece:
            key, _, val = piece.partition("=")
            key = key.strip()
            if not key:
                raise UsageError(f"{name}: expected KEY=VALUE, found {piece!r}")
            pairs[key] = val
            last = key
        elif last is not None:
            pairs[last] += "," + piece
        elif piece.strip():
            raise UsageError(f"{name}: expected KEY=VALUE, found {piece!r}")
    return pairs


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _get_path(tree: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Merge ``extra`` into a copy of ``base``; nested dicts merge, the rest replaces."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class FlagOverrides:
    """``--storage.*`` and ``--logger.*`` values from the command line."""

    storage: dict[str, Any] = field(default_factory=dict)
    logger: dict[str, Any] = field(default_factory=dict)

    def set(self, section: str, key: str, kind: str, raw: str) -> None:
        flag = f"--{section}.{key}"
        tree = self.storage if section == "storage" else self.logger
        if kind == "map":
            merged = dict(_get_path(tree, key) or {})
            merged.update(parse_pairs(raw, flag))
            _set_path(tree, key, merged)
        elif kind == "bool":
            _set_path(tree, key, parse_bool(raw, flag))
        elif kind == "int":
            try:
                _set_path(tree, key, int(raw))
            except ValueError:
                raise UsageError(f"{flag}: expected an integer, found {raw!r}") from None
        else:
            _set_path(tree, key, raw)


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


def text_value(value: Any) -> str:
    """A configuration value as text ("" for none)."""
    return "" if value is None else str(value)


#: The keys flytestdlib's storage and logger sections take (current and past releases);
#: copilot reads some and accepts the rest, so a Flyte config file works unchanged.
STORAGE_SECTION_KEYS = (
    "type", "container", "stow", "connection", "limits", "enable-multicontainer",
    "cache", "defaultHttpClient", "signedUrl", "schemes", "redis", "engine", "ca-bundle",
)  # fmt: skip
#: What moves the bytes (``storage.engine``): obstore where it serves the store
#: (``auto``), or fsspec's filesystems, the reference implementation.
ENGINES = ("auto", "obstore", "fsspec")
LOGGER_SECTION_KEYS = ("level", "formatter", "show-source", "mute")
STORAGE_TYPES = ("s3", "minio", "stow", "local", "mem", "redis")
#: The keys of ``storage.redis`` (and of a ``schemes.redis.redis`` entry).
REDIS_KEYS = ("addr", "username", "password", "db")
#: The stow kind a URL scheme is dialed with when its ``storage.schemes`` entry
#: names none (flytestdlib's multi-scheme DataStore derives it the same way).
SCHEME_KINDS = {"s3": "s3", "gs": "google", "abfs": "azure"}
#: The URL scheme a primary stow kind serves.
KIND_SCHEMES = {"s3": "s3", "google": "gs", "azure": "abfs", "local": "file"}


@dataclass(frozen=True)
class SchemeConfig:
    """One ``storage.schemes`` entry: how a scheme other than the primary one is
    dialed.  Empty: its provider's ambient credential chain."""

    kind: str = ""
    config: dict[str, str] = field(default_factory=dict)
    #: For ``redis``: its connection (``addr``, ``username``, ``password``, ``db``).
    redis: dict[str, Any] | None = None


LOG_LEVELS = range(0, 6)


def _did_you_mean(key: str, allowed: Any) -> str:
    import difflib

    near = difflib.get_close_matches(key, list(allowed), n=1)
    return f" (did you mean {near[0]}?)" if near else ""


def check_section_keys(
    section: str, tree: dict[str, Any], allowed: tuple[str, ...], noun: str = "key"
) -> None:
    """A key a section does not take is a typo: an error naming it and the nearest one."""
    for key in tree:
        if key not in allowed:
            raise UsageError(
                f"{section}: unknown {noun} {key!r}{_did_you_mean(str(key), allowed)}; "
                f"valid {noun}s: {', '.join(allowed)}"
            )


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


def _check_stow_keys(kind: str, config: dict[str, str]) -> None:
    """Every ``stow.config`` key must be one the chosen kind takes."""
    kind = STOW_KIND_ALIASES.get(kind, kind)
    allowed = STOW_KEYS.get(kind)
    if allowed is None:
        return  # no kind chosen (the environment decides): nothing to check against
    for key in config:
        if key not in allowed:
            hint = _did_you_mean(key, allowed)
            raise UsageError(
                f"storage.stow.config: unknown key {key!r} for kind {kind}{hint}; "
                f"valid keys: {', '.join(allowed)}"
            )


def _redis_section(raw: Any, where: str) -> dict[str, Any] | None:
    """A redis connection section checked: ``addr``, ``username``, ``password``, ``db``."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: expected a mapping, found {type(raw).__name__}")
    check_section_keys(where, raw, REDIS_KEYS)
    out = {k: text_value(raw.get(k)) for k in ("addr", "username", "password")}
    try:
        db = int(raw.get("db") or 0)
    except (TypeError, ValueError):
        raise UsageError(f"{where}.db: expected an integer, found {raw.get('db')!r}") from None
    return {**out, "db": db}


def _schemes(raw: Any) -> dict[str, SchemeConfig]:
    """``storage.schemes`` checked: scheme -> ``{kind, config}``, keyed by the
    canonical scheme (``abfss``, ``az`` -> ``abfs``; ``gcs`` -> ``gs``)."""
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise UsageError(f"storage.schemes: expected a mapping, found {type(raw).__name__}")
    out: dict[str, SchemeConfig] = {}
    for scheme, entry in raw.items():
        where = f"storage.schemes.{scheme}"
        name = SCHEME_ALIASES.get(str(scheme).lower(), str(scheme).lower())
        entry = entry or {}
        if not isinstance(entry, dict):
            raise UsageError(f"{where}: expected a mapping, found {type(entry).__name__}")
        check_section_keys(where, entry, ("kind", "config", "redis"))
        if name == "redis":
            out[name] = SchemeConfig(redis=_redis_section(entry.get("redis"), f"{where}.redis"))
            continue
        if "redis" in entry:
            raise UsageError(f"{where}.redis: only the redis scheme takes a redis section")
        if name not in SCHEME_KINDS:
            raise UsageError(
                f"{where}: copilot dials only {', '.join(SCHEME_KINDS)} this way; found {scheme!r}"
            )
        kind = text_value(entry.get("kind")).lower()
        kind = STOW_KIND_ALIASES.get(kind, kind)
        if kind and kind not in STOW_KEYS:
            raise UsageError(
                f"{where}.kind: expected one of {', '.join(STOW_KEYS)}, found {kind!r}"
            )
        config = entry.get("config") or {}
        if isinstance(config, str):
            config = parse_pairs(config, f"{where}.config")
        if not isinstance(config, dict):
            raise UsageError(f"{where}.config: expected a mapping, found {type(config).__name__}")
        values = {str(k): text_value(v) for k, v in config.items()}
        try:
            _check_stow_keys(kind or SCHEME_KINDS[name], values)
        except UsageError as exc:
            raise UsageError(
                exc.message.replace("storage.stow.config", f"{where}.config")
            ) from None
        out[name] = SchemeConfig(kind=kind, config=values)
    return out


@dataclass
class StorageConfig:
    """The storage section, normalised; knows how to configure each fsspec backend."""

    type: str = ""
    container: str = ""
    kind: str = ""
    stow_config: dict[str, str] = field(default_factory=dict)
    connection: dict[str, Any] = field(default_factory=dict)
    max_download_mb: int = 0
    multi_container: bool = False
    #: ``auto`` (obstore where it serves the store, else fsspec), ``obstore`` or ``fsspec``.
    engine: str = "auto"
    #: A PEM file of CA certificates trusted besides the system's (a private CA in
    #: front of MinIO, say); ``storage.ca-bundle``.
    ca_bundle: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: ``storage.schemes``: per URL scheme (canonical: s3, gs, abfs), how a scheme
    #: other than the primary one is dialed.
    schemes: dict[str, SchemeConfig] = field(default_factory=dict)
    #: ``storage.redis``: the redis store's connection (``type: redis``).
    redis: dict[str, Any] | None = None
    #: Secrets read from files, by path (see ``secret_file``).
    _secrets: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)
    #: Each scheme's configuration, made once (see ``for_protocol``).
    _derived: dict[str, StorageConfig] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def primary_protocol(self) -> str:
        """The URL scheme the top-level configuration serves ("" when none is named:
        then it serves every scheme, as before ``schemes`` existed)."""
        if self.kind:
            return KIND_SCHEMES.get(STOW_KIND_ALIASES.get(self.kind, self.kind), "")
        return {"s3": "s3", "minio": "s3", "local": "file", "mem": "memory", "redis": "redis"}.get(
            self.type, ""
        )

    def for_protocol(self, protocol: str) -> StorageConfig:
        """The configuration a client for ``protocol`` is made from: this one for the
        primary scheme (and anything it does not name), else the scheme's
        ``storage.schemes`` entry, or its provider's ambient credentials."""
        primary = self.primary_protocol()
        if protocol == "redis" and primary != "redis":
            # Its schemes entry, else the top-level redis section, else the URI's host.
            entry = self.schemes.get("redis", SchemeConfig())
            if "redis" not in self._derived:
                self._derived["redis"] = dataclasses.replace(
                    self, type="redis", kind="", redis=entry.redis or self.redis
                )
            return self._derived["redis"]
        if not primary or protocol == primary or protocol not in SCHEME_KINDS:
            return self
        if protocol not in self._derived:
            entry = self.schemes.get(protocol, SchemeConfig())
            self._derived[protocol] = dataclasses.replace(
                self,
                type="stow",
                kind=entry.kind or SCHEME_KINDS[protocol],
                container="",
                stow_config=dict(entry.config),
                connection={},
            )
        return self._derived[protocol]

    def __repr__(self) -> str:
        # Printed, logged or in a traceback, a configuration never shows a credential.
        return f"StorageConfig({self.redacted()!r})"

    __str__ = __repr__

    @classmethod
    def s3(
        cls,
        *,
        region: str = "",
        endpoint: str = "",
        access_key_id: str = "",
        secret_key: str = "",
        token: str = "",
        use_ssl: bool = True,
        path_style: bool = True,
    ) -> StorageConfig:
        """S3 (or MinIO) for library callers, with typed options; empty values are left
        to the environment (IRSA, instance profiles, ``AWS_*`` variables)."""
        stow = {
            "region": region,
            "endpoint": endpoint,
            "access_key_id": access_key_id,
            "secret_key": secret_key,
            "token": token,
            "disable_ssl": "false" if use_ssl else "true",
            "disable_force_path_style": "false" if path_style else "true",
        }
        return cls(kind="s3", stow_config={k: v for k, v in stow.items() if v})

    @classmethod
    def from_tree(cls, tree: dict[str, Any]) -> StorageConfig:
        stow = tree.get("stow") or {}
        if not isinstance(stow, dict):
            raise UsageError(f"storage.stow: expected a mapping, found {type(stow).__name__}")
        raw_cfg = stow.get("config") or {}
        if isinstance(raw_cfg, str):
            raw_cfg = parse_pairs(raw_cfg, "storage.stow.config")
        if not isinstance(raw_cfg, dict):
            raise UsageError(
                f"storage.stow.config: expected a mapping, found {type(raw_cfg).__name__}"
            )
        conn = tree.get("connection") or {}
        if not isinstance(conn, dict):
            raise UsageError(f"storage.connection: expected a mapping, found {type(conn).__name__}")
        limit = _get_path(tree, "limits.maxDownloadMBs", 0) or 0
        try:
            limit = int(limit)
        except (TypeError, ValueError):
            raise UsageError(
                f"storage.limits.maxDownloadMBs: expected an integer, found {limit!r}"
            ) from None
        check_section_keys("storage", tree, STORAGE_SECTION_KEYS)
        storage_type = text_value(tree.get("type")).lower()
        if storage_type and storage_type not in STORAGE_TYPES:
            raise UsageError(
                f"storage.type: unknown type {storage_type!r}"
                f"{_did_you_mean(storage_type, STORAGE_TYPES)}; "
                f"valid types: {', '.join(STORAGE_TYPES)}"
            )
        kind = text_value(stow.get("kind")).lower()
        engine = text_value(tree.get("engine")).strip().lower() or "auto"
        if engine not in ENGINES:
            raise UsageError(
                f"storage.engine: unknown engine {engine!r}{_did_you_mean(engine, ENGINES)}; "
                f"valid engines: {', '.join(ENGINES)}"
            )
        stow_config = {str(k): text_value(v) for k, v in raw_cfg.items()}
        _check_stow_keys(kind or text_value(tree.get("type")).lower(), stow_config)
        schemes = _schemes(tree.get("schemes"))
        redis = _redis_section(tree.get("redis"), "storage.redis")
        return cls(
            type=text_value(tree.get("type")).lower(),
            container=text_value(tree.get("container")),
            kind=kind,
            stow_config=stow_config,
            connection={str(k): v for k, v in conn.items()},
            max_download_mb=limit,
            engine=engine,
            ca_bundle=text_value(tree.get("ca-bundle")).strip(),
            multi_container=parse_bool(
                tree.get("enable-multicontainer", False), "storage.enable-multicontainer"
            ),
            schemes=schemes,
            redis=redis,
            extra={
                k: v
                for k, v in tree.items()
                if k
                not in {
                    "type",
                    "container",
                    "stow",
                    "connection",
                    "limits",
                    "engine",
                    "ca-bundle",
                    "schemes",
                    "redis",
                }
            },
        )

    # -- per-backend options -------------------------------------------------

    def stow_for(self, *kinds: str) -> dict[str, str]:
        """``stow.config`` when the configured kind is one of ``kinds`` (else empty:
        another kind's keys never configure this store)."""
        return self.stow_config if self._kind_is(*kinds) else {}

    def _kind_is(self, *kinds: str) -> bool:
        if self.kind:
            return self.kind in kinds
        # Without stow.kind, type decides (s3/minio mean S3).
        return self.type in kinds or (self.type in ("s3", "minio") and "s3" in kinds)

    def secret_file(self, path: str) -> str:
        """A secret kept in a file (``secret_key_path``), trimmed: read once per
        configuration however many times the settings are asked for (a projected
        Secret can be rotated under the process; one run sees one value)."""
        if path not in self._secrets:
            try:
                with open(path, encoding="utf-8") as fh:
                    self._secrets[path] = fh.read().strip()
            except OSError as exc:
                raise UsageError(
                    f"storage secret_key_path {path}: cannot read it ({exc.strerror})"
                ) from None
        return self._secrets[path]

    def ca_certificates(self, environ: Mapping[str, str] | None = None, env_var: str = "") -> str:
        """The PEM text of ``storage.ca-bundle`` (or, with none, the file ``env_var``
        names: ``AWS_CA_BUNDLE``, which botocore reads), "" when neither is set."""
        env = os.environ if environ is None else environ
        path = self.ca_bundle or (env.get(env_var, "") if env_var else "")
        if not path:
            return ""
        what = "storage.ca-bundle" if self.ca_bundle else env_var
        try:
            with open(path, encoding="ascii") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not PEM text"
            raise UsageError(f"{what} {path}: cannot read it ({reason})") from None
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise UsageError(f"{what} {path}: expected PEM certificates, found none")
        return text

    def redacted(self) -> dict[str, Any]:
        """The configuration as it may be logged: every credential masked."""

        def mask(tree: dict[str, Any]) -> dict[str, Any]:
            return {k: ("***" if k in SECRET_KEYS and v else v) for k, v in tree.items()}

        return {
            "type": self.type,
            "engine": self.engine,
            "ca-bundle": self.ca_bundle,
            "container": self.container,
            "stow": {"kind": self.kind, "config": mask(self.stow_config)},
            "connection": mask(self.connection),
            "limits": {"maxDownloadMBs": self.max_download_mb},
            **({"redis": mask(self.redis)} if self.redis else {}),
        }


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
    fmt = text_value(_get_path(logger_tree, "formatter.type", "text")).lower() or "text"
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
