"""``http(s)://``: inputs read through fsspec's HTTP filesystem (never written)."""

from __future__ import annotations

from typing import Any

from copilot.config import StorageConfig


def fsspec_options(config: StorageConfig, concurrency: int) -> dict[str, Any]:
    """fsspec's HTTP filesystem passes its keyword arguments to every aiohttp request:
    a private CA goes in as an SSL context that trusts it besides the system's."""
    if not config.ca_bundle:
        return {}
    import ssl

    context = ssl.create_default_context()
    context.load_verify_locations(cadata=config.ca_certificates())
    return {"ssl": context}
