"""URIs: which backend, how to show one safely, how to join and split them."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from copilot.constants import SCHEME_ALIASES

#: Other spellings of a protocol, as users and other tools write them.
ALIASES = SCHEME_ALIASES


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


#: Addresses no URI from data may reach: link-local networks, where clouds answer
#: instance-metadata requests with credentials (169.254.169.254 on AWS, GCP and
#: Azure; fd00:ec2::254 on AWS over IPv6; 100.100.100.200 on Alibaba Cloud).
_METADATA_NETWORKS = ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32")
#: Host names of metadata services, refused before any look-up.
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)


def metadata_address(host: str) -> bool:
    """Whether ``host`` (an IP address or a name) is a link-local or cloud metadata
    address: never reached for data an input names."""
    import ipaddress

    name = host.strip("[]").rstrip(".").lower()
    if name in METADATA_HOSTS:
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(net) for net in _METADATA_NETWORKS)
