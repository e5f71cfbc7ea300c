"""Comparing literals that went through download -> files -> sidecar.

Blob URIs change on the way (inputs live in one place, outputs are uploaded to
another), so blobs are compared by content; msgpack structs by decoded value.
"""

from __future__ import annotations

import math

import msgpack
from conftest import S3

from copilot.literals.types import MULTIPART


def _key(s3: S3, uri: str) -> str:
    prefix = f"s3://{s3.bucket}/"
    assert uri.startswith(prefix), uri
    return uri[len(prefix) :]


def _tree(s3: S3, uri: str) -> dict[str, bytes]:
    base = _key(s3, uri).rstrip("/") + "/"
    return {k[len(base) :]: s3.get(k) for k in s3.keys(base)}


def assert_equivalent(s3: S3, want, got, lt, where: str = "value") -> None:
    which = lt.WhichOneof("type")
    if which == "union_type":
        assert got.scalar.WhichOneof("value") == "union", where
        w = want.scalar.union
        g = got.scalar.union
        assert g.type == w.type, f"{where}: variant {g.type} != {w.type}"
        assert_equivalent(s3, w.value, g.value, w.type, where)
        return
    if which == "collection_type":
        wl, gl = want.collection.literals, got.collection.literals
        assert len(wl) == len(gl), f"{where}: {len(gl)} elements, want {len(wl)}"
        for i, (w, g) in enumerate(zip(wl, gl, strict=True)):
            assert_equivalent(s3, w, g, lt.collection_type, f"{where}[{i}]")
        return
    if which == "map_value_type":
        assert set(want.map.literals) == set(got.map.literals), where
        for k in want.map.literals:
            assert_equivalent(
                s3, want.map.literals[k], got.map.literals[k], lt.map_value_type, f"{where}[{k}]"
            )
        return
    if which == "blob":
        wb, gb = want.scalar.blob, got.scalar.blob
        assert gb.metadata.type == lt.blob, where
        if lt.blob.dimensionality == MULTIPART:
            assert _tree(s3, gb.uri) == _tree(s3, wb.uri), where
        else:
            assert s3.get(_key(s3, gb.uri)) == s3.get(_key(s3, wb.uri)), where
        return
    if which == "structured_dataset_type":
        assert _tree(s3, got.scalar.structured_dataset.uri) == _tree(
            s3, want.scalar.structured_dataset.uri
        ), where
        return
    if which == "simple" and lt.simple == 9:  # STRUCT
        assert msgpack.unpackb(got.scalar.binary.value) == msgpack.unpackb(
            want.scalar.binary.value
        ), where
        return
    wp, gp = want.scalar.primitive, got.scalar.primitive
    if want.scalar.WhichOneof("value") == "primitive" and wp.WhichOneof("value") == "float_value":
        a, b = wp.float_value, gp.float_value
        assert (math.isnan(a) and math.isnan(b)) or a == b, f"{where}: {b} != {a}"
        return
    assert got.scalar == want.scalar, f"{where}: {got.scalar} != {want.scalar}"
