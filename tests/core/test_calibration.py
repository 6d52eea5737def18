"""One pixel calibration per image: validation, its source, derived µm figures, round trip."""

from __future__ import annotations

import math

import pytest

from leukview.core.calibration import (
    MAX_PIXEL_SIZE_UM,
    MIN_PIXEL_SIZE_UM,
    RBC_DIAMETER_UM,
    Calibration,
    validate_pixel_size,
)
from leukview.core.errors import LeukViewError


@pytest.mark.parametrize("value", [MIN_PIXEL_SIZE_UM, 0.05, 0.25, 1, "0.5", MAX_PIXEL_SIZE_UM])
def test_plausible_pixel_sizes_are_accepted_as_floats(value):
    size = validate_pixel_size(value)
    assert type(size) is float and size == pytest.approx(float(value))


@pytest.mark.parametrize(
    "value",
    [0.0, -0.25, MIN_PIXEL_SIZE_UM / 2, MAX_PIXEL_SIZE_UM * 1.01, 1e200, math.nan, math.inf, -math.inf,
     True, False, None, "abc", "", [0.25], 10**400],
)  # fmt: skip
def test_implausible_or_non_numbers_are_refused(value):
    with pytest.raises(LeukViewError, match="pixel size"):
        validate_pixel_size(value)
    with pytest.raises(LeukViewError):
        Calibration(value, "user")  # type: ignore[arg-type]


def test_sources_and_how_they_read():
    user = Calibration.from_user(0.25)
    assert (user.pixel_size_um, user.source, user.known, user.estimated) == (0.25, "user", True, False)
    assert user.describe() == "0.25 µm/px (set by the user)"
    assert Calibration.from_user(None) == Calibration.unknown()
    with pytest.raises(LeukViewError):
        Calibration.from_user(1e200)  # a typo is the user's to fix, not silently dropped

    assert Calibration.from_file(0.1).source == "file"
    assert Calibration.from_file(0.1).describe() == "0.1 µm/px (from the file)"
    # a damaged header is no calibration, not an error
    assert Calibration.from_file(math.nan) == Calibration.unknown()
    assert Calibration.from_file(1e200) == Calibration.unknown()
    assert Calibration.from_file(None) == Calibration.unknown()

    estimate = Calibration.from_rbc_diameter(30.0)
    assert estimate.estimated and estimate.pixel_size_um == pytest.approx(RBC_DIAMETER_UM / 30.0)
    assert "estimated from red cells" in estimate.describe()
    for bad in (0.0, -3.0):
        with pytest.raises(LeukViewError):
            Calibration.from_rbc_diameter(bad)

    unknown = Calibration.unknown()
    assert not unknown.known and unknown.describe() == "pixel size unknown"
    with pytest.raises(LeukViewError):
        Calibration(None, "user")  # no size, no source
    with pytest.raises(LeukViewError):
        Calibration(0.25, "guess")  # type: ignore[arg-type]


def test_derived_measurements_follow_the_pixel_size():
    pixels = {"area": 400.0, "nucleus_area": 100.0, "equivalent_diameter": 22.6, "perimeter": 70.0, "nc_ratio": 0.33}
    half = Calibration.from_user(0.5).derived_measurements(pixels)
    assert set(half) == {"area_um2", "nucleus_area_um2", "equivalent_diameter_um", "perimeter_um"}
    assert half["area_um2"] == pytest.approx(100.0) and half["nucleus_area_um2"] == pytest.approx(25.0)
    assert half["equivalent_diameter_um"] == pytest.approx(11.3) and half["perimeter_um"] == pytest.approx(35.0)
    double = Calibration.from_user(1.0).derived_measurements(pixels)
    assert double["area_um2"] == pytest.approx(4 * half["area_um2"])  # areas with the square
    assert double["perimeter_um"] == pytest.approx(2 * half["perimeter_um"])  # lengths linearly
    assert Calibration.unknown().derived_measurements(pixels) == {}
    assert Calibration.from_user(0.5).derived_measurements({"area": 8.0}) == {"area_um2": 2.0}

    cal = Calibration.from_user(0.5)
    assert cal.physical("area", 400.0) == (100.0, "µm²")
    assert cal.physical("perimeter", 70.0) == (35.0, "µm")
    assert cal.physical("nc_ratio", 0.33) == (0.33, "")
    assert Calibration.unknown().physical("area", 400.0) == (400.0, "px²")
    assert Calibration.unknown().physical("equivalent_diameter", 22.0) == (22.0, "px")
    assert cal.length_um(10) == 5.0 and cal.area_um2(4) == 1.0
    assert Calibration.unknown().length_um(10) is None and Calibration.unknown().area_um2(4) is None


@pytest.mark.parametrize(
    "calibration",
    [Calibration.unknown(), Calibration.from_user(0.25), Calibration.from_file(0.1), Calibration.from_rbc_diameter(40)],
)
def test_round_trip(calibration):
    assert Calibration.from_dict(calibration.to_dict()) == calibration


@pytest.mark.parametrize(
    ("stored", "source"),
    [("set by the user", "user"), ("from the file", "file"), ("estimated from red cells", "rbc-estimate"), (None, "user")],
)
def test_legacy_source_strings_are_read(stored, source):
    assert Calibration.from_dict({"pixel_size_um": 0.2, "source": stored}) == Calibration(0.2, source)


def test_a_damaged_stored_calibration_is_an_error():
    assert Calibration.from_dict(None) == Calibration.unknown()
    assert Calibration.from_dict({"pixel_size_um": None, "source": "user"}) == Calibration.unknown()
    with pytest.raises(LeukViewError):
        Calibration.from_dict({"pixel_size_um": 1e200, "source": "user"})
    with pytest.raises(LeukViewError):
        Calibration.from_dict({"pixel_size_um": 0.2, "source": "guessed"})
