"""Which model ran on an image, and where: the record every call and count is read against.

Apart from :mod:`leukview.core.analysis` so that the call rule
(:mod:`leukview.core.calls`), which the analysis uses, can name it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .roles import ROLES, model_role

if TYPE_CHECKING:
    from .models import Classifier

__all__ = ["ROLES", "ModelRun", "model_role"]


@dataclass
class ModelRun:
    """Which model ran on an image, and where."""

    name: str
    version: str
    provider: str
    classes: list[str] = field(default_factory=list)
    positive_class: str | None = None
    # the primary model's classes this model re-decides (a second stage), or None
    refines: list[str] | None = None

    @property
    def role(self) -> str:
        """See :func:`model_role`."""
        return model_role(self.positive_class, self.refines)

    @classmethod
    def of(cls, classifier: Classifier) -> ModelRun:
        """The record of a loaded classifier (its sidecar's identity and the provider it runs on)."""
        spec = classifier.spec
        return cls(spec.name, spec.version, classifier.provider, list(spec.classes), spec.positive_class,
                   None if spec.refines is None else list(spec.refines))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "provider": self.provider,
            "classes": list(self.classes),
            "positive_class": self.positive_class,
            **({"refines": list(self.refines)} if self.refines else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelRun:
        return cls(
            name=data["name"],
            version=str(data.get("version", "")),
            provider=str(data.get("provider", "")),
            classes=list(data.get("classes", [])),
            positive_class=data.get("positive_class"),
            refines=list(data["refines"]) if data.get("refines") else None,
        )
