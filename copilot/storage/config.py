"""The ``storage`` section: Flyte's storage configuration, checked and normalised.

flytestdlib's keys (``type``, ``stow``, ``connection``, ``limits``, ``schemes``, …)
become one :class:`StorageConfig`, a configuration per URL scheme.  What each store
makes of its keys is its own module's (``settings``, ``obstore_options``,
``fsspec_options``); which keys a stow kind takes is its entry in
:mod:`copilot.storage.backends`.

Secrets never leave a configuration except inside the options handed to an
engine: :meth:`StorageConfig.redacted` is what gets logged.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from copilot.config_values import (
    check_section_keys,
    did_you_mean,
    get_path,
    parse_bool,
    parse_pairs,
    text_value,
)
from copilot.constants import SCHEME_ALIASES
from copilot.errors import UsageError
from copilot.storage.backends import (
    BACKENDS,
    KIND_SCHEMES,
    SCHEME_KINDS,
    STOW_KEYS,
    STOW_KIND_ALIASES,
)

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

#: The keys flytestdlib's storage and logger sections take (current and past releases);
#: copilot reads some and accepts the rest, so a Flyte config file works unchanged.
STORAGE_SECTION_KEYS = (
    "type", "container", "stow", "connection", "limits", "enable-multicontainer",
    "cache", "defaultHttpClient", "signedUrl", "schemes", "redis", "engine", "ca-bundle",
)  # fmt: skip
#: What moves the bytes (``storage.engine``): obstore where it serves the store
#: (``auto``), or fsspec's filesystems, the reference implementation.
ENGINES = ("auto", "obstore", "fsspec")
STORAGE_TYPES = ("s3", "minio", "stow", "local", "mem", "redis")
#: The keys of ``storage.redis`` (and of a ``schemes.redis.redis`` entry).
REDIS_KEYS = BACKENDS["redis"].config_keys


@dataclass(frozen=True)
class SchemeConfig:
    """One ``storage.schemes`` entry: how a scheme other than the primary one is
    dialed.  Empty: its provider's ambient credential chain."""

    kind: str = ""
    config: dict[str, str] = field(default_factory=dict)
    #: For ``redis``: its connection (``addr``, ``username``, ``password``, ``db``).
    redis: dict[str, Any] | None = None


def _check_stow_keys(kind: str, config: dict[str, str]) -> None:
    """Every ``stow.config`` key must be one the chosen kind takes."""
    kind = STOW_KIND_ALIASES.get(kind, kind)
    allowed = STOW_KEYS.get(kind)
    if allowed is None:
        return  # no kind chosen (the environment decides): nothing to check against
    for key in config:
        if key not in allowed:
            hint = did_you_mean(key, allowed)
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
        limit = get_path(tree, "limits.maxDownloadMBs", 0) or 0
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
                f"{did_you_mean(storage_type, STORAGE_TYPES)}; "
                f"valid types: {', '.join(STORAGE_TYPES)}"
            )
        kind = text_value(stow.get("kind")).lower()
        engine = text_value(tree.get("engine")).strip().lower() or "auto"
        if engine not in ENGINES:
            raise UsageError(
                f"storage.engine: unknown engine {engine!r}{did_you_mean(engine, ENGINES)}; "
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
