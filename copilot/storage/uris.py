"""URIs: which backend, how to show one safely, how to join and split them."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

#: Other spellings of a protocol, as users and other tools write them.
ALIASES = {"s3a": "s3", "gcs": "gs", "az": "abfs", "abfss": "abfs"}


def protocol_of(uri: str) -> str:
    """The URI's scheme, ``file`` for plain paths."""
    if "://" not in uri:
        return "file"
    scheme = uri.split("://", 1)[0].lower()
    return ALIASES.get(scheme, scheme)


def display_uri(uri: str) -> str:
    """A URI safe to print: user info and query strings (signatures) removed."""
    if "://" not in uri:
        return uri
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri.split("?", 1)[0]
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def join_uri(prefix: str, *names: str) -> str:
    """Join names under a prefix with exactly one ``/`` between parts."""
    out = prefix.rstrip("/")
    for name in names:
        out = out + "/" + name.strip("/")
    return out


def basename_of(uri: str) -> str:
    """Last path segment of a URI: an http(s) URL's without its query and fragment,
    an object store's key as it is (a key may hold ``?`` and ``#``)."""
    if protocol_of(uri) in ("http", "https"):
        path = urlsplit(uri).path
    else:
        path = uri.split("://", 1)[1].partition("/")[2] if "://" in uri else uri
    return path.rstrip("/").rsplit("/", 1)[-1]
