"""The suite keeps to loopback: structurally (a network namespace) where scripts/test
can make one, and by configuration everywhere (no credential chain falls through
to a cloud metadata address)."""

from __future__ import annotations

import os
import socket

import pytest

from copilot.config import StorageConfig


@pytest.mark.skipif(
    os.environ.get("COPILOT_TEST_IN_NETNS") != "1",
    reason="scripts/test made no network namespace here (needs root, unshare and ip)",
)
def test_the_suite_sees_only_loopback() -> None:
    assert [name for _, name in socket.if_nameindex()] == ["lo"]
    with pytest.raises(OSError):  # no route anywhere else: refused before any packet leaves
        socket.create_connection(("192.0.2.1", 9), timeout=1)


def test_botocores_metadata_switch_keeps_obstore_off_the_metadata_address() -> None:
    """object_store does not read AWS_EC2_METADATA_DISABLED; copilot points its
    instance-metadata look-up at a closed loopback port instead."""
    from copilot.storage.s3 import obstore_options as s3_options

    opts = s3_options(StorageConfig(kind="s3"), {"AWS_EC2_METADATA_DISABLED": "true"})
    assert opts["metadata_endpoint"].startswith("http://127.0.0.1:")
    assert "metadata_endpoint" not in s3_options(StorageConfig(kind="s3"), {})
