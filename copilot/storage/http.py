"""``http(s)://``: inputs read through fsspec's HTTP filesystem (never written).

An http(s) URI in an input comes from data an upstream task wrote, so it must
not reach a link-local or cloud metadata address (169.254.169.254 hands out
the node's credentials).  The session fsspec uses is copilot's own: its
resolver drops such addresses for every name (so a name that resolves to one,
or a DNS answer changed between a check and the connection, is refused at the
moment of connecting), and a redirect to one is refused before it is followed
(aiohttp connects to an IP literal without asking the resolver).
"""

from __future__ import annotations

from typing import Any

from copilot.errors import DataError
from copilot.storage.config import StorageConfig
from copilot.storage.uris import metadata_address


def fsspec_options(config: StorageConfig, concurrency: int) -> dict[str, Any]:
    """fsspec's HTTP filesystem passes its keyword arguments to every aiohttp request:
    a private CA goes in as an SSL context that trusts it besides the system's.
    ``get_client`` (fsspec's documented hook) makes the guarded session."""
    options: dict[str, Any] = {"get_client": guarded_session}
    if config.ca_bundle:
        import ssl

        context = ssl.create_default_context()
        context.load_verify_locations(cadata=config.ca_certificates())
        options["ssl"] = context
    return options


def _refused(host: str) -> DataError:
    return DataError(
        f"{host} is a link-local or cloud metadata address; an input is never read from there"
    )


async def guarded_session(**kwargs: Any) -> Any:
    """An aiohttp session that never connects to a metadata address."""
    import aiohttp
    from aiohttp.resolver import DefaultResolver
    from yarl import URL

    class GuardedResolver(DefaultResolver):  # type: ignore[misc, valid-type]
        async def resolve(self, host: str, port: int = 0, family: Any = 0) -> Any:
            if metadata_address(host):
                raise _refused(host)
            found = await super().resolve(host, port, family)
            kept = [r for r in found if not metadata_address(r["host"])]
            if not kept:
                raise _refused(f"{host} ({found[0]['host']})" if found else host)
            return kept

    async def on_redirect(session: Any, context: Any, params: Any) -> None:
        target = params.response.headers.get("Location")
        if target:
            host = params.url.join(URL(target)).host or ""
            if metadata_address(host):
                raise _refused(host)

    trace = aiohttp.TraceConfig()
    trace.on_request_redirect.append(on_redirect)
    connector = aiohttp.TCPConnector(resolver=GuardedResolver())
    return aiohttp.ClientSession(connector=connector, trace_configs=[trace], **kwargs)
