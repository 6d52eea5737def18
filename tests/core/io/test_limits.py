"""The two limits of a read: the pixel limit (bombs) and the memory budget, from the header."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hostile.make_corpus import jpeg_with_lying_size
from PIL import Image, ImageFile

from leukview.core import io
from leukview.core.errors import ImageReadError
from leukview.core.io import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_READ_BYTES,
    image_info,
    max_pixels_limit,
    max_read_bytes_limit,
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


# -- the memory budget: what a read needs, from the header, before decoding


def test_a_read_over_the_memory_budget_is_refused_before_decoding(
    monkeypatch, sample_jpeg, expect_error
):
    need = image_info(sample_jpeg).read_bytes
    assert need is not None and 640 * 480 * 3 < need < 640 * 480 * 32
    assert read_image(sample_jpeg, max_bytes=need).shape == (480, 640, 3)

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    err = expect_error(
        sample_jpeg, "640 x 480", "budget", io.MAX_READ_BYTES_ENV, "tiled", max_bytes=need - 1
    )
    assert "refused before decoding" in err.reason


def test_budget_from_argument_environment_and_default(monkeypatch, sample_jpeg, expect_error):
    assert max_read_bytes_limit() == DEFAULT_MAX_READ_BYTES == 1024**3
    monkeypatch.setenv(io.MAX_READ_BYTES_ENV, "1MiB")
    assert max_read_bytes_limit() == 1024**2
    expect_error(sample_jpeg, "budget of 1.0 MiB")
    assert read_image(sample_jpeg, max_bytes=10**8).shape == (480, 640, 3)  # the argument wins
    monkeypatch.setenv(io.MAX_READ_BYTES_ENV, "lots")
    with pytest.raises(ImageReadError, match=io.MAX_READ_BYTES_ENV):
        read_image(sample_jpeg)
    with pytest.raises(ValueError, match="positive integer"):
        read_image(sample_jpeg, max_bytes=0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1_000_000", 1_000_000), ("1.5GiB", 1.5 * 1024**3), ("800 MiB", 800 * 1024**2),
     ("2GB", 2e9), ("512k", 512 * 1024), ("3e9", 3e9)],
)  # fmt: skip
def test_environment_budget_accepts_units(monkeypatch, raw, expected):
    monkeypatch.setenv(io.MAX_READ_BYTES_ENV, raw)
    assert max_read_bytes_limit() == int(expected)


@pytest.mark.parametrize("raw", ["0", "-5", "inf", "nan", "2 apples", "GiB"])
def test_environment_budget_that_is_not_a_size(monkeypatch, raw):
    monkeypatch.setenv(io.MAX_READ_BYTES_ENV, raw)
    with pytest.raises(ImageReadError, match="memory size"):
        max_read_bytes_limit()


def test_header_claiming_20000_x_20000_is_refused_at_once(tmp_path):
    path = jpeg_with_lying_size(tmp_path / "claims.jpg", 20_000, 20_000)
    assert path.stat().st_size < 4000
    started = time.monotonic()
    with pytest.raises(ImageReadError, match="20000 x 20000") as info:
        read_image(path)
    assert time.monotonic() - started < 2.0
    assert "refused before decoding" in info.value.reason or "end early" in info.value.reason


def test_a_tiff_over_the_budget_can_still_be_read_by_region(tmp_path, expect_error):
    data = np.random.default_rng(3).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, data, tile=(64, 64), photometric="rgb", compression="zlib")
    need = image_info(path).read_bytes
    assert need is not None and need >= data.nbytes
    expect_error(path, "512 x 512", "region by region", max_bytes=need - 1)
    region = read_region(path, 100, 200, 128, 64, max_bytes=need // 4)
    assert np.array_equal(region, data[200:264, 100:228])
    expect_error(
        path, "300 x 300 region", "smaller regions",
        call=lambda p: read_region(p, 0, 0, 300, 300, max_bytes=need // 4),
    )  # fmt: skip


# What each kind of file costs: the estimate must cover the peak memory measured
# in a fresh process (resident set, not only numpy's allocations), and not be
# far above it, or the budget would refuse what fits. The peak is VmHWM, reset
# before each read through /proc/self/clear_refs.
_MEASURE = r"""
import json, sys
from leukview.core.io import image_info, read_image

def hwm():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) * 1024 for l in fh if l.startswith("VmHWM:"))

def rss():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) * 1024 for l in fh if l.startswith("VmRSS:"))

out = {}
for path, tiny in zip(sys.argv[1::2], sys.argv[2::2]):
    read_image(tiny)  # warm up: codecs and their tables
    need = image_info(path).read_bytes
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # the peak restarts at the present resident set
    before = rss()
    read_image(path)
    out[path] = {"need": need, "used": hwm() - before}
print(json.dumps(out))
"""


def _kinds(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    rng = np.random.default_rng(5)
    h, w = 2400, 3200
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    smooth = np.repeat(np.repeat(noise[::16, ::16], 16, axis=0), 16, axis=1)[:h, :w]
    out: dict[str, tuple[Path, Path]] = {}

    def save(name: str, writer, tiny_writer) -> None:
        out[name] = (writer(tmp_path / name), tiny_writer(tmp_path / f"tiny-{name}"))

    def pil(img, **kw):
        return lambda p: (img.save(p, **kw), p)[1]

    tiny = Image.fromarray(noise[:16, :16])
    save("rgb.jpg", pil(Image.fromarray(noise), quality=90), pil(tiny))
    save("progressive.jpg", pil(Image.fromarray(smooth), progressive=True), pil(tiny))
    save("grey.png", pil(Image.fromarray(smooth[..., 0]), compress_level=1), pil(tiny))
    rgba = np.dstack([smooth, smooth[..., :1]])
    save("rgba.png", pil(Image.fromarray(rgba), compress_level=1), pil(tiny))
    save("exif6.jpg", pil(Image.fromarray(smooth), exif=_exif(6)), pil(tiny))

    def tif(**kw):
        return lambda p: (tifffile.imwrite(p, kw.pop("data", smooth), **kw), p)[1]

    save("tiled.tif", tif(tile=(256, 256), photometric="rgb", compression="jpeg"),
         tif(data=noise[:16, :16], photometric="rgb"))  # fmt: skip
    save("grey16.tif", tif(data=(smooth[..., 0].astype(np.uint16) * 16), rowsperstrip=64),
         tif(data=noise[:16, :16, 0].astype(np.uint16)))  # fmt: skip
    return out


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_the_memory_estimate_covers_the_measured_peak(tmp_path):
    kinds = _kinds(tmp_path)
    args = [str(p) for pair in kinds.values() for p in pair]
    # A fixed mmap threshold: large blocks go back to the system when freed, so that
    # one read's peak does not hide in memory that an earlier read left resident.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args],
        capture_output=True, text=True, timeout=120, check=True, env=env,
    )  # fmt: skip
    measured = json.loads(run.stdout)
    results = {name: measured[str(path)] for name, (path, _) in kinds.items()}
    slack = 8 * 1024**2  # allocator and page granularity
    for name, r in results.items():
        assert r["used"] <= r["need"] * 1.05 + slack, (name, results)
        assert r["need"] <= 2.5 * r["used"] + 32 * 1024**2, (name, results)
