"""What an atlas holds once open: rows, search, thumbnails, its summary, and saving.

:class:`AtlasBase` is the part of :class:`~leukview.core.atlas.Atlas` that
reads; ``Atlas`` (in ``_atlas.py``) adds loading, creating, growing and the
faiss index.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._embed import decode_thumbnail
from ._format import (
    ATLAS_FILE,
    CELLS_FILE,
    EMBEDDINGS_FILE,
    OFFSETS_FILE,
    THUMBNAILS_FILE,
    AtlasEntry,
    AtlasError,
    AtlasSource,
    _model_identity,
    _now,
    _npy_bytes,
    _write,
)
from ._search import ExactSearch, FaissIndex, Neighbour, normalize_rows

if TYPE_CHECKING:
    from ..models import Classifier, ModelSpec


class AtlasBase:
    """The state and the read side of an :class:`~leukview.core.atlas.Atlas`.

    Not built directly: use ``Atlas.load`` or ``Atlas.create``.
    """

    def __init__(
        self,
        folder: Path,
        meta: dict[str, Any],
        entries: list[AtlasEntry],
        embeddings: np.ndarray,
        offsets: np.ndarray,
    ) -> None:
        self.folder = folder
        self.meta = meta
        self._entries = entries
        self._stored = embeddings
        self._offsets = offsets
        self._row = {e.atlas_id: i for i, e in enumerate(entries)}
        self._hashes = {e.hash: e.atlas_id for e in entries}
        self._exact: ExactSearch | None = None
        self._index: FaissIndex | None = None

    # -- properties ---------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, atlas_id: object) -> bool:
        return atlas_id in self._row

    def __repr__(self) -> str:
        model = self.meta["model"]
        return f"Atlas({str(self.folder)!r}, {len(self)} cells, {model['name']} {model['version']})"

    @property
    def dim(self) -> int:
        """Embedding length D."""
        return int(self.meta["dim"])

    @property
    def model_sha256(self) -> str:
        """sha256 of the ``model.onnx`` whose features made the embeddings."""
        return str(self.meta["model"]["sha256"])

    @property
    def entries(self) -> tuple[AtlasEntry, ...]:
        """Every cell, in row order (row i = embedding i)."""
        return tuple(self._entries)

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self._entries]

    @property
    def embeddings(self) -> np.ndarray:
        """(N, D) float32 unit rows (a copy for a memory-mapped atlas)."""
        return np.asarray(self._stored, np.float32)

    @property
    def sources(self) -> dict[str, AtlasSource]:
        return {
            name: AtlasSource(name, s.get("licence", ""), s.get("attribution", ""), s.get("note", ""))
            for name, s in self.meta["sources"].items()
        }

    @property
    def has_index(self) -> bool:
        """Whether searches go through a faiss index (else exact numpy search)."""
        return self._index is not None

    def entry(self, atlas_id: str) -> AtlasEntry:
        """The record of one atlas cell; KeyError for an unknown id."""
        try:
            return self._entries[self._row[atlas_id]]
        except KeyError:
            raise KeyError(f"no cell {atlas_id!r} in this atlas") from None

    def embedding(self, atlas_id: str) -> np.ndarray:
        """The stored embedding (D,) float32 of one cell: search with it (and
        ``exclude={atlas_id}``) for the cells most like an atlas cell, as in a quiz."""
        return np.asarray(self._stored[self.row(atlas_id)], np.float32)

    def ids_by_group(self) -> dict[str, list[str]]:
        """Atlas ids per non-empty group (subject, slide, session), e.g. to leave one out."""
        groups: dict[str, list[str]] = {}
        for e in self._entries:
            if e.group:
                groups.setdefault(e.group, []).append(e.atlas_id)
        return groups

    def row(self, atlas_id: str) -> int:
        """Row of a cell in ``embeddings`` and ``entries``; KeyError for an unknown id."""
        try:
            return self._row[atlas_id]
        except KeyError:
            raise KeyError(f"no cell {atlas_id!r} in this atlas") from None

    def check_model(self, model: Classifier | ModelSpec) -> None:
        """Raise AtlasError unless the atlas's embeddings were made by this model."""
        spec, model_dim = _model_identity(model)
        made = self.meta["model"]
        if (spec.sha256 or "").strip().lower() != self.model_sha256:
            raise AtlasError(
                f"atlas was made with {made['name']} {made['version']} (model sha256 "
                f"{self.model_sha256[:12]}...), not with the loaded {spec.name} {spec.version} "
                f"({(spec.sha256 or '?')[:12]}...): its embeddings mean nothing to this model; "
                "rebuild it (python -m training.atlas) or load the model it was made with",
                self.folder,
            )
        if model_dim is not None and model_dim != self.dim:
            raise AtlasError(
                f"atlas embeddings have {self.dim} dimensions, the model's features {model_dim}",
                self.folder,
            )

    # -- search -------------------------------------------------------------

    def search(
        self,
        embeddings: np.ndarray,
        k: int = 5,
        *,
        exclude: Sequence[Collection[str]] | None = None,
        exact: bool | None = None,
    ) -> list[list[Neighbour]]:
        """The k nearest atlas cells of each query, nearest first (cosine distance).

        Parameters
        ----------
        embeddings : ndarray of float, shape (M, D) or (D,)
            Queries, e.g. from :func:`embed_cells` (normalised here, so raw
            pooled features work too).
        k : int
            Neighbours per query; fewer when the atlas holds fewer cells
            (none for an empty atlas).
        exclude : sequence of collections of str, optional
            Per query, atlas ids never returned (the query cell itself, or
            every cell of its subject when evaluating).
        exact : bool, optional
            True: exact numpy search even when an index exists. None/False:
            the index when there is one, else exact.

        Returns
        -------
        neighbours : list of list of Neighbour
            One list per query.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        queries = np.asarray(embeddings, np.float32)
        if queries.ndim == 1:
            queries = queries[None]
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries must be (M, {self.dim}), got {np.shape(embeddings)}")
        if exclude is not None and len(exclude) != len(queries):
            raise ValueError(f"exclude has {len(exclude)} entries for {len(queries)} queries")
        queries = normalize_rows(np.nan_to_num(queries))
        rows = None
        if exclude is not None:
            rows = [{self._row[i] for i in banned if i in self._row} for banned in exclude]
        if self._index is not None and not exact:
            idx, dist = self._index.search(queries, k, rows)
        else:
            if self._exact is None:
                self._exact = ExactSearch(self._stored)
            idx, dist = self._exact.search(queries, k, rows)
        out: list[list[Neighbour]] = []
        for row_i, row_d in zip(idx, dist, strict=True):
            found = []
            for i, d in zip(row_i, row_d, strict=True):
                if i < 0:
                    continue
                entry = self._entries[int(i)]
                found.append(Neighbour(entry.atlas_id, entry.label, entry.source, float(d)))
            out.append(found)
        return out

    # -- thumbnails ---------------------------------------------------------

    def thumbnail(self, atlas_id: str) -> np.ndarray:
        """The stored thumbnail of one cell.

        Returns
        -------
        thumbnail : ndarray of uint8, shape (t, t, 3)
            RGB; t = ``meta['thumbnails']['size']``.

        Raises
        ------
        KeyError
            Unknown id.
        AtlasError
            The thumbnail file is damaged.
        """
        index = self.entry(atlas_id).thumbnail
        start, stop = int(self._offsets[index]), int(self._offsets[index + 1])
        path = self.folder / THUMBNAILS_FILE
        try:
            with path.open("rb") as handle:
                handle.seek(start)
                data = handle.read(stop - start)
        except OSError as exc:
            raise AtlasError(f"cannot read thumbnails ({exc.strerror or exc})", path) from exc
        image = decode_thumbnail(data) if len(data) == stop - start else None
        if image is None:
            raise AtlasError(f"thumbnail of cell {atlas_id} is damaged", path)
        return image

    # -- summary ------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """What the atlas holds, for ``leukview atlas info`` and the viewer.

        Returns
        -------
        info : dict
            ``name``, ``description``, ``folder``, ``model`` (name, version,
            sha256), ``dim``, ``count``, ``by_label``, ``by_source``,
            ``sources`` (name -> licence, attribution, note), ``index``
            (None or its settings, with ``active``), ``thumbnail_size``,
            ``size_bytes`` (files on disk), ``created``, ``updated``.
        """
        size = sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())
        index = dict(self.meta["index"]) if self.meta.get("index") else None
        if index is not None:
            index["active"] = self._index is not None
        return {
            "name": self.meta.get("name", ""),
            "description": self.meta.get("description", ""),
            "folder": str(self.folder),
            "model": {k: self.meta["model"][k] for k in ("name", "version", "sha256")},
            "dim": self.dim,
            "count": len(self),
            "by_label": dict(self.meta["counts"]["by_label"]),
            "by_source": dict(self.meta["counts"]["by_source"]),
            "sources": {k: dict(v) for k, v in self.meta["sources"].items()},
            "index": index,
            "thumbnail_size": int(self.meta["thumbnails"]["size"]),
            "size_bytes": size,
            "created": self.meta.get("created"),
            "updated": self.meta.get("updated"),
        }

    # -- writing ------------------------------------------------------------

    def _append_thumbnails(self, data: bytes) -> None:
        path = self.folder / THUMBNAILS_FILE
        end = int(self._offsets[-1]) - len(data)
        with path.open("r+b" if path.exists() else "wb") as handle:
            handle.truncate(end)  # bytes past the last offset are a crashed write's leftovers
            handle.seek(end)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def _save(self, rewrite_rows: bool = True) -> None:
        # thumbnails are appended in place (_append_thumbnails); the rest is replaced atomically
        folder = self.folder
        self.meta["count"] = len(self._entries)
        self.meta["counts"] = {
            "by_label": dict(sorted(Counter(e.label for e in self._entries).items())),
            "by_source": dict(sorted(Counter(e.source for e in self._entries).items())),
        }
        self.meta["updated"] = _now()
        if rewrite_rows:
            stored = np.ascontiguousarray(self._stored)
            self._stored = np.array(stored)  # drop a memory map before its file is replaced
            _write(folder / EMBEDDINGS_FILE, _npy_bytes(self._stored))
            _write(folder / OFFSETS_FILE, _npy_bytes(self._offsets.astype(np.int64)))
            lines = "".join(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in self._entries)
            _write(folder / CELLS_FILE, lines.encode("utf-8"))
        text = json.dumps(self.meta, indent=2, ensure_ascii=False) + "\n"
        _write(folder / ATLAS_FILE, text.encode("utf-8"))

