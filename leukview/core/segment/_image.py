"""Input checks and whole-image primitives: RGB conversion, resizing, channel reductions."""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import LeukViewError


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """Check and convert the input to RGB uint8, or raise a clear LeukViewError."""
    if not isinstance(image, np.ndarray):
        raise LeukViewError(f"segmentation needs a numpy image array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise LeukViewError(
            f"segmentation needs an RGB image of shape (H, W, 3), got shape {image.shape}; "
            "convert greyscale or RGBA images to RGB first (leukview.core.io does)"
        )
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image // 257).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        hi = 1.0 if float(np.nanmax(image, initial=0.0)) <= 1.0 else 255.0
        return np.clip(np.nan_to_num(image) * (255.0 / hi), 0, 255).astype(np.uint8)
    raise LeukViewError(f"segmentation needs an 8- or 16-bit RGB image, got dtype {image.dtype}")


def _resize(img: np.ndarray, scale: float) -> np.ndarray:
    """Resize by ``scale`` (area averaging when shrinking; halvings by pyrDown are fast)."""
    if abs(scale - 1.0) < 1e-6:
        return img
    h, w = img.shape[:2]
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    if scale >= 1:
        return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    out = img
    while out.shape[1] >= 2 * size[0] * 2 and out.shape[0] >= 2 * size[1] * 2:
        out = cv2.pyrDown(out)
    return cv2.resize(out, size, interpolation=cv2.INTER_AREA)


def _channel_max(f: np.ndarray) -> np.ndarray:
    """Per-pixel maximum over the 3 channels (OpenCV: much faster than numpy's reduce)."""
    return cv2.max(cv2.max(f[..., 0], f[..., 1]), f[..., 2])


def _channel_sum(f: np.ndarray) -> np.ndarray:
    """Per-pixel sum over the 3 channels, float32."""
    f = np.ascontiguousarray(f, dtype=np.float32)
    return cv2.transform(f, np.ones((1, 3), np.float32)).reshape(f.shape[:2])
