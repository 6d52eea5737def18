"""Which files are taken: suffixes, the format from the first bytes, files that are not images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from leukview.core.errors import ImageReadError
from leukview.core.io import SUPPORTED_SUFFIXES, image_info, is_supported, read_image


def test_supported_suffixes_and_is_supported():
    assert all(s == s.lower() and s.startswith(".") for s in SUPPORTED_SUFFIXES)
    assert {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"} <= set(SUPPORTED_SUFFIXES)
    assert is_supported("a/b/Slide.OME.TIF") and is_supported(Path("x.JPG"))
    assert not is_supported("notes.txt") and not is_supported("cells.gif")
    assert not is_supported("._BloodImage_00001.jpg")  # macOS resource fork
    assert not is_supported("jpg")


def test_missing_folder_and_empty_file(tmp_path, expect_error):
    expect_error(tmp_path / "nope.jpg", "no such file")
    (tmp_path / "dir.png").mkdir()
    expect_error(tmp_path / "dir.png", "folder")
    (tmp_path / "empty.jpg").write_bytes(b"")
    expect_error(tmp_path / "empty.jpg", "empty")
    expect_error(tmp_path / "empty.jpg", "empty", call=image_info)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a named pipe")
def test_a_named_pipe_is_not_a_regular_file(tmp_path, expect_error):
    os.mkfifo(tmp_path / "pipe.png")
    expect_error(tmp_path / "pipe.png", "not a regular file")


def test_text_named_tif(tmp_path, expect_error):
    path = tmp_path / "notes.tif"
    path.write_text("patient 12, smear 3\nlooks fine\n")
    expect_error(path, "not a TIFF", "text")
    expect_error(path, "not a TIFF", call=image_info)


def test_unsupported_and_unrecognised_formats(tmp_path, rgb, expect_error):
    Image.fromarray(rgb).save(tmp_path / "cells.gif")
    expect_error(tmp_path / "cells.gif", "unsupported", "GIF")
    (tmp_path / "noise.png").write_bytes(bytes(range(256)) * 4)
    expect_error(tmp_path / "noise.png", "not a PNG", "unrecognised")
    Image.fromarray(rgb).save(tmp_path / "real.png")  # PNG content under a .jpg name
    (tmp_path / "real.png").rename(tmp_path / "misnamed.jpg")
    assert np.array_equal(read_image(tmp_path / "misnamed.jpg"), rgb)


@pytest.mark.parametrize(
    ("head", "what"),
    [
        (b"%PDF-1.7\n" + bytes(range(128, 256)), "PDF"),
        (b"PK\x03\x04" + bytes(60), "ZIP"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(40), "WebP"),
        (b"\x00\x00\x00\x18ftypheic" + bytes(40), "HEIF"),
    ],
)
def test_other_formats_are_named(tmp_path, expect_error, head, what):
    (tmp_path / "scan.dat").write_bytes(head)
    expect_error(tmp_path / "scan.dat", "unsupported format", what)


def test_not_a_path_is_an_image_read_error():
    with pytest.raises(ImageReadError, match="not a file path"):
        read_image(12345)  # type: ignore[arg-type]
