"""Defaults shared by the command line and the library (kept import-free for a fast start)."""

#: Transfers in flight at once, per run.
DEFAULT_CONCURRENCY = 32
#: Largest file accepted for a primitive output (upstream: 1024 bytes).
DEFAULT_MAX_PRIMITIVE_BYTES = 1 << 20
#: Largest file parsed whole: JSON/YAML documents, struct and binary values.
MAX_DOCUMENT_BYTES = 256 << 20
#: Where Flyte's output reader looks for a failure (flyteplugins ``ioutils.ErrorsSuffix``).
ERROR_DOCUMENT_NAME = "error.pb"
#: Where Flyte's output reader looks for the outputs.
OUTPUTS_DOCUMENT_NAME = "outputs.pb"
#: Completion markers the main container writes in the output dir: ``_ERROR``
#: (its own failure, whose content is the message), ``_SUCCESS`` and ``_START``
#: (for the ``file`` watcher).
ERROR_FILE = "_ERROR"
SUCCESS_FILE = "_SUCCESS"
START_FILE = "_START"
#: What a file or object being written is called until it is whole (renamed into
#: place, or left behind by a killed run): listings and readers skip such names.
TMP_SUFFIX = ".copilot-part"
#: How long cleaning up after a failed transfer may take (aborting a multipart
#: upload, removing a partial value): a warning-level matter, never the error.
CLEANUP_SECONDS = 5.0
#: Seconds a storage operation that keeps failing transiently is retried (after
#: ``--retries`` quick attempts, a store restarting or throttling is waited out).
DEFAULT_RETRY_SECONDS = 120.0

#: URI schemes that name another's store (``s3a://`` is ``s3://``): one spelling,
#: read by the configuration and by every URI.
SCHEME_ALIASES = {"s3a": "s3", "gcs": "gs", "az": "abfs", "abfss": "abfs"}
