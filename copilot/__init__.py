"""copilot: a data sidecar that gives any container typed inputs and outputs.

The public surface is small; everything else is private to its module:

- :func:`download` / :func:`sidecar`: the pod's two steps, with the protocol's
  failure policy (``error.pb``), a :class:`StepLimits` bound and a
  :class:`CancelToken`; they raise :class:`StepFailed`.
- :class:`DownloadOptions` / :class:`UploadOptions`: what each step reads and writes.
- :func:`download_inputs` / :func:`upload_outputs`: the same work without the
  policy (no error document, no deadline).
- :class:`Store`: storage access configured from :class:`StorageConfig`.
- :class:`CopilotError`: every expected failure, with a one-line message.

That, with the module functions in :data:`DOCUMENTED`, is the API (what
docs/python-api.md shows), stable within a major version; every other name
is the implementation and may change in any release.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from copilot.lazy import attribute_loader

__version__ = "0.1.0"

__all__ = [
    "CancelToken",
    "Cancelled",
    "StepFailed",
    "StepLimits",
    "download",
    "sidecar",
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

#: Module-level names outside ``__all__`` that the docs show: API too.
DOCUMENTED = (
    "copilot.interface.load_interface_file",
    "copilot.config.resolve_settings",
    "copilot.storage.Transfer",
    "copilot.watchers.make_watcher",
    "copilot.run.run_task",
    "copilot.task.load_task",
    "copilot.detect.detect",
)

if TYPE_CHECKING:
    from copilot.cancel import Cancelled, CancelToken
    from copilot.errors import CopilotError
    from copilot.inputs import DownloadResult, download_inputs
    from copilot.options import DownloadOptions, UploadOptions
    from copilot.outputs import UploadResult, upload_outputs
    from copilot.steps import StepFailed, StepLimits, download, sidecar
    from copilot.storage import Store
    from copilot.storage.config import StorageConfig

_LAZY = {
    "CancelToken": "copilot.cancel",
    "Cancelled": "copilot.cancel",
    "StepFailed": "copilot.steps",
    "StepLimits": "copilot.steps",
    "download": "copilot.steps",
    "sidecar": "copilot.steps",
    "CopilotError": "copilot.errors",
    "DownloadOptions": "copilot.options",
    "DownloadResult": "copilot.inputs",
    "download_inputs": "copilot.inputs",
    "Store": "copilot.storage",
    "StorageConfig": "copilot.storage.config",
    "UploadOptions": "copilot.options",
    "UploadResult": "copilot.outputs",
    "upload_outputs": "copilot.outputs",
}


# Lazy, so `copilot --help` does not pay for protobuf and fsspec imports.
__getattr__ = attribute_loader("copilot", _LAZY)
