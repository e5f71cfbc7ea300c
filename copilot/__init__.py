"""copilot: a data sidecar that gives any container typed inputs and outputs.

The public surface is small; everything else is private to its module:

- :func:`download_inputs` / :class:`DownloadOptions`: remote inputs -> files.
- :func:`upload_outputs` / :class:`UploadOptions`: output files -> uploads + outputs.pb.
- :class:`Store`: storage access configured from :class:`StorageConfig`.
- :class:`CopilotError`: every expected failure, with a one-line message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "CopilotError",
    "DownloadOptions",
    "DownloadResult",
    "Store",
    "StorageConfig",
    "download_inputs",
    "UploadOptions",
    "UploadResult",
    "upload_outputs",
]

if TYPE_CHECKING:
    from copilot.config import StorageConfig
    from copilot.download import DownloadOptions, DownloadResult, download_inputs
    from copilot.errors import CopilotError
    from copilot.storage import Store
    from copilot.upload import UploadOptions, UploadResult, upload_outputs

_LAZY = {
    "CopilotError": "copilot.errors",
    "DownloadOptions": "copilot.download",
    "DownloadResult": "copilot.download",
    "download_inputs": "copilot.download",
    "Store": "copilot.storage",
    "StorageConfig": "copilot.config",
    "UploadOptions": "copilot.upload",
    "UploadResult": "copilot.upload",
    "upload_outputs": "copilot.upload",
}


def __getattr__(name: str) -> Any:
    # Lazy, so `copilot --help` does not pay for protobuf and fsspec imports.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'copilot' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
