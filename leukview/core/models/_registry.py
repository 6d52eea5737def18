"""The installed models: the one place that lists, finds and loads them.

The models folder (:func:`default_models_dir`) holds one folder per model.
Every sub-folder holding a ``model.onnx``, a ``model.json`` or any ``.onnx``
file is listed, as a :class:`ModelEntry`; one that cannot be used (a graph
without its sidecar, a sidecar that does not validate, a sidecar without its
graph, a graph that is no regular file or is empty, two sidecars giving one
name) is listed with its problems rather than left out, so that the GUI can
show it as damaged and the CLI can say why it refuses it. So are a loose
``.onnx`` file in the models folder and a models folder that is itself a
model folder.

A ``model.onnx`` (or ``model.json``) that is a link to a regular file is
followed wherever the file lies (a shared store, git-annex): the graph's
bytes must match the sidecar's sha256 all the same. A link to anything else
(a device such as ``/dev/zero``, a FIFO, a folder, nothing, itself) is
refused without being opened, and so is a file over
:data:`~leukview.core.models._spec.MAX_MODEL_BYTES`.

:meth:`ModelRegistry.load_usable` loads every usable model
and returns a :class:`ModelProblem` for each of the others. Listing reads
the sidecars only: the ONNX files are hashed and
checked when a model is loaded
(:meth:`~leukview.core.models.Classifier.load`), and onnxruntime is not
imported before then.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelError
from ..paths import models_dir as _paths_models_dir
from ._spec import (
    MAX_MODEL_BYTES,
    MODEL_FILE,
    SIDECAR_FILE,
    ModelSpec,
    check_regular_file,
    read_sidecar,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # onnxruntime is slow to import; listing models must not need it
    from ._classifier import Classifier


def default_models_dir() -> Path:
    """The models folder: ``$LEUKVIEW_MODELS``, the bundle's ``models/``, or the shipped one.

    See :func:`leukview.core.paths.models_dir`.
    """
    return _paths_models_dir()


@dataclass(frozen=True)
class ModelEntry:
    """One folder of the models folder, its sidecar read (the ONNX graph not loaded).

    Attributes
    ----------
    folder : Path
        The model's folder.
    spec : ModelSpec or None
        The sidecar; None when it is missing or does not validate.
    problems : tuple of str
        Why the model cannot be loaded, for a person; empty when it can be
        tried (:meth:`Classifier.load` still checks the graph and its sha256).
    """

    folder: Path
    spec: ModelSpec | None
    problems: tuple[str, ...] = ()

    def __repr__(self) -> str:
        state = "ok" if self.ok else "; ".join(self.problems)
        return f"ModelEntry({self.name!r} {self.version or '-'}, {state})"

    @property
    def name(self) -> str:
        """The folder's name: what ``--model`` and the settings store.

        The sidecar's own name (``spec.name``) is usually the same, and is accepted by
        :meth:`ModelRegistry.find` too.
        """
        return self.folder.name

    @property
    def name_in_sidecar(self) -> str | None:
        """The sidecar's ``name`` (what results are filed under), None without a readable sidecar."""
        return self.spec.name if self.spec is not None else None

    @property
    def version(self) -> str:
        """The sidecar's version, '' without a readable sidecar."""
        return self.spec.version if self.spec is not None else ""

    @property
    def ok(self) -> bool:
        """Whether the model can be tried: a valid sidecar beside its graph."""
        return self.spec is not None and not self.problems

    def matches(self, name: str) -> bool:
        """Whether ``name`` is this model's folder name or its sidecar's name."""
        return name == self.name or (self.spec is not None and name == self.spec.name)

    @classmethod
    def read(cls, folder: str | os.PathLike[str]) -> ModelEntry:
        """Inspect one model folder: its files' presence and kind, its sidecar.

        The graph is only looked at (a regular file, not empty, not over
        :data:`MAX_MODEL_BYTES`); it is read and checked by
        :meth:`Classifier.load`.
        """
        folder = Path(folder)
        try:
            names = sorted(p.name for p in folder.iterdir())
        except OSError as exc:
            return cls(folder, None, (f"cannot read this folder ({exc.strerror or exc})",))
        has_graph = MODEL_FILE in names
        others = [n for n in names if n.lower().endswith(".onnx") and n != MODEL_FILE]
        hint = f" (found {', '.join(others[:3])})" if others else ""
        if SIDECAR_FILE not in names:
            if not has_graph:
                return cls(
                    folder,
                    None,
                    (
                        f"no {MODEL_FILE} or {SIDECAR_FILE} here{hint}: a model folder holds "
                        f"{MODEL_FILE} and its sidecar {SIDECAR_FILE}",
                    ),
                )
            return cls(folder, None, (f"{MODEL_FILE} without its sidecar {SIDECAR_FILE}",))
        try:
            spec = read_sidecar(folder / SIDECAR_FILE)
        except ModelError as exc:
            return cls(folder, None, (exc.reason,))
        if not has_graph:
            return cls(folder, spec, (f"{MODEL_FILE} not found beside its sidecar{hint}",))
        try:
            if check_regular_file(folder / MODEL_FILE, MAX_MODEL_BYTES, MODEL_FILE) == 0:
                return cls(folder, spec, (f"{MODEL_FILE} is empty (0 bytes)",))
        except ModelError as exc:
            return cls(folder, spec, (exc.reason,))
        return cls(folder, spec)


