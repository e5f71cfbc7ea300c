"""Backend exceptions become one line naming the object, with the right kind."""

from __future__ import annotations

import asyncio
import socket

import pytest

from copilot.errors import NON_RECOVERABLE, RECOVERABLE
from copilot.storage import storage_error

URI = "s3://user:secret@bucket/key?token=abc"


@pytest.mark.parametrize("exc", [TimeoutError(), asyncio.TimeoutError()])
def test_a_timeout_is_named_and_recoverable(exc: BaseException) -> None:
    err = storage_error(exc, URI, "download")
    assert err.message == "download s3://bucket/key: timed out"
    assert err.kind == RECOVERABLE


def test_an_unresolvable_host_is_named_from_the_socket_error() -> None:
    class ConnectorError(Exception):
        host = "store.invalid"

    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as inner:
            raise ConnectorError("cannot connect") from inner
    except ConnectorError as exc:
        err = storage_error(exc, URI, "read")
    assert err.message == (
        "read s3://bucket/key: the store's host 'store.invalid' could not be resolved (DNS); "
        "check the endpoint"
    )
    assert err.kind == NON_RECOVERABLE


@pytest.mark.parametrize(
    "exc,said,kind",
    [
        (FileNotFoundError(2, "No such file"), "not found", NON_RECOVERABLE),
        (PermissionError(13, "Permission denied"), "access denied", NON_RECOVERABLE),
        (OSError("connection reset by peer"), "connection reset by peer", RECOVERABLE),
    ],
)
def test_os_errors_say_what_happened(exc: BaseException, said: str, kind: str) -> None:
    err = storage_error(exc, URI, "list")
    assert err.message == f"list s3://bucket/key: {said}"
    assert err.kind == kind
    assert "secret" not in err.message and "token" not in err.message
