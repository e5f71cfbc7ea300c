"""pflag-style global flags, found wherever they stand on the command line.

Flyte's Go helper is a cobra program: ``--storage.*`` and ``--logger.*`` are
persistent flags generated from flytestdlib's config structs, accepted before
or after the subcommand, as ``--key value`` or ``--key=value``.  click cannot
declare a family of dotted flags, so they are taken out of argv here, before
click parses the rest.  The Kubernetes client flags the Go binary inherits are
accepted and dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import click

from copilot.config import LOGGER_KEYS, STORAGE_KEYS, FlagOverrides
from copilot.errors import UsageError

log = logging.getLogger("copilot")

# Kubernetes client override flags (client-go's RecommendedConfigOverrideFlags).
KUBE_VALUE_FLAGS = frozenset(
    {
        "--kubeconfig",
        "--cluster",
        "--context",
        "--user",
        "--namespace",
        "-n",
        "--server",
        "--token",
        "--username",
        "--password",
        "--client-certificate",
        "--client-key",
        "--certificate-authority",
        "--tls-server-name",
        "--proxy-url",
        "--request-timeout",
        "--as",
        "--as-group",
        "--as-uid",
    }
)
KUBE_BOOL_FLAGS = frozenset({"--insecure-skip-tls-verify", "--disable-compression"})


@dataclass(frozen=True)
class _Flag:
    """A global flag: where its value goes (``root`` flags are handed to click
    before the subcommand, ``kube`` ones are dropped) and whether it takes one."""

    where: str  # "root", "storage", "logger" or "kube"
    takes_value: bool
    key: str = ""
    kind: str = ""


def _options(command: click.Command) -> dict[str, bool]:
    """``command``'s option strings -> whether each consumes the next token."""
    found: dict[str, bool] = {}
    for param in command.params:
        if isinstance(param, click.Option):
            takes = not param.is_flag and not param.count
            found.update({opt: takes for opt in (*param.opts, *param.secondary_opts)})
    return found


def _global_flags(group: click.Group) -> dict[str, _Flag]:
    """Every flag accepted anywhere on the line, whatever the subcommand."""
    table = {name: _Flag("kube", True) for name in KUBE_VALUE_FLAGS}
    table.update({name: _Flag("kube", False) for name in KUBE_BOOL_FLAGS})
    for section, keys in (("storage", STORAGE_KEYS), ("logger", LOGGER_KEYS)):
        for key, kind in keys.items():
            table[f"--{section}.{key}"] = _Flag(section, kind != "bool", key, kind)
    table.update({name: _Flag("root", takes) for name, takes in _options(group).items()})
    return table


def split_global_flags(args: list[str], group: click.Group) -> tuple[FlagOverrides, list[str]]:
    """Take ``--storage.*``, ``--logger.*``, Kubernetes and root flags out of ``args``.

    One scan with a table: a token is a global flag unless the (sub)command
    reached so far declares it; subcommands are followed into nested groups
    (``interface encode``).  Returns the overrides and an argv for click in
    which the root flags stand before the subcommand (where click expects them).
    """
    overrides = FlagOverrides()
    table = _global_flags(group)
    head: list[str] = []
    rest: list[str] = []
    command: click.Command = group
    local: dict[str, bool] = {}
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--":
            rest.extend(args[i:])
            break
        name, eq, inline = tok.partition("=") if tok.startswith("--") else (tok, "", "")
        flag = None if name in local else table.get(name) or _unknown_dotted(name, eq)
        if flag is not None:
            if flag.takes_value and not eq:
                if i + 1 >= len(args):
                    raise UsageError(f"flag {name} needs a value")
                value, i = args[i + 1], i + 2
            else:
                value, i = (inline if eq else "true"), i + 1
            if flag.where == "root":
                head.extend([name, value] if flag.takes_value else [tok])
            elif flag.where in ("storage", "logger"):
                overrides.set(flag.where, flag.key, flag.kind, value)
            continue
        rest.append(tok)
        i += 1
        if isinstance(command, click.Group) and not tok.startswith("-"):
            sub = command.commands.get(tok)
            if sub is not None:
                command, local = sub, _options(sub)
            continue
        if tok.startswith("-") and not eq and local.get(name) and i < len(args):
            rest.append(args[i])  # the value of the subcommand's own option
            i += 1
    return overrides, head + rest


def _unknown_dotted(name: str, eq: str) -> _Flag | None:
    """A ``--storage.x`` / ``--logger.x`` not in the tables: an error, unless given
    as ``--key=value`` (then dropped, as the Go helper tolerates config it lacks)."""
    section = name[2:].split(".", 1)[0] if name.startswith("--") else ""
    if section not in ("storage", "logger") or "." not in name:
        return None
    if not eq:
        keys = STORAGE_KEYS if section == "storage" else LOGGER_KEYS
        raise UsageError(
            f"unknown flag {name}; known {section} flags: "
            + ", ".join(f"--{section}.{k}" for k in keys)
        )
    log.debug("ignoring unknown flag %s", name)
    return _Flag("kube", False)  # dropped, value and all
