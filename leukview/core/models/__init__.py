"""Classification models: sidecars, the installed-model registry, onnxruntime, inference.

A model is a folder ``models/<name>/`` holding ``model.onnx`` and its sidecar
``model.json``:

* :class:`ModelSpec` / :func:`read_sidecar`: the sidecar, validated;
* :class:`ModelRegistry` (and :func:`find_models`, :func:`load_models`):
  the models installed in a folder, listed with their problems, loaded by name;
  :meth:`ModelRegistry.load_usable` loads what it can and returns a
  :class:`ModelProblem` for each of the rest;
* :func:`select_providers`, :func:`physical_cores`, :func:`create_session`:
  how onnxruntime runs them (``LEUKVIEW_PROVIDER``, ``LEUKVIEW_THREADS``);
* :class:`Classifier`: one loaded, validated model: batched inference and
  class-activation maps.

The sidecar and the registry import without onnxruntime (slow to import);
the names that need it are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._registry import (
    ModelEntry,
    ModelProblem,
    ModelRegistry,
    default_models_dir,
    find_models,
    load_entry,
    load_models,
)
from ._spec import (
    MODEL_FILE,
    SCORES_KINDS,
    SIDECAR_FILE,
    SIDECAR_SCHEMA_VERSION,
    ModelSpec,
    read_sidecar,
)

if TYPE_CHECKING:
    from ._classifier import Classifier, sha256_of, softmax
    from ._graph import cam_is_exact
    from ._runtime import (
        CPU,
        CUDA,
        PROVIDER_ENV,
        THREADS_ENV,
        create_session,
        cuda_works,
        physical_cores,
        select_providers,
        session_options,
    )

# name -> private module, imported on first access (they import onnxruntime)
_LAZY = {
    "Classifier": "_classifier",
    "sha256_of": "_classifier",
    "softmax": "_classifier",
    "cam_is_exact": "_graph",
    "CPU": "_runtime",
    "CUDA": "_runtime",
    "PROVIDER_ENV": "_runtime",
    "THREADS_ENV": "_runtime",
    "create_session": "_runtime",
    "cuda_works": "_runtime",
    "physical_cores": "_runtime",
    "select_providers": "_runtime",
    "session_options": "_runtime",
}

__all__ = [
    "CPU",
    "CUDA",
    "MODEL_FILE",
    "PROVIDER_ENV",
    "SCORES_KINDS",
    "SIDECAR_FILE",
    "SIDECAR_SCHEMA_VERSION",
    "THREADS_ENV",
    "Classifier",
    "ModelEntry",
    "ModelProblem",
    "ModelRegistry",
    "ModelSpec",
    "cam_is_exact",
    "create_session",
    "cuda_works",
    "default_models_dir",
    "find_models",
    "load_entry",
    "load_models",
    "physical_cores",
    "read_sidecar",
    "select_providers",
    "session_options",
    "sha256_of",
    "softmax",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
