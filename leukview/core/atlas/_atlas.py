"""The reference atlas: loading, creating, growing (dedupe by crop hash) and its index.

The folder format, its validation and the reading helpers are in
``_format.py``; rows, search, thumbnails and saving in ``_base.py``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cells import Cell
from ._base import AtlasBase
from ._embed import (
    JPEG_QUALITY,
    THUMBNAIL_SIZE,
    cell_crops,
    crop_hash,
    embed_crops,
    embedding_dim,
    encode_thumbnail,
)
from ._format import (
    ATLAS_FILE,
    CELLS_FILE,
    DEFAULT_ATLAS_DIR,
    EMBEDDINGS_FILE,
    FORMAT,
    INDEX_FILE,
    SCHEMA_VERSION,
    THUMBNAILS_FILE,
    AddResult,
    AtlasEntry,
    AtlasError,
    AtlasSource,
    _model_identity,
    _now,
    _read_embeddings,
    _read_entries,
    _read_meta,
    _read_offsets,
)
from ._search import FaissIndex, faiss_module, normalize_rows

if TYPE_CHECKING:
    from ..models import Classifier, ModelSpec

log = logging.getLogger(__name__)


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



class Atlas(AtlasBase):
    """A loaded reference atlas. Build it with :meth:`load` or :meth:`create`.

    Reads are safe from several threads; :meth:`add` and :meth:`build_index`
    must not run while another thread searches.

    Attributes
    ----------
    folder : Path
    meta : dict
        The parsed ``atlas.json``.
    """

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
