"""Defaults shared by the command line and the library (kept import-free for a fast start)."""

#: Transfers in flight at once, per run.
DEFAULT_CONCURRENCY = 32
#: Largest file accepted for a primitive output (upstream: 1024 bytes).
DEFAULT_MAX_PRIMITIVE_BYTES = 1 << 20
#: Largest file parsed whole: JSON/YAML documents, struct and binary values.
MAX_DOCUMENT_BYTES = 256 << 20