class ModelRegistry:
    """The models installed in one folder.

    The folder is read afresh by every call, so a model copied in (or
    removed) while the app runs is seen at the next one.

    :meth:`entries` lists every model folder, problems included; :meth:`find`
    finds one by name. Two ways to load:

    * :meth:`load_usable` (what a run wants): every usable model loads, and
      each other one, or each name that is not installed, comes back as a
      :class:`ModelProblem` (folder, name if known, reason), so that one
      broken model never stops a run::

          classifiers, problems = ModelRegistry(folder).load_usable(names)
          for problem in problems:
              print(f"warning: {problem}")  # model 'NAME' (FOLDER): REASON

    * :meth:`load` (all or nothing): the first problem raises a
      :class:`~leukview.core.errors.ModelError`.

    Parameters
    ----------
    models_dir : path, optional
        Defaults to :func:`default_models_dir` (resolved when the registry is made).

    Attributes
    ----------
    root : Path
        The models folder.
    """

    def __init__(self, models_dir: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(models_dir) if models_dir is not None else default_models_dir()

    def __repr__(self) -> str:
        return f"ModelRegistry({os.fspath(self.root)!r})"

    def entries(self) -> list[ModelEntry]:
        """Every model folder, usable or not, sorted by folder name.

        Returns
        -------
        entries : list of ModelEntry
            Empty when the models folder does not exist. Sub-folders with
            neither ``model.onnx`` nor ``model.json`` nor any ``.onnx`` file
            are not models and are not listed. Two sidecars giving one ``name`` (whose results would
            share their columns) make both entries unusable, each with the
            problem "duplicate model name ..., also in FOLDER".

        Raises
        ------
        ModelError
            If the models folder exists but cannot be read.
        """
        if not self.root.is_dir():
            return []
        try:
            children = sorted(self.root.iterdir(), key=lambda p: p.name)
        except OSError as exc:
            raise ModelError(
                f"cannot read the models folder ({exc.strerror or exc})", self.root
            ) from exc
        found = []
        if any(os.path.lexists(self.root / name) for name in (MODEL_FILE, SIDECAR_FILE)):
            # LEUKVIEW_MODELS set to one model's folder instead of the folder of folders
            found.append(
                ModelEntry(
                    self.root,
                    None,
                    (
                        "this models folder is itself a model folder: the models folder holds "
                        f"one folder per model (use {self.root.parent})",
                    ),
                )
            )
        for child in children:
            if child.is_dir():
                if _looks_like_a_model(child):
                    found.append(ModelEntry.read(child))
            elif child.suffix.lower() == ".onnx" and child.name != MODEL_FILE:
                found.append(ModelEntry(child, None, (_LOOSE,)))
        return _mark_duplicates(found)

    def find(self, name: str) -> ModelEntry:
        """The entry of a model, by folder name, else by sidecar name.

        Raises
        ------
        ModelError
            If no model has that name; the message lists those installed.
        """
        return self._find(self.entries(), name)

    def _find(self, entries: Sequence[ModelEntry], name: str) -> ModelEntry:
        found = next((e for e in entries if e.name == name), None)
        if found is None:  # maybe the sidecar's name differs from its folder's
            found = next((e for e in entries if e.matches(name)), None)
        if found is None:
            installed = ", ".join(e.name for e in entries) or "none"
            raise ModelError(f"no model named '{name}' (installed: {installed})", self.root)
        return found

    def load(
        self, names: Sequence[str] | None = None, providers: Sequence[str] | None = None
    ) -> list[Classifier]:
        """Load installed models.

        Parameters
        ----------
        names : sequence of str, optional
            Folder names (or sidecar names) to load, in this order; every
            listed model when None.
        providers : sequence of str, optional
            Chosen once by :func:`~leukview.core.models.select_providers` when None.

        Returns
        -------
        classifiers : list of Classifier

        Raises
        ------
        ModelError
            If a name is not installed (the message lists those that are), or
            a model has a problem or fails to load.
        """
        chosen = self.entries() if names is None else [self.find(name) for name in names]
        if not chosen:
            return []
        from ._runtime import select_providers

        if providers is None:
            providers = select_providers()
        return [load_entry(entry, providers) for entry in chosen]

    def load_usable(
        self, names: Sequence[str] | None = None, providers: Sequence[str] | None = None
    ) -> tuple[list[Classifier], list[ModelProblem]]:
        """Load every usable model, and say why each of the others cannot be used.

        One broken model never stops the others: a run goes on with what loads
        and reports the rest (the CLI may still refuse to run when a model it
        was asked for by name is among them).

        Parameters
        ----------
        names : sequence of str, optional
            Folder names (or sidecar names) to load, in this order, each model
            once however often it is named; every listed model when None.
        providers : sequence of str, optional
            Chosen once by :func:`~leukview.core.models.select_providers`
            when None (and only when there is something to load).

        Returns
        -------
        classifiers : list of Classifier
            The models that loaded, in the order listed or asked for.
        problems : list of ModelProblem
            In the same order: with ``names``, one for each name that is not
            installed, names a damaged model or fails to load; without, one for
            each listed model that has a problem or fails to load.
        """
        entries = self.entries()
        # in order: an entry to load (with the name it was asked for by), or a name not installed
        chosen: list[tuple[ModelEntry, str | None] | ModelProblem] = []
        if names is None:
            chosen.extend((entry, None) for entry in entries)
        else:
            seen: set[Path] = set()
            for name in names:
                try:
                    entry = self._find(entries, name)
                except ModelError as exc:
                    chosen.append(ModelProblem(self.root, name, exc.reason))
                    continue
                if entry.folder not in seen:  # asked twice, or by folder and by sidecar name
                    seen.add(entry.folder)
                    chosen.append((entry, name))
        if providers is None and any(
            not isinstance(item, ModelProblem) and not item[0].problems for item in chosen
        ):
            from ._runtime import select_providers

            providers = select_providers()
        classifiers: list[Classifier] = []
        problems: list[ModelProblem] = []
        for item in chosen:
            if isinstance(item, ModelProblem):
                problems.append(item)
                continue
            entry, asked = item
            try:
                classifiers.append(load_entry(entry, providers))
                continue
            except ModelError as exc:
                reason = exc.reason
            except MemoryError:
                reason = "not enough memory to load it"
            # a bug must not stop the other models either; its traceback is logged
            except Exception as exc:
                log.exception("loading the model in %s failed", entry.folder)
                reason = f"cannot be loaded ({type(exc).__name__}: {exc})"
            problems.append(ModelProblem(entry.folder, entry.name_in_sidecar or asked, reason))
        return classifiers, problems


_LOOSE = (
    f"a model file outside a model folder: put it in its own folder as {MODEL_FILE}, "
    f"with its sidecar {SIDECAR_FILE}"
)


def _looks_like_a_model(folder: Path) -> bool:
    """A sub-folder holding a model file or sidecar (even a broken link), or any .onnx file.

    An unreadable folder is listed too (but not a hidden one: ``.git``, ``lost+found``...).
    """
    try:
        return any(
            p.name in (MODEL_FILE, SIDECAR_FILE) or p.name.lower().endswith(".onnx")
            for p in folder.iterdir()
        )
    except OSError:
        return not folder.name.startswith(".") and folder.name != "lost+found"


def _mark_duplicates(entries: list[ModelEntry]) -> list[ModelEntry]:
    """Give every entry whose sidecar name another sidecar gives too that problem."""
    folders: dict[str, list[Path]] = {}
    for entry in entries:
        if entry.spec is not None:
            folders.setdefault(entry.spec.name, []).append(entry.folder)
    marked = []
    for entry in entries:
        shared = folders.get(entry.spec.name, []) if entry.spec is not None else []
        if len(shared) > 1:
            others = ", ".join(os.fspath(f) for f in shared if f != entry.folder)
            problem = f"duplicate model name '{entry.name_in_sidecar}', also in {others}"
            entry = replace(entry, problems=(*entry.problems, problem))
        marked.append(entry)
    return marked


@dataclass(frozen=True)
class ModelProblem:
    """A model that cannot be used, and why (:meth:`ModelRegistry.load_usable`).

    Attributes
    ----------
    folder : Path
        The model's folder (the file, for a loose ``.onnx``); the models
        folder for a name that is not installed.
    name : str or None
        The model's sidecar name, else the name it was asked for by; None
        when neither is known (a listed folder without a readable sidecar).
    reason : str
        What is wrong, for a person.
    """

    folder: Path
    name: str | None
    reason: str

    @property
    def label(self) -> str:
        """The name, else the folder's name: how to call the model in a message."""
        return self.name or self.folder.name

    @property
    def error(self) -> ModelError:
        """The problem as the error :meth:`ModelRegistry.load` would raise."""
        return ModelError(self.reason, self.folder)

    def __str__(self) -> str:
        return f"model '{self.label}' ({os.fspath(self.folder)}): {self.reason}"


def load_entry(entry: ModelEntry, providers: Sequence[str] | None = None) -> Classifier:
    """Load one listed model.

    Raises
    ------
    ModelError
        The entry's first problem, or what :meth:`Classifier.load` finds.
    """
    if entry.problems:
        raise ModelError(entry.problems[0], entry.folder)
    from ._classifier import Classifier

    return Classifier.load(entry.folder, providers)


def find_models(models_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Folders of the installed models that have a sidecar, sorted by name.

    Parameters
    ----------
    models_dir : path, optional
        Defaults to :func:`default_models_dir`.

    Returns
    -------
    folders : list of Path
        Empty when the folder does not exist. For every folder, problems
        included, see :meth:`ModelRegistry.entries`.
    """
    return [
        e.folder for e in ModelRegistry(models_dir).entries() if (e.folder / SIDECAR_FILE).is_file()
    ]


def load_models(
    names: Sequence[str] | None = None,
    models_dir: str | os.PathLike[str] | None = None,
    providers: Sequence[str] | None = None,
) -> list[Classifier]:
    """Load installed models: :meth:`ModelRegistry.load` of ``models_dir``.

    Parameters
    ----------
    names : sequence of str, optional
        Folder names (or sidecar names) to load, in this order; every
        installed model when None.
    models_dir : path, optional
        Defaults to :func:`default_models_dir`.
    providers : sequence of str, optional
        Chosen once by :func:`~leukview.core.models.select_providers` when None.

    Returns
    -------
    classifiers : list of Classifier

    Raises
    ------
    ModelError
        If a name is not installed, or a model has a problem or fails to load.
    """
    return ModelRegistry(models_dir).load(names, providers)
