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
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic import atomic_write_bytes
from ..errors import LeukViewError
from ._embed import THUMBNAIL_SIZE

if TYPE_CHECKING:
    from ..models import Classifier, ModelSpec

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


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _model_identity(model: Classifier | ModelSpec) -> tuple[Any, int | None]:
    """(spec, feature dim or None) of a Classifier or a ModelSpec."""
    spec = getattr(model, "spec", model)
    shape = getattr(model, "feature_shape", None)
    return spec, (int(shape[0]) if shape else None)



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
