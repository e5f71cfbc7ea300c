"""What each step is asked to do: the download's and the sidecar's options.

Plain data mirroring the ``download`` and ``sidecar`` commands' flags (a library
caller fills them in directly); ``validate`` checks what is required and makes
each enumerated field a member of its type, whatever spelling it came in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flyteidl2.core import interface_pb2

from copilot.constants import (
    DEFAULT_MAX_PRIMITIVE_BYTES,
    ERROR_DOCUMENT_NAME,
    OUTPUTS_DOCUMENT_NAME,
)
from copilot.errors import UsageError
from copilot.limits import OutputLimits
from copilot.modes import (
    DownloadMode,
    FileLayout,
    MetadataFormat,
    StructEncoding,
    UploadMode,
)


def _require(step: str, **flags: str) -> None:
    """Each flag given a value, in order; the first missing one is the error."""
    for name, value in flags.items():
        if not value:
            raise UsageError(f"{step}: --{name.replace('_', '-')} is required")


@dataclass
class DownloadOptions:
    """What to fetch and how; mirrors the ``download`` command's flags."""

    from_remote: str
    to_local_dir: str
    format: MetadataFormat = MetadataFormat.JSON
    mode: DownloadMode = DownloadMode.DOWNLOAD_EAGER
    layout: FileLayout = FileLayout.DIRECT
    interface: interface_pb2.VariableMap | None = None
    #: Check each File against the SHA-256 its literal carries, as it downloads.
    verify_inputs: bool = True
    #: Read local files an input names even when the store is not local
    #: (``--allow-local-inputs``; see :mod:`copilot.sources`).
    allow_local_inputs: bool = False

    def validate(self) -> None:
        """Required fields present; enum fields made members (text is accepted, any case)."""
        _require("download", from_remote=self.from_remote, to_local_dir=self.to_local_dir)
        self.format = MetadataFormat.parse(self.format, "download: --format")
        self.mode = DownloadMode.parse(self.mode, "download: --download-mode")
        self.layout = FileLayout.parse(self.layout, "download: --file-input-layout")


@dataclass
class UploadOptions:
    """What to read and where to put it; mirrors the ``sidecar`` command's flags."""

    from_local_dir: str
    to_output_prefix: str
    to_raw_output: str = ""
    interface: interface_pb2.TypedInterface | None = None
    format: MetadataFormat = MetadataFormat.JSON
    mode: UploadMode = UploadMode.UPLOAD_ON_EXIT
    meta_output_name: str = OUTPUTS_DOCUMENT_NAME
    err_output_name: str = ERROR_DOCUMENT_NAME
    max_primitive_bytes: int = DEFAULT_MAX_PRIMITIVE_BYTES
    struct_encoding: StructEncoding = StructEncoding.MSGPACK
    #: Content hash recorded on uploaded File / Dir outputs (literals/digests.py): sha256 or none.
    hash_outputs: str = "sha256"
    #: Bounds on what the outputs may hold (copilot.limits); none by default.
    limits: OutputLimits = field(default_factory=OutputLimits)

    def validate(self) -> None:
        """Required fields present; enum fields made members (text is accepted, any case)."""
        if self.hash_outputs not in ("sha256", "none"):
            raise UsageError(
                f"sidecar: --hash-outputs: expected sha256 or none, found {self.hash_outputs!r}"
            )
        _require(
            "sidecar", from_local_dir=self.from_local_dir, to_output_prefix=self.to_output_prefix
        )
        self.format = MetadataFormat.parse(self.format, "sidecar: --format")
        self.mode = UploadMode.parse(self.mode, "sidecar: --upload-mode")
        self.struct_encoding = StructEncoding.parse(
            self.struct_encoding, "sidecar: --struct-encoding"
        )

    def declared(self) -> list[tuple[str, interface_pb2.Variable]]:
        if self.interface is None:
            return []
        return [(e.key, e.value) for e in self.interface.outputs.variables]
