"""The reference atlas: labelled cells, their embeddings by one model, thumbnails.

An atlas is a folder::

    atlas.json              format, schema version, the model whose features made the
                            embeddings (name, version, sha256), feature dim, thumbnails,
                            sources with licence and attribution, counts per label/source
    embeddings.npy          (N, D) float16 (or float32), L2-normalised rows
    cells.jsonl             one JSON object per cell, row i = embedding i:
                            atlas_id, label, source, licence, file, group, detail,
                            thumbnail, hash
    thumbnails.bin          the cells' JPEG thumbnails, one after another
    thumbnails-offsets.npy  (N + 1,) int64: thumbnail i is bytes [o[i], o[i+1])
    index.faiss             optional HNSW index (faiss), recorded in atlas.json

Writes go through temporary files and ``atlas.json`` is written last, so a
crash leaves either the old atlas or one whose counts disagree, which
:meth:`Atlas.load` refuses with a clear :class:`AtlasError`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic import atomic_write_bytes
from ..cells import Cell
from ..errors import LeukViewError
from ._embed import (
    JPEG_QUALITY,
    THUMBNAIL_SIZE,
    cell_crops,
    crop_hash,
    decode_thumbnail,
    embed_crops,
    embedding_dim,
    encode_thumbnail,
)
from ._search import ExactSearch, FaissIndex, Neighbour, faiss_module, normalize_rows

if TYPE_CHECKING:
    from ..models import Classifier, ModelSpec

log = logging.getLogger(__name__)

FORMAT = "leukview-atlas"
SCHEMA_VERSION = 1
ATLAS_FILE = "atlas.json"
EMBEDDINGS_FILE = "embeddings.npy"
CELLS_FILE = "cells.jsonl"
THUMBNAILS_FILE = "thumbnails.bin"
OFFSETS_FILE = "thumbnails-offsets.npy"
INDEX_FILE = "index.faiss"
DEFAULT_ATLAS_DIR = "atlas"  # inside a model's folder
# above this many cells an index pays for itself (exact search: ~10 ms per query per 50k cells)
INDEX_MIN_CELLS = 50_000
_NORM_TOLERANCE = 1e-2  # float16 rounding leaves |x| within ~1e-3 of 1
_MMAP_BYTES = 256 * 1024 * 1024  # larger embedding files are memory-mapped, not read
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ENTRY_KEYS = ("atlas_id", "label", "source", "licence", "file", "group", "detail", "thumbnail", "hash")


class AtlasError(LeukViewError):
    """An atlas folder is missing, damaged, or made with another model."""


@dataclass(frozen=True)
class AtlasEntry:
    """One reference cell of an atlas (a row of ``cells.jsonl``).

    Attributes
    ----------
    atlas_id : str
        Stable id: the first 12 hex digits of ``hash``.
    label : str
        What the cell is, by an expert (public sets) or a reviewer (a lab's own cells).
    source : str
        Data set or lab/session it comes from; a key of the atlas's sources.
    licence : str
        Licence of the cell's image.
    file : str
        Reference to the original image (relative path in its data set, or a session).
    group : str
        Subject, slide or session when known (to leave a group out when
        evaluating); empty otherwise.
    detail : str
        Free text, e.g. the finer type of a cell labelled ``normal``.
    thumbnail : int
        Index of its thumbnail.
    hash : str
        SHA-256 of the model's uint8 input crop: two cells with the same crop are one cell.
    """

    atlas_id: str
    label: str
    source: str
    licence: str
    file: str
    group: str
    detail: str
    thumbnail: int
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AtlasSource:
    """Where atlas cells come from, with the terms under which they are shown."""

    name: str
    licence: str
    attribution: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"licence": self.licence, "attribution": self.attribution, "note": self.note}


@dataclass
class AddResult:
    """What :meth:`Atlas.add` did.

    Attributes
    ----------
    added : list of str
        Atlas ids of the new cells, in input order.
    duplicates : list of (int, str)
        (input index, atlas id of the cell already there) for each cell whose
        crop was already in the atlas (or earlier in the same call); not added.
    """

    added: list[str] = field(default_factory=list)
    duplicates: list[tuple[int, str]] = field(default_factory=list)


def default_atlas_dir(model_dir: str | os.PathLike[str]) -> Path:
    """Where a model's default atlas lives: ``models/<name>/atlas``."""
    return Path(model_dir) / DEFAULT_ATLAS_DIR


def load_default_atlas(classifier: Classifier) -> Atlas | None:
    """The atlas shipped beside a classifier, checked against it; None when it has none.

    Raises
    ------
    AtlasError
        The folder exists but is damaged or was made with another model.
    """
    folder = default_atlas_dir(classifier.path)
    if not (folder / ATLAS_FILE).is_file():
        return None
    return Atlas.load(folder, classifier)


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _model_identity(model: Classifier | ModelSpec) -> tuple[Any, int | None]:
    """(spec, feature dim or None) of a Classifier or a ModelSpec."""
    spec = getattr(model, "spec", model)
    shape = getattr(model, "feature_shape", None)
    return spec, (int(shape[0]) if shape else None)


class Atlas:
    """A loaded reference atlas. Build it with :meth:`load` or :meth:`create`.

    Reads are safe from several threads; :meth:`add` and :meth:`build_index`
    must not run while another thread searches.

    Attributes
    ----------
    folder : Path
    meta : dict
        The parsed ``atlas.json``.
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

    # -- loading and creating ------------------------------------------------

    @classmethod
    def load(
        cls, folder: str | os.PathLike[str], model: Classifier | ModelSpec | None = None
    ) -> Atlas:
        """Read and validate an atlas folder.

        Parameters
        ----------
        folder : path
            The atlas folder (or its ``atlas.json``).
        model : Classifier or ModelSpec, optional
            The model the atlas will be searched with: its sha256 (and, for a
            Classifier, its feature dim) must be the atlas's.

        Returns
        -------
        Atlas

        Raises
        ------
        AtlasError
            A file is missing, unreadable or damaged, the files disagree
            (counts, dims, ids, thumbnails), the format is newer than this
            LeukView, or the atlas was made with another model.
        """
        folder = Path(folder)
        if folder.is_file() and folder.name == ATLAS_FILE:
            folder = folder.parent
        if not folder.is_dir():
            raise AtlasError("atlas folder not found", folder)
        meta = _read_meta(folder / ATLAS_FILE)
        count, dim = int(meta["count"]), int(meta["dim"])
        embeddings = _read_embeddings(folder / EMBEDDINGS_FILE, count, dim)
        entries = _read_entries(folder / CELLS_FILE, count, meta)
        offsets = _read_offsets(folder, count)
        atlas = cls(folder, meta, entries, embeddings, offsets)
        if model is not None:
            atlas.check_model(model)
        atlas._open_index()
        return atlas

    @classmethod
    def create(
        cls,
        folder: str | os.PathLike[str],
        model: Classifier | ModelSpec,
        *,
        name: str = "",
        description: str = "",
        dim: int | None = None,
        dtype: str = "float16",
        thumbnail_size: int = THUMBNAIL_SIZE,
        build: dict[str, Any] | None = None,
        overwrite: bool = False,
    ) -> Atlas:
        """Write a new, empty atlas for a model.

        Parameters
        ----------
        folder : path
            Created if needed; it must not already hold an atlas unless ``overwrite``.
        model : Classifier or ModelSpec
            The model whose ``features`` will make the embeddings.
        name, description : str
        dim : int, optional
            Embedding length; read from a Classifier, needed with a ModelSpec.
        dtype : {'float16', 'float32'}
            How embeddings are stored (float16 halves the size; cosine
            distances move by ~1e-3).
        thumbnail_size : int
            Side of the stored thumbnails in pixels.
        build : dict, optional
            How the atlas was made (command, selection), kept in ``atlas.json``.
        overwrite : bool
            Replace an atlas already in ``folder``.

        Returns
        -------
        Atlas
        """
        folder = Path(folder)
        spec, model_dim = _model_identity(model)
        if model_dim is None and hasattr(model, "spec"):
            model_dim = embedding_dim(model)  # type: ignore[arg-type]
        dim = model_dim if dim is None else int(dim)
        if dim is None or dim < 1:
            raise ValueError("the embedding dim is unknown: pass a Classifier or dim=")
        if model_dim is not None and dim != model_dim:
            raise ValueError(f"dim {dim} is not the model's feature dim {model_dim}")
        if dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}")
        if not spec.sha256:
            raise AtlasError(f"model '{spec.name}' has no sha256 in its sidecar")
        if (folder / ATLAS_FILE).exists() and not overwrite:
            raise AtlasError("an atlas already exists here (pass overwrite=True to replace it)", folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / INDEX_FILE).unlink(missing_ok=True)
        meta: dict[str, Any] = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "name": name or f"{spec.name} atlas",
            "description": description,
            "model": {
                "name": spec.name,
                "version": spec.version,
                "sha256": spec.sha256.strip().lower(),
                "features_output": spec.features_output,
                "classes": list(spec.classes),
            },
            "dim": dim,
            "embedding": {"dtype": dtype, "pooling": "mean", "normalised": "l2", "metric": "cosine"},
            "thumbnails": {"format": "jpeg", "size": int(thumbnail_size), "quality": JPEG_QUALITY},
            "count": 0,
            "counts": {"by_label": {}, "by_source": {}},
            "sources": {},
            "index": None,
            "created": _now(),
            "updated": _now(),
            "build": build or {},
        }
        atlas = cls(folder, meta, [], np.zeros((0, dim), dtype), np.zeros(1, np.int64))
        (folder / THUMBNAILS_FILE).write_bytes(b"")
        atlas._save()
        return atlas

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

    # -- growing ------------------------------------------------------------

    def add(
        self,
        embeddings: np.ndarray,
        crops: np.ndarray,
        labels: Sequence[str],
        *,
        source: str,
        licence: str,
        attribution: str = "",
        note: str = "",
        files: Sequence[str] | None = None,
        groups: Sequence[str] | None = None,
        details: Sequence[str] | None = None,
    ) -> AddResult:
        """Add cells (already embedded) and save the atlas.

        Parameters
        ----------
        embeddings : ndarray of float, shape (M, D)
            By the atlas's model (:func:`embed_crops`); normalised here.
        crops : ndarray of uint8, shape (M, S, S, 3)
            The model's input crops: the thumbnails and the dedupe hash come from them.
        labels : sequence of str
            The cells' labels (for a lab: the reviewer's call).
        source : str
            Data set or lab/session name (e.g. ``"Haematology lab, 2024-05 review"``).
        licence : str
            Terms of the source's images (e.g. ``"CC BY 4.0"``, ``"internal use"``);
            a source already in the atlas must keep its licence.
        attribution, note : str
            Recorded with a new source.
        files, groups, details : sequence of str, optional
            Per cell: the original image, the subject/slide/session, free text.

        Returns
        -------
        AddResult
            New ids and the duplicates that were skipped.
        """
        embeddings = np.asarray(embeddings, np.float32)
        crops = np.asarray(crops)
        count = len(labels)
        if embeddings.ndim != 2 or embeddings.shape != (count, self.dim):
            raise ValueError(f"embeddings must be ({count}, {self.dim}), got {embeddings.shape}")
        if crops.ndim != 4 or len(crops) != count or crops.shape[3] != 3 or crops.dtype != np.uint8:
            raise ValueError(f"crops must be uint8 ({count}, S, S, 3), got {crops.dtype} {crops.shape}")
        if not np.all(np.isfinite(embeddings)) or np.any(np.linalg.norm(embeddings, axis=1) == 0):
            raise ValueError("embeddings must be finite and non-zero")
        for name, values in (("files", files), ("groups", groups), ("details", details)):
            if values is not None and len(values) != count:
                raise ValueError(f"{name} has {len(values)} entries for {count} cells")
        bad = [i for i, label in enumerate(labels) if not isinstance(label, str) or not label.strip()]
        if bad:
            raise ValueError(f"cells {bad[:5]} have no label")
        source = source.strip()
        if not source:
            raise ValueError("a source name is needed (data set, or lab/session)")
        known = self.meta["sources"].get(source)
        if known is not None and known.get("licence", "") != licence:
            raise AtlasError(
                f"source '{source}' is in the atlas under licence '{known.get('licence', '')}', "
                f"not '{licence}': use another source name or the same licence",
                self.folder,
            )

        result = AddResult()
        keep: list[int] = []
        new_entries: list[AtlasEntry] = []
        thumbs: list[bytes] = []
        seen = dict(self._hashes)
        size = int(self.meta["thumbnails"]["size"])
        for i in range(count):
            digest = crop_hash(crops[i])
            if digest in seen:
                result.duplicates.append((i, seen[digest]))
                continue
            atlas_id = digest[:12]
            if atlas_id in self._row or any(e.atlas_id == atlas_id for e in new_entries):
                atlas_id = digest[:20]  # two crops sharing 48 bits of hash: keep both
            seen[digest] = atlas_id
            keep.append(i)
            thumbs.append(encode_thumbnail(crops[i], size))
            new_entries.append(
                AtlasEntry(
                    atlas_id=atlas_id,
                    label=labels[i].strip(),
                    source=source,
                    licence=licence,
                    file=str(files[i]) if files is not None else "",
                    group=str(groups[i]) if groups is not None else "",
                    detail=str(details[i]) if details is not None else "",
                    thumbnail=len(self._entries) + len(new_entries),
                    hash=digest,
                )
            )
            result.added.append(atlas_id)
        if not keep:
            return result

        if known is None:
            self.meta["sources"][source] = AtlasSource(source, licence, attribution, note).to_dict()
        vectors = normalize_rows(embeddings[keep])
        dtype = np.dtype(self.meta["embedding"]["dtype"])
        self._stored = np.concatenate([np.asarray(self._stored, dtype), vectors.astype(dtype)])
        lengths = np.array([len(t) for t in thumbs], np.int64)
        self._offsets = np.concatenate([self._offsets, self._offsets[-1] + np.cumsum(lengths)])
        start = len(self._entries)
        self._entries.extend(new_entries)
        for row, e in enumerate(new_entries, start):
            self._row[e.atlas_id] = row
            self._hashes[e.hash] = e.atlas_id
        self._exact = None
        self._append_thumbnails(b"".join(thumbs))
        self._grow_index(vectors)
        self._save()
        return result

    def add_cells(
        self,
        classifier: Classifier,
        image: np.ndarray,
        cells: Sequence[Cell],
        labels: Sequence[str],
        *,
        source: str,
        licence: str,
        attribution: str = "",
        file: str = "",
        group: str = "",
        details: Sequence[str] | None = None,
    ) -> AddResult:
        """Embed cells of one image with the atlas's model and add them.

        This is what ``leukview atlas add SESSION`` does per reviewed image:
        ``labels`` are the reviewer's calls, ``source`` the lab or session,
        ``file`` the image, ``group`` the slide or session.

        Raises
        ------
        AtlasError
            ``classifier`` is not the atlas's model.
        """
        self.check_model(classifier)
        crops = cell_crops(classifier, image, cells)
        embeddings = embed_crops(classifier, crops)
        return self.add(
            embeddings,
            crops,
            labels,
            source=source,
            licence=licence,
            attribution=attribution,
            files=[file] * len(cells),
            groups=[group] * len(cells),
            details=details,
        )

    # -- index --------------------------------------------------------------

    def build_index(self, m: int = 32, ef_construction: int = 200, ef_search: int = 128) -> None:
        """Build and save a faiss HNSW index over the atlas (``index.faiss``).

        Worth it from about :data:`INDEX_MIN_CELLS` cells; later :meth:`add`
        calls keep it up to date. Raises AtlasError when faiss is not installed.
        """
        if faiss_module() is None:
            raise AtlasError("the atlas index needs faiss: pip install 'leukview[atlas-index]'")
        index = FaissIndex.build(self.embeddings, m, ef_construction, ef_search)
        index.write(self.folder / INDEX_FILE)
        self._index = index
        self.meta["index"] = {
            "library": FaissIndex.library,
            "kind": FaissIndex.kind,
            "file": INDEX_FILE,
            "count": len(index),
            "m": int(m),
            "ef_construction": int(ef_construction),
            "ef_search": int(ef_search),
        }
        self._save(rewrite_rows=False)

    def drop_index(self) -> None:
        """Forget the index (searches become exact) and delete its file."""
        self._index = None
        self.meta["index"] = None
        (self.folder / INDEX_FILE).unlink(missing_ok=True)
        self._save(rewrite_rows=False)

    def _open_index(self) -> None:
        info = self.meta.get("index")
        if not info:
            return
        path = self.folder / str(info.get("file", INDEX_FILE))
        if faiss_module() is None:
            log.info("%s: faiss is not installed; searching the atlas exactly", self.folder)
            return
        try:
            index = FaissIndex.read(path, int(info.get("ef_search", 128)))
        except Exception as exc:  # a damaged index only costs speed
            log.warning("%s: cannot read the atlas index (%s); searching exactly", path, exc)
            return
        if len(index) != len(self) or index.dim != self.dim:
            log.warning("%s: the index does not match the atlas (stale); searching exactly", path)
            return
        self._index = index

    def _grow_index(self, vectors: np.ndarray) -> None:
        if self._index is not None:
            self._index.add(vectors)
            self._index.write(self.folder / INDEX_FILE)
            self.meta["index"]["count"] = len(self._index)
        elif self.meta.get("index"):
            # it cannot be updated here (faiss missing or unreadable): never keep a stale one
            log.warning("%s: the atlas index could not be updated and was dropped", self.folder)
            self.meta["index"] = None
            (self.folder / INDEX_FILE).unlink(missing_ok=True)

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


def _write(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data)
    # the temporary file was private (0600); an atlas is shared by a lab's readers
    with contextlib.suppress(OSError):  # e.g. a file system without modes
        os.chmod(path, 0o644)


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


# ---------------------------------------------------------------------------
# reading and validating


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AtlasError(f"not an atlas: {ATLAS_FILE} not found", path.parent) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AtlasError(f"cannot read {ATLAS_FILE} ({exc})", path) from exc
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AtlasError(f"{ATLAS_FILE} is not valid JSON (line {exc.lineno}): damaged", path) from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise AtlasError(f"not a LeukView atlas (format is not '{FORMAT}')", path)
    version = meta.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise AtlasError("atlas has no valid schema_version", path)
    if version > SCHEMA_VERSION:
        raise AtlasError(
            f"atlas schema {version} is newer than this LeukView reads ({SCHEMA_VERSION}): update LeukView",
            path,
        )
    model = meta.get("model")
    if not isinstance(model, dict) or not _SHA256.match(str(model.get("sha256", ""))):
        raise AtlasError("atlas.json does not name its model with a sha256", path)
    for key in ("name", "version"):
        model.setdefault(key, "?")
    for key, kind in (("dim", int), ("count", int)):
        value = meta.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or value < (1 if key == "dim" else 0):
            raise AtlasError(f"atlas.json has no valid '{key}'", path)
    sources = meta.get("sources")
    if not isinstance(sources, dict) or not all(isinstance(v, dict) for v in sources.values()):
        raise AtlasError("atlas.json has no valid 'sources'", path)
    embedding = meta.setdefault("embedding", {})
    if embedding.get("dtype", "float16") not in ("float16", "float32"):
        raise AtlasError(f"unknown embedding dtype {embedding.get('dtype')!r}", path)
    embedding.setdefault("dtype", "float16")
    thumbs = meta.setdefault("thumbnails", {})
    thumbs.setdefault("size", THUMBNAIL_SIZE)
    counts = meta.setdefault("counts", {})
    counts.setdefault("by_label", {})
    counts.setdefault("by_source", {})
    meta.setdefault("index", None)
    return meta


def _read_embeddings(path: Path, count: int, dim: int) -> np.ndarray:
    try:
        big = path.stat().st_size > _MMAP_BYTES
        array = np.load(path, mmap_mode="r" if big else None, allow_pickle=False)
    except FileNotFoundError:
        raise AtlasError(f"{EMBEDDINGS_FILE} not found", path) from None
    except (OSError, ValueError, EOFError) as exc:
        raise AtlasError(f"{EMBEDDINGS_FILE} is damaged ({exc})", path) from exc
    if not isinstance(array, np.ndarray) or array.dtype not in (np.float16, np.float32):
        raise AtlasError(f"{EMBEDDINGS_FILE} must hold float16 or float32 numbers", path)
    if array.shape != (count, dim):
        raise AtlasError(
            f"{EMBEDDINGS_FILE} has shape {array.shape}, but atlas.json says {count} cells of "
            f"{dim} dimensions: damaged or from another atlas",
            path,
        )
    for start in range(0, count, 65536):
        chunk = np.asarray(array[start : start + 65536], np.float32)
        if not np.all(np.isfinite(chunk)):
            raise AtlasError(f"{EMBEDDINGS_FILE} holds non-finite numbers: damaged", path)
        norms = np.linalg.norm(chunk, axis=1)
        if np.any(np.abs(norms - 1.0) > _NORM_TOLERANCE):
            raise AtlasError(f"{EMBEDDINGS_FILE} rows are not unit vectors: damaged", path)
    return array


def _read_entries(path: Path, count: int, meta: dict[str, Any]) -> list[AtlasEntry]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise AtlasError(f"{CELLS_FILE} not found", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AtlasError(f"cannot read {CELLS_FILE} ({exc})", path) from exc
    lines = [line for line in lines if line.strip()]
    if len(lines) != count:
        raise AtlasError(
            f"{CELLS_FILE} lists {len(lines)} cells, atlas.json says {count}: damaged", path
        )
    sources = meta["sources"]
    entries = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            values = {key: row[key] for key in _ENTRY_KEYS}
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise AtlasError(f"{CELLS_FILE} line {number} is damaged ({exc})", path) from exc
        thumb = values["thumbnail"]
        if not isinstance(thumb, int) or not 0 <= thumb < count:
            raise AtlasError(f"{CELLS_FILE} line {number}: thumbnail index out of range", path)
        if any(not isinstance(values[k], str) for k in _ENTRY_KEYS if k != "thumbnail"):
            raise AtlasError(f"{CELLS_FILE} line {number}: fields must be strings", path)
        if not values["atlas_id"] or not values["label"]:
            raise AtlasError(f"{CELLS_FILE} line {number}: no id or no label", path)
        if values["source"] not in sources:
            raise AtlasError(
                f"{CELLS_FILE} line {number}: source '{values['source']}' is not listed in atlas.json",
                path,
            )
        entries.append(AtlasEntry(**values))
    ids = [e.atlas_id for e in entries]
    if len(set(ids)) != len(ids):
        raise AtlasError(f"{CELLS_FILE} lists an atlas id twice: damaged", path)
    by_label = dict(Counter(e.label for e in entries))
    by_source = dict(Counter(e.source for e in entries))
    if by_label != meta["counts"]["by_label"] or by_source != meta["counts"]["by_source"]:
        raise AtlasError(f"the counts in atlas.json do not match {CELLS_FILE}: damaged", path)
    return entries


def _read_offsets(folder: Path, count: int) -> np.ndarray:
    path = folder / OFFSETS_FILE
    try:
        offsets = np.load(path, allow_pickle=False)
        size = (folder / THUMBNAILS_FILE).stat().st_size
    except FileNotFoundError as exc:
        raise AtlasError(f"thumbnails not found ({Path(exc.filename or path).name})", folder) from None
    except (OSError, ValueError, EOFError) as exc:
        raise AtlasError(f"{OFFSETS_FILE} is damaged ({exc})", path) from exc
    if (
        not isinstance(offsets, np.ndarray)
        or offsets.shape != (count + 1,)
        or offsets.dtype.kind not in "iu"
        or int(offsets[0]) != 0
        or np.any(np.diff(offsets) <= 0)
        or int(offsets[-1]) > size
    ):
        raise AtlasError(
            f"thumbnail offsets do not fit {THUMBNAILS_FILE} ({count} cells, {size} bytes): damaged",
            path,
        )
    return offsets.astype(np.int64)
