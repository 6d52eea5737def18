"""Which files are taken: suffixes, the format from the first bytes, files that are not images."""

from __future__ import annotations

import logging
import os
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile
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


# -- things in a folder that are not regular files: a clear reason, never a hang


@pytest.mark.parametrize("call", [read_image, image_info])
def test_a_symbolic_link_loop_is_named(tmp_path, expect_error, call):
    os.symlink(tmp_path / "b.jpg", tmp_path / "a.jpg")
    os.symlink(tmp_path / "a.jpg", tmp_path / "b.jpg")
    os.symlink(tmp_path / "self.png", tmp_path / "self.png")
    expect_error(tmp_path / "a.jpg", "symbolic link loop", call=call)
    expect_error(tmp_path / "self.png", "symbolic link loop", call=call)


def test_a_broken_symbolic_link_names_its_target(tmp_path, expect_error):
    os.symlink(tmp_path / "gone.jpg", tmp_path / "link.jpg")
    expect_error(tmp_path / "link.jpg", "broken symbolic link", "gone.jpg")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
@pytest.mark.parametrize("call", [read_image, image_info])
def test_a_link_to_a_device_is_refused_without_reading_it(tmp_path, expect_error, call):
    os.symlink("/dev/zero", tmp_path / "zero.tif")
    expect_error(tmp_path / "zero.tif", "character device", "not a regular file", call=call)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a named pipe")
@pytest.mark.parametrize("call", [read_image, image_info])
def test_a_named_pipe_never_blocks(tmp_path, expect_error, call):
    # Opening a FIFO with no writer blocks for ever: the type is checked first.
    os.mkfifo(tmp_path / "pipe.jpg")
    done = []

    def run():
        with pytest.raises(ImageReadError) as info:
            call(tmp_path / "pipe.jpg")
        done.append(info.value.reason)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():
        with open(tmp_path / "pipe.jpg", "wb"):  # release the reader before failing
            pass
        pytest.fail("reading a named pipe blocked")
    assert "named pipe" in done[0] and "not a regular file" in done[0]


def test_a_path_through_a_file_is_no_such_file(tmp_path, sample_jpeg, expect_error):
    (tmp_path / "x.jpg").write_bytes(sample_jpeg.read_bytes())
    expect_error(tmp_path / "x.jpg" / "y.jpg", "no such file")


def test_names_that_are_long_not_utf8_or_odd_are_read(tmp_path, sample_jpeg):
    data = sample_jpeg.read_bytes()
    folder = os.fsencode(tmp_path)
    names = [b"\xff\xfe-latin1-\xe9.jpg", b"=HYPERLINK(1).jpg", b"-rf.jpg", b"a" * 236 + b".jpg"]
    for name in names:
        path = os.path.join(folder, name)
        with open(path, "wb") as fh:
            fh.write(data)
        assert read_image(path).shape == (480, 640, 3)  # bytes paths are taken as they are
        assert read_image(os.fsdecode(path)).shape == (480, 640, 3)
        assert image_info(path).width == 640


def test_a_name_too_long_for_the_system(tmp_path, expect_error):
    expect_error(tmp_path / ("a" * 300 + ".jpg"), "name is too long")


def test_tifffile_log_lines_become_warnings_not_stderr(tmp_path, rgb, capfd):
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", description="x" * 64)
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tag = tif.pages.first.tags[270]
        offset = tag.valueoffset
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, tag.offset + 8, len(data) + 10_000)  # value beyond the end
    path.write_bytes(bytes(data))
    assert offset != len(data) + 10_000
    app_log: list[logging.LogRecord] = []
    app_handler = logging.Handler()
    app_handler.emit = app_log.append  # type: ignore[method-assign]
    logging.getLogger().addHandler(app_handler)  # the application's own logging
    try:
        info = image_info(path)
        assert np.array_equal(read_image(path), rgb)
    finally:
        logging.getLogger().removeHandler(app_handler)
    # Neither printed nor passed on to the application's logging, where it would be
    # printed once per open.
    _, err = capfd.readouterr()
    assert err == "", err
    assert not [r for r in app_log if r.name.startswith("tifffile")]
    assert any(w.startswith("tifffile:") and "offset" in w for w in info.warnings), info.warnings
    assert all("<tifffile." not in w for w in info.warnings)
