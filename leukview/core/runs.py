"""Which model ran on an image, and where: the record every call and count is read against.

Apart from :mod:`leukview.core.analysis` so that the call rule
(:mod:`leukview.core.calls`), which the analysis uses, can name it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelRun:
    """Which model ran on an image, and where."""

    name: str
    version: str
    provider: str
    classes: list[str] = field(default_factory=list)
    positive_class: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "provider": self.provider,
            "classes": list(self.classes),
            "positive_class": self.positive_class,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelRun:
        return cls(
            name=data["name"],
            version=str(data.get("version", "")),
            provider=str(data.get("provider", "")),
            classes=list(data.get("classes", [])),
            positive_class=data.get("positive_class"),
        )
