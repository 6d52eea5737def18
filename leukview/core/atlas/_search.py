"""Nearest atlas cells: exact cosine search with numpy, an optional faiss HNSW index.

Embeddings are L2-normalised, so the cosine distance is ``1 - a . b``: the
exact search is one matrix product and a partial sort. For atlases of
hundreds of thousands of cells, :class:`FaissIndex` wraps a faiss HNSW graph
over the inner product (faiss is optional: ``pip install leukview[atlas-index]``);
everything works without it, only slower on very large atlases.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# the exact search keeps a float32 copy of the embeddings up to this size and
# converts chunks of the stored (float16) ones on the fly beyond it
_DENSE_BYTES = 512 * 1024 * 1024
_CHUNK_ROWS = 16384
_SMALL_ELEMENTS = 4 * 1024 * 1024  # up to ~3,000 cells of 1280 dims


@dataclass(frozen=True)
class Neighbour:
    """One atlas cell found near a query cell.

    Attributes
    ----------
    atlas_id : str
        Stable id of the atlas cell (:meth:`Atlas.thumbnail`, :meth:`Atlas.entry`).
    label : str
        What the atlas says the cell is (an expert's or reviewer's label).
    source : str
        Where it comes from (a data set or a lab/session name).
    distance : float
        Cosine distance ``1 - cos`` between the embeddings, in [0, 2];
        0 for the same embedding.
    """

    atlas_id: str
    label: str
    source: str
    distance: float

    def to_dict(self) -> dict[str, Any]:
        """``{"atlas_id", "label", "source", "distance"}`` (distance rounded to 1e-6), for JSON."""
        return {
            "atlas_id": self.atlas_id,
            "label": self.label,
            "source": self.source,
            "distance": round(float(self.distance), 6),
        }


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows (float32); an all-zero row stays zero.

    Parameters
    ----------
    vectors : ndarray of float, shape (M, D)

    Returns
    -------
    unit : ndarray of float32, shape (M, D)
    """
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def majority_label(neighbours: Sequence[Neighbour]) -> tuple[str | None, int]:
    """The most frequent label among neighbours and how many carry it.

    Ties go to the label whose nearest member is nearest (neighbours are
    nearest first), so the answer does not depend on dictionary order.

    Returns
    -------
    label : str or None
        None when there are no neighbours.
    votes : int
    """
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for rank, n in enumerate(neighbours):
        counts[n.label] = counts.get(n.label, 0) + 1
        first.setdefault(n.label, rank)
    if not counts:
        return None, 0
    label = min(counts, key=lambda name: (-counts[name], first[name]))
    return label, counts[label]


