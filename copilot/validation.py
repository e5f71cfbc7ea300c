"""What a step would make of its data, with nothing moved: ``copilot validate``'s
result, for outputs (:func:`copilot.outputs.validate_outputs`) and inputs
(:func:`copilot.inputs.validate_inputs`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flyteidl2.core import literals_pb2


@dataclass
class Validation:
    """The literals a step would produce and every problem found (not just the first)."""

    literals: literals_pb2.LiteralMap
    problems: list[str]
    #: Planned upload URI -> the local file or directory it would come from.
    sources: dict[str, str] = field(default_factory=dict)

    def values(self, order: list[str]) -> dict[str, Any]:
        """Plain values in the interface's ``order``, each blob shown as the local
        path it would come from."""
        from copilot.documents import substitute
        from copilot.literals.to_files import python_value

        found = self.literals.literals
        return {k: substitute(python_value(found[k]), self.sources) for k in order if k in found}
