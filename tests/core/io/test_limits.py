"""The decompression-bomb limit: argument, environment or default; huge headers refused."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from leukview.core import io
from leukview.core.errors import ImageReadError
from leukview.core.io import (
    DEFAULT_MAX_PIXELS,
    image_info,
    max_pixels_limit,
    read_image,
    read_region,
)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(path: Path, width: int, height: int) -> Path:
    """A valid PNG header claiming width x height RGB, with a few bytes of pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
    return path


def _bomb_tiff(path: Path, width: int, height: int) -> Path:
    """A grey, uncompressed, single-strip TIFF header claiming width x height."""
    tags = [  # (tag, type, value): type 3 SHORT, 4 LONG
        (256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
        (273, 4, 8 + 2 + 9 * 12 + 4), (277, 3, 1), (278, 4, height), (279, 4, 16),
    ]  # fmt: skip
    ifd = struct.pack("<H", len(tags))
    for tag, typ, value in tags:
        packed = struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, typ, 1) + packed
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 4 + b"\x80" * 16)
    return path


def test_bomb_png_is_refused_from_its_header(tmp_path, expect_error):
    path = _bomb_png(tmp_path / "bomb.png", 100_000, 100_000)
    assert path.stat().st_size < 200
    err = expect_error(path, "100000 x 100000", "limit", io.MAX_PIXELS_ENV)
    assert "decompression" in err.reason
    info = image_info(path)  # the header is reported, not refused
    assert (info.width, info.height) == (100_000, 100_000)


def test_bomb_tiff_is_refused_for_whole_reads_and_for_huge_strips(tmp_path, expect_error):
    path = _bomb_tiff(tmp_path / "bomb.tif", 100_000, 100_000)
    assert image_info(path).levels == [(100_000, 100_000)]
    expect_error(path, "100000 x 100000", "region by region")
    # A small region would need one 10-gigapixel strip: refused too.
    expect_error(path, "limit", call=lambda p: read_region(p, 0, 0, 10, 10))


def test_pillow_own_bomb_check_never_leaks(tmp_path, monkeypatch, sample_jpeg, expect_error):
    # Pillow's limit is a module global; ours replaces it while we decode.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert read_image(sample_jpeg).shape == (480, 640, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored
    bomb = _bomb_png(tmp_path / "b.png", 30_000, 30_000)
    err = expect_error(bomb, "limit")
    assert not isinstance(err.__cause__, Image.DecompressionBombError)


def test_limit_from_argument_environment_and_default(monkeypatch, sample_jpeg, expect_error):
    path = sample_jpeg  # 640 x 480 = 307,200 pixels
    assert max_pixels_limit() == DEFAULT_MAX_PIXELS >= 20_000 * 20_000
    expect_error(path, "307,200", call=lambda p: read_image(p, max_pixels=300_000))
    monkeypatch.setenv(io.MAX_PIXELS_ENV, "300000")
    expect_error(path, "limit of 300,000")
    assert read_image(path, max_pixels=400_000).shape == (480, 640, 3)  # the argument wins
    expect_error(path, "region", call=lambda p: read_region(p, 0, 0, 600, 600))
    monkeypatch.setenv(io.MAX_PIXELS_ENV, "lots")
    with pytest.raises(ImageReadError, match=io.MAX_PIXELS_ENV):
        read_image(path)
    with pytest.raises(ValueError):
        read_image(path, max_pixels=0)


@pytest.mark.parametrize(("raw", "expected"), [("1_000_000", 1_000_000), (" 2e6 ", 2_000_000)])
def test_environment_limit_accepts_underscores_and_exponents(monkeypatch, raw, expected):
    monkeypatch.setenv(io.MAX_PIXELS_ENV, raw)
    assert max_pixels_limit() == expected
    assert max_pixels_limit(5) == 5  # the argument still wins


@pytest.mark.parametrize("raw", ["0", "-5", "1.5", "inf", "nan"])
def test_environment_limit_that_is_not_a_positive_whole_number(monkeypatch, raw):
    monkeypatch.setenv(io.MAX_PIXELS_ENV, raw)
    with pytest.raises(ImageReadError, match="positive whole"):
        max_pixels_limit()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "lots", float("inf"), float("nan"), [10]])
def test_argument_limit_that_is_not_a_positive_integer_is_a_value_error(bad):
    with pytest.raises(ValueError, match="positive integer"):
        max_pixels_limit(bad)
