"""Which stores a download may read for URIs that come from the data.

An input's blobs and offloaded literals name URIs that an upstream task wrote,
and an upstream container can plant any URI there: ``file:///proc/self/environ``
(the downloader's own credentials, copied into the input dir for the main
container to read), ``file:///etc/``, or the cloud metadata address.  So a
URI from the data is read only from a store the configuration serves:

- the primary store (``storage.type`` / ``stow.kind``), the ``storage.schemes``
  entries, the store ``--from-remote`` names, and http(s);
  a configuration that names no store serves every remote scheme through the
  environment's credentials, as before;
- ``file://`` (a local path) only when the store itself is local (the inputs
  document is a local file, ``storage.type: local``, or ``copilot run``'s
  embedded store), or ``--allow-local-inputs`` says so;
- never a link-local or metadata address (:func:`copilot.storage.uris.metadata_address`;
  the http client checks again when it connects, see :mod:`copilot.storage.http`).

``--from-remote`` itself is the orchestrator's, not the data's, and is not checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from copilot.errors import DataError
from copilot.storage.config import StorageConfig
from copilot.storage.uris import display_uri, metadata_address, protocol_of

_WEB = frozenset({"http", "https"})


@dataclass(frozen=True)
class InputSources:
    """The rule for one download: the schemes it reads (None: every remote one)
    and whether local files are among them."""

    schemes: frozenset[str] | None
    local: bool
    #: For messages: the store the inputs came from.
    home: str = ""

    @classmethod
    def for_download(
        cls, config: StorageConfig, from_remote: str, *, allow_local: bool = False
    ) -> InputSources:
        home = protocol_of(from_remote)
        primary = config.primary_protocol()
        local = allow_local or home == "file" or primary == "file"
        if not primary:
            return cls(None, local, home)
        served = {primary, home, *config.schemes, *_WEB}
        if config.redis:
            served.add("redis")
        return cls(frozenset(served), local, home)

    def check(self, uri: str, label: str) -> None:
        """Raise naming the input unless ``uri`` may be read."""
        protocol = protocol_of(uri)
        shown = display_uri(uri)
        if protocol == "file":
            if not self.local:
                raise DataError(
                    f"{label}: {shown} is a local file, but the inputs come from "
                    f"{self.home}://; a download reads local files only when its store is "
                    "local (--allow-local-inputs allows them)"
                )
            return
        if self.schemes is not None and protocol not in self.schemes:
            raise DataError(
                f"{label}: {shown}: {protocol}:// is not a store this configuration serves "
                f"({', '.join(sorted(self.schemes))}); add it under storage.schemes"
            )
        if protocol in _WEB:
            try:
                host = urlsplit(uri).hostname or ""
            except ValueError:
                host = ""
            if metadata_address(host):
                raise DataError(
                    f"{label}: {shown}: {host} is a link-local or cloud metadata address; "
                    "an input is never read from there"
                )
