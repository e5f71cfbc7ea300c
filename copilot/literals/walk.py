"""One walk over a literal tree, for every pass that visits or rewrites nodes.

Collections, maps and union values are descended into; each node comes with a
label that names it in messages (``input 'reads'[2]``, ``output 'm'['k']``)
and a state its parent's visit returned (a depth, say).  A visit may rewrite
its node in place (``CopyFrom``): the walk then descends into the new content.
The walk is iterative, so no tree is too deep for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from flyteidl2.core import literals_pb2

S = TypeVar("S")


def children(lit: literals_pb2.Literal, label: str) -> Iterator[tuple[Any, str]]:
    """The literals directly under ``lit``, each with its label."""
    which = lit.WhichOneof("value")
    if which == "collection":
        for i, item in enumerate(lit.collection.literals):
            yield item, f"{label}[{i}]"
    elif which == "map":
        for key, item in lit.map.literals.items():
            yield item, f"{label}[{key!r}]"
    elif which == "scalar" and lit.scalar.WhichOneof("value") == "union":
        yield lit.scalar.union.value, label


def walk(
    lit: literals_pb2.Literal,
    label: str,
    visit: Callable[[Any, str, S], S],
    state: S,
) -> None:
    """Call ``visit(node, label, state)`` on every node, parents before children.

    What a visit returns is the state its children are visited with.  The stack
    holds one iterator per level, not every pending node: a 100,000-element list
    costs one label at a time, not 100,000 of them at once.
    """
    stack: list[tuple[Iterator[tuple[Any, str]], S]] = [
        (children(lit, label), visit(lit, label, state))
    ]
    while stack:
        kids, kid_state = stack[-1]
        for node, node_label in kids:
            stack.append((children(node, node_label), visit(node, node_label, kid_state)))
            break
        else:
            stack.pop()


def blobs(lit: literals_pb2.Literal, label: str = "") -> Iterator[tuple[str, Any, str]]:
    """Every blob-like scalar under ``lit``: (kind, the blob/schema/dataset message, label)."""
    found: list[tuple[str, Any, str]] = []

    def visit(node: Any, node_label: str, _: None) -> None:
        if node.WhichOneof("value") == "scalar":
            kind = node.scalar.WhichOneof("value")
            if kind in ("blob", "schema", "structured_dataset"):
                found.append((kind, getattr(node.scalar, kind), node_label))

    walk(lit, label, visit, None)
    return iter(found)