class ExactSearch:
    """Exact cosine k-nearest neighbours over fixed unit embeddings.

    Parameters
    ----------
    embeddings : ndarray of float16 or float32, shape (N, D)
        L2-normalised rows (a memory map is fine: it is read in chunks when large).
    """

    def __init__(self, embeddings: np.ndarray) -> None:
        self._stored = embeddings
        dense = embeddings.shape[0] * embeddings.shape[1] * 4 <= _DENSE_BYTES
        self._dense = np.ascontiguousarray(embeddings, np.float32) if dense else None

    def similarities(self, queries: np.ndarray) -> np.ndarray:
        """Cosine similarities (M, N) of unit queries (M, D) to every stored row."""
        if self._dense is not None:
            if len(queries) <= 4 and self._dense.size <= _SMALL_ELEMENTS:
                # a viewer's single query: einsum's own loop, no BLAS thread wake-ups (those
                # cost 20-40 ms on a busy 2-core machine, for 0.3 ms of work)
                return np.stack([np.einsum("nd,d->n", self._dense, q) for q in queries])
            return queries @ self._dense.T
        parts = [
            queries @ np.asarray(self._stored[start : start + _CHUNK_ROWS], np.float32).T
            for start in range(0, self._stored.shape[0], _CHUNK_ROWS)
        ]
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(queries), 0), np.float32)

    def search(
        self, queries: np.ndarray, k: int, exclude: Sequence[Collection[int]] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Indices and cosine distances of the k nearest rows, nearest first.

        Parameters
        ----------
        queries : ndarray of float32, shape (M, D)
            Unit rows.
        k : int
            At most this many per query (fewer when the atlas is smaller).
        exclude : sequence of collections of int, optional
            Per query, rows never returned.

        Returns
        -------
        indices : ndarray of int64, shape (M, k')
            ``-1`` pads a row that has fewer than k' candidates.
        distances : ndarray of float32, shape (M, k')
            ``1 - cos``; ties are broken by the lower row index.
        """
        count = self._stored.shape[0]
        m = len(queries)
        k = min(k, count)
        if k == 0 or m == 0:
            return np.zeros((m, k), np.int64), np.zeros((m, k), np.float32)
        out_i = np.full((m, k), -1, np.int64)
        out_d = np.full((m, k), np.inf, np.float32)
        # chunk the queries so that the (M, N) similarity matrix stays small
        step = max(1, _DENSE_BYTES // 4 // max(count, 1) // 4)
        for start in range(0, m, step):
            sims = self.similarities(queries[start : start + step]).astype(np.float32, copy=False)
            if exclude is not None:
                for row, banned in enumerate(exclude[start : start + step]):
                    if banned:
                        sims[row, np.fromiter(banned, np.int64)] = -np.inf
            distances = 1.0 - sims
            if k < count:
                part = np.argpartition(distances, k - 1, axis=1)[:, :k]
            else:
                part = np.broadcast_to(np.arange(count), distances.shape)
            chosen = np.take_along_axis(distances, part, axis=1)
            order = np.lexsort((part, chosen), axis=1)  # distance, then index
            idx = np.take_along_axis(part, order, axis=1)
            dist = np.take_along_axis(chosen, order, axis=1)
            valid = np.isfinite(dist)
            out_i[start : start + step] = np.where(valid, idx, -1)
            out_d[start : start + step] = np.where(valid, dist, np.inf)
        return out_i, np.clip(out_d, 0.0, np.inf)


def faiss_module() -> Any | None:
    """The faiss module, or None when it is not installed (the index is optional)."""
    try:
        return importlib.import_module("faiss")
    except ImportError:
        return None


class FaissIndex:
    """An HNSW graph over the inner product of unit embeddings (faiss ``IndexHNSWFlat``).

    Approximate in principle; with ``ef_search`` well above k its results on
    atlases of this kind equal the exact ones (tests/core/atlas checks this).

    Parameters
    ----------
    index : faiss.Index
    ef_search : int
        Candidates kept while searching (more: slower, closer to exact).
    """

    library = "faiss"
    kind = "IndexHNSWFlat/inner-product"

    def __init__(self, index: Any, ef_search: int = 128) -> None:
        self.index = index
        self.ef_search = int(ef_search)
        self.index.hnsw.efSearch = self.ef_search

    @classmethod
    def build(
        cls, embeddings: np.ndarray, m: int = 32, ef_construction: int = 200, ef_search: int = 128
    ) -> FaissIndex:
        """Index unit rows (N, D); raises ImportError without faiss."""
        faiss = faiss_module()
        if faiss is None:
            raise ImportError("faiss is not installed (pip install 'leukview[atlas-index]')")
        dim = int(embeddings.shape[1])
        index = faiss.IndexHNSWFlat(dim, int(m), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(ef_construction)
        made = cls(index, ef_search)
        made.add(embeddings)
        return made

    @classmethod
    def read(cls, path: str | Path, ef_search: int = 128) -> FaissIndex:
        faiss = faiss_module()
        if faiss is None:
            raise ImportError("faiss is not installed")
        return cls(faiss.read_index(str(path)), ef_search)

    def write(self, path: str | Path) -> None:
        faiss = faiss_module()
        assert faiss is not None
        faiss.write_index(self.index, str(path))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def add(self, embeddings: np.ndarray) -> None:
        for start in range(0, len(embeddings), _CHUNK_ROWS):
            chunk = np.ascontiguousarray(embeddings[start : start + _CHUNK_ROWS], np.float32)
            self.index.add(chunk)

    def search(
        self, queries: np.ndarray, k: int, exclude: Sequence[Collection[int]] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`ExactSearch.search` (excluded rows are fetched and dropped)."""
        count = len(self)
        m = len(queries)
        k = min(k, count)
        if k == 0 or m == 0:
            return np.zeros((m, k), np.int64), np.zeros((m, k), np.float32)
        extra = max((len(b) for b in exclude), default=0) if exclude is not None else 0
        fetch = min(count, k + extra)
        self.index.hnsw.efSearch = max(self.ef_search, fetch)
        sims, idx = self.index.search(np.ascontiguousarray(queries, np.float32), fetch)
        out_i = np.full((m, k), -1, np.int64)
        out_d = np.full((m, k), np.inf, np.float32)
        for row in range(m):
            banned = exclude[row] if exclude is not None else ()
            pairs = [
                (1.0 - float(s), int(i))
                for s, i in zip(sims[row], idx[row], strict=True)
                if i >= 0 and int(i) not in banned
            ]
            pairs.sort()
            for col, (dist, index) in enumerate(pairs[:k]):
                out_i[row, col] = index
                out_d[row, col] = dist
        return out_i, np.clip(out_d, 0.0, np.inf)
