"""What a model does in the call rule (:mod:`leukview.core.calls`): one word per model.

A leaf module: the sidecar (:mod:`leukview.core.models`) and the run record
(:mod:`leukview.core.runs`) both read it, and neither imports the other for it.
"""

from __future__ import annotations

__all__ = ["ROLES", "model_role"]

#: What a model does in the call rule (:mod:`leukview.core.calls`), in the order models are read:
#: the type model makes the call, a refining model re-decides some of its classes, a flag model
#: (one positive class) may override it.
ROLES = ("type", "refine", "flag")


def model_role(positive_class: str | None, refines: list[str] | None) -> str:
    """``"flag"`` with a positive class, ``"refine"`` with classes to re-decide, else ``"type"``."""
    return "flag" if positive_class else "refine" if refines else "type"

