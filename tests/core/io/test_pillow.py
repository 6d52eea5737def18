"""JPEG, PNG and BMP: real camera files, every Pillow mode, EXIF orientation, damaged files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hostile.make_corpus import jpeg_cut_and_closed, jpeg_with_lying_size
from PIL import Image, ImageFile, ImageOps

from leukview.core.errors import LeukViewError
from leukview.core.io import image_info, read_image
from leukview.core.io._pillow import pillow_guard

SAMPLES = Path(__file__).resolve().parents[3] / "resources" / "samples"
RNG = np.random.default_rng(11)


def _pillow_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# --------------------------------------------------------------------------- real files


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.jpg")), ids=lambda p: p.stem)
def test_reads_bundled_bccd_jpegs_like_pillow(path):
    img = read_image(path)
    assert img.dtype == np.uint8 and img.shape == (480, 640, 3)
    assert np.array_equal(img, _pillow_rgb(path))
    info = image_info(path)
    assert (info.width, info.height, info.levels, info.format) == (640, 480, [(640, 480)], "JPEG")
    assert info.tiled is False


@pytest.mark.real_data
@pytest.mark.parametrize(
    "pattern",
    ["pbc/neutrophil/*.jpg", "zheng2018/dataset2/images/*.png", "cnmc/fold_0/all/*.png"],
)
def test_reads_real_images_at_their_size(data_dir, pattern):
    path = sorted(data_dir.glob(pattern))[0]
    img = read_image(path)
    ref = _pillow_rgb(path)
    assert img.shape == ref.shape and img.dtype == np.uint8
    assert np.array_equal(img, ref)
    assert (image_info(path).height, image_info(path).width) == img.shape[:2]


@pytest.mark.real_data
def test_cnmc_black_background_stays_black(data_dir):
    img = read_image(sorted((data_dir / "cnmc" / "fold_0" / "hem").glob("*.png"))[0])
    corners = img[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert corners.max() < 10  # segmented cell on black, not composited to white


def test_opaque_black_background_stays_black(tmp_path):
    # Like C-NMC's segmented cells: RGB on black, no alpha, so nothing is composited.
    cell = np.zeros((30, 30, 3), np.uint8)
    cell[10:20, 10:20] = (150, 90, 200)
    Image.fromarray(cell).save(tmp_path / "cell.png")
    assert np.array_equal(read_image(tmp_path / "cell.png"), cell)


# --------------------------------------------------------------------------- Pillow layouts


def test_greyscale_png_becomes_three_equal_channels(tmp_path, rgb):
    grey = rgb[..., 0]
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    assert img.shape == (40, 50, 3)
    for c in range(3):
        assert np.array_equal(img[..., c], grey)


def test_rgba_png_is_composited_on_white(tmp_path, rgb):
    rgba = np.dstack([rgb, np.full((40, 50), 255, np.uint8)])
    rgba[:10, :, 3] = 0  # transparent band
    rgba[10:20, :, 3] = 128  # half transparent band
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    assert (img[:10] == 255).all()
    assert np.array_equal(img[20:], rgb[20:])
    half = np.rint(rgb[10:20] * (128 / 255) + 255 * (1 - 128 / 255))
    assert np.abs(img[10:20].astype(int) - half).max() <= 1


def test_grey_alpha_png(tmp_path):
    la = np.dstack([np.full((8, 8), 0, np.uint8), np.full((8, 8), 0, np.uint8)])
    la[:4, :, 1] = 255
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    img = read_image(tmp_path / "la.png")
    assert (img[:4] == 0).all() and (img[4:] == 255).all()


def test_palette_png_with_and_without_transparency(tmp_path):
    index = (np.arange(40 * 50).reshape(40, 50) % 4).astype(np.uint8)
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30] + [0] * (252 * 3)
    im = Image.fromarray(index, "P")
    im.putpalette(palette)
    im.save(tmp_path / "p.png")
    im.save(tmp_path / "pt.png", transparency=3)
    colours = np.array(palette[:12], np.uint8).reshape(4, 3)
    assert np.array_equal(read_image(tmp_path / "p.png"), colours[index])
    img = read_image(tmp_path / "pt.png")
    assert (img[index == 3] == 255).all()
    assert np.array_equal(img[index == 0], np.tile([255, 0, 0], ((index == 0).sum(), 1)))


def test_bmp_24_bit_and_8_bit_palette(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "c.bmp")
    assert np.array_equal(read_image(tmp_path / "c.bmp"), rgb)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.bmp")
    assert np.array_equal(read_image(tmp_path / "p.bmp"), _pillow_rgb(tmp_path / "p.bmp"))
    assert image_info(tmp_path / "p.bmp").format == "BMP"


def test_one_bit_png(tmp_path, rgb):
    Image.fromarray(rgb[..., 0] > 127).save(tmp_path / "b.png")
    img = read_image(tmp_path / "b.png")
    assert np.array_equal(img[..., 1], np.where(rgb[..., 0] > 127, 255, 0))


def test_cmyk_jpeg_is_converted_to_rgb_like_pillow(tmp_path, rgb):
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "k.jpg", quality=95)
    img = read_image(tmp_path / "k.jpg")
    assert img.shape == (40, 50, 3)
    assert np.array_equal(img, _pillow_rgb(tmp_path / "k.jpg"))


def test_16_bit_grey_png_with_12_bit_data_is_not_black(tmp_path):
    data = (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16)  # 0..4095
    Image.fromarray(data).save(tmp_path / "g16.png")
    img = read_image(tmp_path / "g16.png")
    assert img.max() == 255 and img[..., 0].mean() > 100
    assert np.array_equal(img[..., 0], np.rint(data * (255 / 4095)).astype(np.uint8))


def test_16_bit_rgb_png_keeps_its_low_byte_scaling(tmp_path):
    import imagecodecs

    data = RNG.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    data[0, 0] = 65535
    (tmp_path / "c16.png").write_bytes(imagecodecs.png_encode(data))
    img = read_image(tmp_path / "c16.png")
    assert np.array_equal(img, np.rint(data * (255 / 65535)).astype(np.uint8))


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_exif_transpose(tmp_path, orientation):
    # A red block top-left makes every flip and rotation distinguishable.
    src = np.full((40, 60, 3), 200, np.uint8)
    src[:10, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(src).save(path, exif=exif, quality=95)
    img = read_image(path)
    with Image.open(path) as im:
        ref = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert np.array_equal(img, ref)
    info = image_info(path)
    assert (info.height, info.width) == img.shape[:2]
    assert img.shape[:2] == ((40, 60) if orientation <= 4 else (60, 40))


def test_exif_rotated_jpeg_puts_the_top_left_corner_where_the_camera_meant(tmp_path):
    src = np.full((40, 60, 3), 200, np.uint8)
    src[:10, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    Image.fromarray(src).save(tmp_path / "r.jpg", exif=exif, quality=95)
    img = read_image(tmp_path / "r.jpg")
    assert img.shape == (60, 40, 3)
    assert img[5, -5, 0] > 200 and img[5, -5, 1] < 60  # red now top-right
    assert img[5, 5, 1] > 150  # top-left is background


def test_png_exif_orientation_is_applied(tmp_path, rgb):
    exif = Image.Exif()
    exif[0x0112] = 8  # display rotated 90 degrees counter-clockwise
    Image.fromarray(rgb).save(tmp_path / "o.png", exif=exif)
    assert np.array_equal(read_image(tmp_path / "o.png"), np.rot90(rgb, 1))
    info = image_info(tmp_path / "o.png")
    assert (info.width, info.height) == (40, 50)


# --------------------------------------------------------------------------- damaged files


def test_truncated_jpeg_is_an_error_not_a_grey_half(
    tmp_path, monkeypatch, sample_jpeg, expect_error
):
    data = sample_jpeg.read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, "truncated")
    # Even when someone else in the process switched Pillow to tolerate truncation.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    expect_error(path, "truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_damaged_png_data(tmp_path, rgb, expect_error):
    Image.fromarray(rgb).save(tmp_path / "ok.png")
    raw = bytearray((tmp_path / "ok.png").read_bytes())
    raw[60:200] = bytes(140)  # wipe the start of the compressed pixels
    (tmp_path / "bad.png").write_bytes(bytes(raw))
    err = expect_error(tmp_path / "bad.png", "PNG")
    assert isinstance(err, LeukViewError)


def test_pillow_guard_restores_pillow_globals_after_an_error(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1234)
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError), pillow_guard():
        assert Image.MAX_IMAGE_PIXELS is None and ImageFile.LOAD_TRUNCATED_IMAGES is False
        raise RuntimeError("decoder failed")
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == (1234, True)


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.6, 0.85])
def test_jpeg_data_ending_early_before_an_eoi_marker_is_an_error(
    tmp_path, sample_jpeg, expect_error, progressive, fraction
):
    # libjpeg fills what is missing with grey and only warns; Pillow drops the warning.
    buf = io.BytesIO()
    Image.open(sample_jpeg).save(buf, "JPEG", quality=90, progressive=progressive)
    path = jpeg_cut_and_closed(tmp_path / "cut.jpg", buf.getvalue(), fraction)
    expect_error(path, "end early", "cut short")


def test_jpeg_header_claiming_more_than_its_data_is_refused_before_decoding(
    tmp_path, monkeypatch, expect_error
):
    path = jpeg_with_lying_size(tmp_path / "claims.jpg", 4000, 3000)  # fits the budget

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    expect_error(path, "4000 x 3000", "end early", "bytes of image data")


def test_complete_jpegs_are_not_mistaken_for_cut_ones(tmp_path, sample_jpeg):
    # A bright field with a mid-grey corner that is not exactly 128 everywhere.
    field = np.full((64, 80, 3), 230, np.uint8)
    field[-16:, -16:] = 127
    for progressive in (False, True):
        Image.fromarray(field).save(tmp_path / "f.jpg", quality=95, progressive=progressive)
        assert read_image(tmp_path / "f.jpg").shape == (64, 80, 3)
    buf = io.BytesIO()
    Image.open(sample_jpeg).save(buf, "JPEG", progressive=True)
    (tmp_path / "p.jpg").write_bytes(buf.getvalue())
    assert read_image(tmp_path / "p.jpg").shape == (480, 640, 3)
    # Mid-grey everywhere (a test card): the fill would not change it, so it is taken as is.
    for mode, grey in (("RGB", (128, 128, 128)), ("L", 128)):
        Image.new(mode, (24, 40), grey).save(tmp_path / "grey.jpg")
        assert (read_image(tmp_path / "grey.jpg") == 128).all()
