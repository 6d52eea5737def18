"""Input checks and conversion: only RGB images are segmented; 16-bit and float are converted."""

from __future__ import annotations

import numpy as np
import pytest

from leukview.core.errors import LeukViewError
from leukview.core.segment import estimate_rbc_diameter, segment


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((50, 50), np.uint8),
        np.zeros((50, 50, 4), np.uint8),
        np.zeros((50, 50, 1), np.uint8),
        np.zeros((2, 50, 50, 3), np.uint8),
        np.zeros((50, 50, 3), np.complex64),
        "not an image",
    ],
)
def test_non_rgb_input_raises_clear_error(bad: object) -> None:
    with pytest.raises(LeukViewError, match="RGB|numpy|dtype"):
        segment(bad)  # type: ignore[arg-type]
    with pytest.raises(LeukViewError):
        estimate_rbc_diameter(bad)  # type: ignore[arg-type]


def test_16bit_and_float_input_are_converted(samples) -> None:
    rgb = samples["BloodImage_00214"].rgb
    ref = segment(rgb)
    wbc = [c.kind for c in ref.cells].count("wbc")
    assert wbc == 1
    # 16-bit: the same 8-bit image after the conversion, so the same cells.
    deep = segment(rgb.astype(np.uint16) * 257)
    assert np.array_equal(deep.labels, ref.labels)
    assert [c.kind for c in segment(rgb.astype(np.float32) / 255).cells].count("wbc") == wbc
    # Floats above 1 are taken as 0-255.
    assert [c.kind for c in segment(rgb.astype(np.float64)).cells].count("wbc") == wbc
