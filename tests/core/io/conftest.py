"""Fixtures for the image-input tests: a bundled smear field, a random RGB, error checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from leukview.core import io
from leukview.core.errors import ImageReadError
from leukview.core.io import read_image

SAMPLES = Path(__file__).resolve().parents[3] / "resources" / "samples"


@pytest.fixture(autouse=True)
def _no_env_limit(monkeypatch):
    """Tests set the pixel limit themselves; one in the environment must not leak in."""
    monkeypatch.delenv(io.MAX_PIXELS_ENV, raising=False)


@pytest.fixture
def sample_jpeg() -> Path:
    """A bundled BCCD smear field: a real camera JPEG, 640 x 480."""
    return SAMPLES / "BloodImage_00056.jpg"


@pytest.fixture
def rgb() -> np.ndarray:
    """``(40, 50, 3)`` uint8 noise: 50 wide, 40 high, so a transposed read shows."""
    return np.random.default_rng(7).integers(0, 256, (40, 50, 3), dtype=np.uint8)


@pytest.fixture
def expect_error() -> Callable[..., ImageReadError]:
    """``expect_error(path, *words, call=read_image, **kwargs)``: the ImageReadError raised.

    The message must name the file and its reason contain every word (case-insensitive).
    """

    def check(path, *words, call=read_image, **kwargs) -> ImageReadError:
        with pytest.raises(ImageReadError) as info:
            call(path, **kwargs)
        err = info.value
        assert Path(path).name in str(err)
        for word in words:
            assert word.lower() in err.reason.lower(), err.reason
        return err

    return check
