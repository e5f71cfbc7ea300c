"""Small builders for flyteidl2 literals and types used across the tests."""

from __future__ import annotations

import base64

from flyteidl2.core import execution_pb2, interface_pb2, literals_pb2, types_pb2
from google.protobuf import struct_pb2

L = literals_pb2
T = types_pb2


def integer(v: int) -> L.Literal:
    lit = L.Literal()
    lit.scalar.primitive.integer = v
    return lit


def floating(v: float) -> L.Literal:
    lit = L.Literal()
    lit.scalar.primitive.float_value = v
    return lit


def string(v: str) -> L.Literal:
    lit = L.Literal()
    lit.scalar.primitive.string_value = v
    return lit


def boolean(v: bool) -> L.Literal:
    lit = L.Literal()
    lit.scalar.primitive.boolean = v
    return lit


def timestamp(text: str) -> L.Literal:
    lit = L.Literal()
    lit.scalar.primitive.datetime.FromJsonString(text)
    return lit


def duration_ns(ns: int) -> L.Literal:
    lit = L.Literal()
    lit.scalar.primitive.duration.FromNanoseconds(ns)
    return lit


def empty_primitive() -> L.Literal:
    lit = L.Literal()
    lit.scalar.primitive.SetInParent()
    return lit


def none() -> L.Literal:
    lit = L.Literal()
    lit.scalar.none_type.SetInParent()
    return lit


def error(message: str) -> L.Literal:
    lit = L.Literal()
    lit.scalar.error.message = message
    lit.scalar.error.failed_node_id = "n0"
    return lit


def binary(data: bytes, tag: str = "msgpack") -> L.Literal:
    lit = L.Literal()
    lit.scalar.binary.value = data
    lit.scalar.binary.tag = tag
    return lit


def generic(obj: dict) -> L.Literal:
    s = struct_pb2.Struct()
    s.update(obj)
    lit = L.Literal()
    lit.scalar.generic.CopyFrom(s)
    return lit


def union(inner: L.Literal, variant: T.LiteralType) -> L.Literal:
    lit = L.Literal()
    lit.scalar.union.value.CopyFrom(inner)
    lit.scalar.union.type.CopyFrom(variant)
    return lit


def blob(uri: str, *, multipart: bool = False, fmt: str = "") -> L.Literal:
    lit = L.Literal()
    lit.scalar.blob.uri = uri
    lit.scalar.blob.metadata.type.format = fmt
    lit.scalar.blob.metadata.type.dimensionality = (
        T.BlobType.MULTIPART if multipart else T.BlobType.SINGLE
    )
    return lit


def schema(uri: str) -> L.Literal:
    lit = L.Literal()
    lit.scalar.schema.uri = uri
    lit.scalar.schema.type.SetInParent()
    return lit


def structured_dataset(uri: str, fmt: str = "parquet") -> L.Literal:
    lit = L.Literal()
    lit.scalar.structured_dataset.uri = uri
    lit.scalar.structured_dataset.metadata.structured_dataset_type.format = fmt
    return lit


def collection(*items: L.Literal) -> L.Literal:
    lit = L.Literal()
    lit.collection.SetInParent()
    for item in items:
        lit.collection.literals.add().CopyFrom(item)
    return lit


def mapping(**items: L.Literal) -> L.Literal:
    return mapping_of(items)


def mapping_of(items: dict[str, L.Literal]) -> L.Literal:
    lit = L.Literal()
    lit.map.SetInParent()
    for key, item in items.items():
        lit.map.literals[key].CopyFrom(item)
    return lit


def offloaded(uri: str, inferred: T.LiteralType | None = None) -> L.Literal:
    lit = L.Literal()
    lit.offloaded_metadata.uri = uri
    if inferred is not None:
        lit.offloaded_metadata.inferred_type.CopyFrom(inferred)
    return lit


def literal_map(items: dict[str, L.Literal]) -> L.LiteralMap:
    lm = L.LiteralMap()
    for key, item in items.items():
        lm.literals[key].CopyFrom(item)
    return lm


# -- types -------------------------------------------------------------------


def simple(kind: int) -> T.LiteralType:
    return T.LiteralType(simple=kind)


def blob_type(*, multipart: bool = False, fmt: str = "") -> T.LiteralType:
    return T.LiteralType(
        blob=T.BlobType(
            format=fmt,
            dimensionality=T.BlobType.MULTIPART if multipart else T.BlobType.SINGLE,
        )
    )


def list_of(t: T.LiteralType) -> T.LiteralType:
    return T.LiteralType(collection_type=t)


def dict_of(t: T.LiteralType) -> T.LiteralType:
    return T.LiteralType(map_value_type=t)


def union_of(*variants: T.LiteralType) -> T.LiteralType:
    return T.LiteralType(union_type=T.UnionType(variants=list(variants)))


def enum_of(*values: str) -> T.LiteralType:
    return T.LiteralType(enum_type=T.EnumType(values=list(values)))


def variable_map(types: dict[str, T.LiteralType]) -> interface_pb2.VariableMap:
    return interface_pb2.VariableMap(
        variables=[
            interface_pb2.VariableEntry(key=k, value=interface_pb2.Variable(type=t))
            for k, t in types.items()
        ]
    )


def b64(message) -> str:
    return base64.b64encode(message.SerializeToString()).decode("ascii")


def read_error_document(data: bytes) -> execution_pb2.ContainerError:
    doc = execution_pb2.ErrorDocument()
    doc.ParseFromString(data)
    return doc.error
