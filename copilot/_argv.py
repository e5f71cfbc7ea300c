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


def _value_options(command: click.Command) -> set[str]:
    """Option strings of ``command`` that consume the next token as their value."""
    names: set[str] = set()
    for param in command.params:
        if isinstance(param, click.Option) and not param.is_flag and not param.count:
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def _all_options(command: click.Command) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def split_global_flags(args: list[str], group: click.Group) -> tuple[FlagOverrides, list[str]]:
    """Take ``--storage.*``, ``--logger.*`` and root flags out of ``args``.

    Returns the overrides and an argv for click in which the root flags stand
    before the subcommand (where click expects them).
    """
    overrides = FlagOverrides()
    root_value = _value_options(group)
    root_all = _all_options(group)
    head: list[str] = []
    rest: list[str] = []
    sub: click.Command | None = None
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--":
            rest.extend(args[i:])
            break
        name, eq, inline = tok.partition("=") if tok.startswith("--") else (tok, "", "")
        has_inline = bool(eq)

        def take_value(flag: str, _inline: str = inline, _has: bool = has_inline) -> str:
            nonlocal i
            if _has:
                return _inline
            if i + 1 >= len(args):
                raise UsageError(f"flag {flag} needs a value")
            i += 1
            return args[i]

        section = name[2:].split(".", 1)[0] if name.startswith("--") else ""
        if section in ("storage", "logger") and "." in name:
            key = name[len(section) + 3 :]
            table = STORAGE_KEYS if section == "storage" else LOGGER_KEYS
            kind = table.get(key)
            if kind is None:
                if not has_inline:
                    raise UsageError(
                        f"unknown flag {name}; known {section} flags: "
                        + ", ".join(f"--{section}.{k}" for k in table)
                    )
                log.debug("ignoring unknown flag %s", name)
            elif kind == "bool":
                overrides.set(section, key, kind, inline if has_inline else "true")
            else:
                overrides.set(section, key, kind, take_value(name))
            i += 1
            continue
        sub_opts = _all_options(sub) if sub is not None else set()
        if name in root_all and name not in sub_opts:
            if name in root_value:
                head.extend([name, take_value(name)])
            else:
                head.append(tok)
            i += 1
            continue
        if name in KUBE_VALUE_FLAGS and name not in sub_opts:
            take_value(name)
            i += 1
            continue
        if name in KUBE_BOOL_FLAGS and name not in sub_opts:
            i += 1
            continue
        if sub is None and not tok.startswith("-"):
            found = group.commands.get(tok)
            if isinstance(found, click.Group):
                # Nested groups parse their own argv; hand the remainder over.
                rest.extend(args[i:])
                break
            sub = found
            rest.append(tok)
            i += 1
            continue
        rest.append(tok)
        if tok.startswith("-") and not has_inline:
            owner = sub if sub is not None else group
            if name in _value_options(owner) and i + 1 < len(args):
                rest.append(args[i + 1])
                i += 1
        i += 1
    return overrides, head + rest
