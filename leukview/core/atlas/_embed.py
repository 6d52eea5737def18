"""Embeddings of cells by a classifier, content hashes and thumbnails of their crops.

An embedding is the classifier's ``features`` output (the maps the CAM is
made of) averaged over the grid and L2-normalised: the vector the linear
head reads. Cells are cut exactly as for classification
(:func:`leukview.core.preprocess.crop_cell` with the sidecar's crop rule), so
an embedding describes the pixels the model judged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..cells import Cell
from ..errors import ModelError
from ..preprocess import crop_cell, normalize
from ._search import normalize_rows

if TYPE_CHECKING:
    from ..models import Classifier

THUMBNAIL_SIZE = 80
JPEG_QUALITY = 90


def pooled_embeddings(features: np.ndarray) -> np.ndarray:
    """Grid-averaged, L2-normalised feature maps.

    Parameters
    ----------
    features : ndarray of float, shape (N, C, h, w) or (N, C)

    Returns
    -------
    embeddings : ndarray of float32, shape (N, C), unit rows
    """
    features = np.asarray(features, np.float32)
    if features.ndim == 4:
        features = features.mean(axis=(2, 3))
    if features.ndim != 2:
        raise ValueError(f"features must be (N, C, h, w) or (N, C), got {features.shape}")
    return normalize_rows(features)


def embedding_dim(classifier: Classifier) -> int:
    """Length D of the classifier's embeddings; ModelError when it has no features output."""
    if not classifier.spec.features_output or classifier.feature_shape is None:
        raise ModelError(
            f"model '{classifier.spec.name}' has no features output, so it cannot embed cells "
            "for an atlas",
            classifier.path,
        )
    return int(classifier.feature_shape[0])


def cell_crops(classifier: Classifier, image: np.ndarray, cells: Sequence[Cell]) -> np.ndarray:
    """The classifier's uint8 input crops of cells (its sidecar's crop rule and size).

    Returns
    -------
    crops : ndarray of uint8, shape (M, S, S, 3)
    """
    spec = classifier.spec
    size = spec.input_size
    if not cells:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([crop_cell(image, cell, spec.crop, size) for cell in cells])


def embed_crops(classifier: Classifier, crops: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Embed the classifier's own uint8 crops (as :func:`cell_crops` or training caches them).

    Parameters
    ----------
    classifier : Classifier
        Must have a ``features`` output.
    crops : ndarray of uint8, shape (M, S, S, 3)
        S = the sidecar's input size.
    batch_size : int
        Crops per inference call.

    Returns
    -------
    embeddings : ndarray of float32, shape (M, D), unit rows
    """
    dim = embedding_dim(classifier)
    spec = classifier.spec
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[1:] != (spec.input_size, spec.input_size, 3):
        raise ValueError(
            f"crops must be (M, {spec.input_size}, {spec.input_size}, 3) for '{spec.name}', "
            f"got {crops.shape}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    out = np.zeros((len(crops), dim), np.float32)
    for start in range(0, len(crops), batch_size):
        batch = normalize(crops[start : start + batch_size], spec.mean, spec.std)
        _, features = classifier.run(batch, with_features=True)
        assert features is not None  # embedding_dim checked the output exists
        out[start : start + len(batch)] = pooled_embeddings(features)
    return out


def embed_cells(
    classifier: Classifier, image: np.ndarray, cells: Sequence[Cell], batch_size: int = 64
) -> np.ndarray:
    """Embed cells of an image with a classifier, cut exactly as for classification.

    Parameters
    ----------
    classifier : Classifier
        Must have a ``features`` output (both shipped models do).
    image : ndarray of uint8, shape (H, W, 3)
        RGB field the cells were found in.
    cells : sequence of Cell
    batch_size : int

    Returns
    -------
    embeddings : ndarray of float32, shape (M, D)
        Grid-averaged ``features``, L2-normalised; the query of :meth:`Atlas.search`.
    """
    return embed_crops(classifier, cell_crops(classifier, image, cells), batch_size)


def crop_hash(crop: np.ndarray) -> str:
    """Content hash of one uint8 crop (its shape and pixels): the atlas's dedupe key."""
    crop = np.ascontiguousarray(crop, np.uint8)
    digest = hashlib.sha256(repr(crop.shape).encode())
    digest.update(crop.tobytes())
    return digest.hexdigest()


def encode_thumbnail(
    crop: np.ndarray, size: int = THUMBNAIL_SIZE, quality: int = JPEG_QUALITY
) -> bytes:
    """A crop shrunk to ``size`` pixels and JPEG-encoded.

    Parameters
    ----------
    crop : ndarray of uint8, shape (S, S, 3)
        RGB.

    Returns
    -------
    jpeg : bytes
    """
    crop = np.asarray(crop, np.uint8)
    if crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"a thumbnail is made from an RGB crop (S, S, 3), got {crop.shape}")
    if crop.shape[:2] != (size, size):
        shrink = crop.shape[0] > size
        crop = cv2.resize(
            crop, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        )
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise ValueError("cannot encode thumbnail")
    return bytes(data.tobytes())


def decode_thumbnail(data: bytes) -> np.ndarray | None:
    """RGB uint8 (h, w, 3) of one stored JPEG thumbnail, or None when it is not a JPEG."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
