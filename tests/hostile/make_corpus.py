"""The hostile image corpus: damaged, lying and odd files that LeukView must refuse clearly.

:func:`make_corpus` writes a folder of image files, most of them bad (cut short,
header bombs, lying TIFF tiles, missing tiles, OME references to other files,
absurd pixel sizes, random bytes with image suffixes, FIFOs, link loops, ...),
a few good (the bundled samples, a small TIFF, odd but valid depths and alphas,
names a spreadsheet or a shell would misread), and returns one :class:`Entry`
per file saying what it is and what a reader must say about it. The image-input
tests read every entry (``tests/core/io/test_hostile.py``); the CLI tests can
run ``leukview analyze`` over the same folder.

Stable contract
---------------
* File names, and whether an entry is good or bad, do not change between runs
  (new entries may be added). Contents are deterministic (fixed seeds).
* ``Entry.kind`` is one of :data:`KINDS`; for a bad entry, the reason of the
  error must contain at least one of ``REASON_WORDS[kind]`` (lower case).
* Entries the platform cannot make (FIFO, symbolic links, non-UTF-8 names) are
  left out rather than faked. ``large=True`` adds genuine big files (an
  8192 x 8192 tiled TIFF) that take seconds to write and to read.

Run as a script to write a corpus and list it::

    python tests/hostile/make_corpus.py /tmp/corpus [--large]

The crafting helpers below (an OME-XML header, a TIFF written and then patched,
...) are also used by the image-input tests one by one.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

__all__ = [
    "GOOD_KINDS",
    "KINDS",
    "REASON_WORDS",
    "Entry",
    "jpeg_cut_and_closed",
    "jpeg_with_lying_size",
    "make_corpus",
    "ome_xml",
    "png_streamed",
    "tiff_with_huge_tiles",
    "tiff_with_missing_tiles",
    "write_ome_tiff",
]

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"

#: What a reader must say about a bad entry: its error reason contains one of these.
REASON_WORDS: dict[str, tuple[str, ...]] = {
    "truncated": ("truncated", "end early"),
    "too-large": ("limit", "budget"),
    "missing-tiles": ("no data",),
    "external-reference": ("other file",),
    "empty": ("empty",),
    "not-an-image": ("not a ", "unsupported format", "unrecognised", "text"),
    "damaged": ("damaged", "cannot be decoded", "not recognised", "truncated", "no image"),
    "unsupported": ("unsupported",),
    "not-regular": ("not a regular file",),
    "link-loop": ("symbolic link loop",),
    "broken-link": ("broken symbolic link",),
    "folder": ("folder",),
}

#: Kinds of good entries: ``ok`` reads with no warning; ``ok-no-pixel-size`` reads,
#: its absurd pixel size is ignored (None) with a warning; ``ok-warning`` reads with
#: a warning about its structure.
GOOD_KINDS = ("ok", "ok-no-pixel-size", "ok-warning")

#: Every kind an entry may have.
KINDS = GOOD_KINDS + tuple(REASON_WORDS)


@dataclass(frozen=True)
class Entry:
    """One file of the corpus.

    Attributes
    ----------
    path : pathlib.Path
        Where it is. A name that is not UTF-8 is in the path as the operating
        system decodes it (surrogate escapes); ``name`` has its bytes.
    name : bytes
        The file name as bytes.
    good : bool
        True when LeukView must read it (and analyse it); False when it must
        refuse it with a reason.
    kind : str
        One of :data:`KINDS`: ``ok`` ... for good entries, else the kind of
        reason expected (see :data:`REASON_WORDS`).
    note : str
        What the file is, for a person.
    """

    path: Path
    name: bytes
    good: bool
    kind: str
    note: str


def ome_xml(
    width: int = 32,
    height: int = 32,
    *,
    physical_size_x: str | None = "0.25",
    unit: str = "&#181;m",
    references: tuple[tuple[str, str], ...] = (),
) -> str:
    """Minimal OME-XML for one RGB plane (``SizeC=3``, one 3-sample channel).

    Parameters
    ----------
    width, height : int
        ``SizeX``, ``SizeY``.
    physical_size_x : str or None
        ``PhysicalSizeX`` written as is (so ``'1e308'``, ``'inf'``, ``'nan'``, ``'-1'`` fit);
        None leaves the attribute out.
    unit : str
        ``PhysicalSizeXUnit`` (XML-escaped: TIFF descriptions are ASCII).
    references : tuple of (file name, UUID)
        ``TiffData`` elements whose ``UUID FileName`` names another file; empty:
        the plane is in this file.
    """
    size = "" if physical_size_x is None else f' PhysicalSizeX="{physical_size_x}"'
    size += f' PhysicalSizeXUnit="{unit}"' if physical_size_x is not None else ""
    if references:
        data = "".join(
            f'<TiffData IFD="0" PlaneCount="1"><UUID FileName="{name}">{uuid}</UUID></TiffData>'
            for name, uuid in references
        )
    else:
        data = '<TiffData IFD="0" PlaneCount="1"/>'
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
        'UUID="urn:uuid:00000000-0000-0000-0000-000000000001">'
        '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" '
        f'SizeX="{width}" SizeY="{height}" SizeC="3" SizeZ="1" SizeT="1"{size}>'
        '<Channel ID="Channel:0:0" SamplesPerPixel="3"/>'
        f"{data}</Pixels></Image></OME>"
    )


def write_ome_tiff(path: Path, rgb: np.ndarray, xml: str) -> Path:
    """An RGB ``(H, W, 3)`` uint8 plane with ``xml`` as its OME-XML description."""
    tifffile.imwrite(path, rgb, photometric="rgb", description=xml, metadata=None)
    return path


def jpeg_with_lying_size(path: Path, width: int, height: int) -> Path:
    """A 40 x 40 baseline JPEG (about 1.5 KB) whose SOF0 header claims ``width x height``.

    Its data end, with an EOI marker, long before the claimed size: libjpeg
    fills the rest with grey without an error.
    """
    noise = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "JPEG", quality=60)
    data = bytearray(buf.getvalue())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


def jpeg_cut_and_closed(path: Path, source: bytes, fraction: float) -> Path:
    """The first ``fraction`` of a JPEG's bytes, closed again with an EOI marker."""
    path.write_bytes(source[: int(len(source) * fraction)] + b"\xff\xd9")
    return path


def tiff_with_missing_tiles(
    path: Path, missing: tuple[int, ...] = (5, 77, 200), side: int = 256, tile: int = 16
) -> tuple[Path, np.ndarray]:
    """A ``side`` x ``side`` RGB TIFF of ``(side / tile)**2`` tiles, some with no data.

    The tiles at the indices in ``missing`` get a zero offset and byte count, as a
    damaged writer leaves them; tifffile reads them as black without a word.
    Returns the path and the pixels as written.
    """
    data = np.random.default_rng(11).integers(0, 256, (side, side, 3), dtype=np.uint8)
    tifffile.imwrite(path, data, tile=(tile, tile), photometric="rgb", compression="zlib")
    with tifffile.TiffFile(path, mode="r+b") as tif:
        page = tif.pages.first
        offsets, counts = list(page.dataoffsets), list(page.databytecounts)
        for i in missing:
            offsets[i] = counts[i] = 0
        page.tags["TileOffsets"].overwrite(offsets)
        page.tags["TileByteCounts"].overwrite(counts)
    return path, data


def tiff_with_huge_tiles(
    path: Path, tile_width: int = 65536, tile_length: int = 32768, compression: str = "jpeg"
) -> Path:
    """A 64 x 64 RGB TIFF of one tile whose tags claim ``tile_width x tile_length`` (2**31).

    Decoding that tile would allocate the claimed size (6 GB for RGB).
    """
    data = np.random.default_rng(12).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    tifffile.imwrite(path, data, tile=(64, 64), photometric="rgb", compression=compression)
    with tifffile.TiffFile(path, mode="r+b") as tif:
        page = tif.pages.first
        page.tags["TileWidth"].overwrite(tile_width)
        page.tags["TileLength"].overwrite(tile_length)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_streamed(path: Path, width: int, height: int, value: int = 200) -> Path:
    """A genuine grey PNG of one value, written without holding its pixels.

    One block of rows is deflated once (a full flush makes it independent of what
    came before) and repeated, so a 20000 x 20000 PNG (about 440 KB) takes well
    under a second; the zlib checksum covers every row.
    """
    row = b"\x00" + bytes([value]) * width  # filter type 0, then the samples
    per_block = max(1, (4 << 20) // len(row))
    raw = row * min(per_block, height)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(raw) + deflate.flush(zlib.Z_FULL_FLUSH)
    full, rest = divmod(height, per_block)
    adler = 1
    with open(path, "wb") as fh:
        ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
        fh.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr))
        data = bytearray(b"\x78\xda")
        for _ in range(full):
            data += block
            adler = zlib.adler32(raw, adler)
        last = zlib.compressobj(9, zlib.DEFLATED, -15)
        data += last.compress(row * rest) + last.flush(zlib.Z_FINISH)
        adler = zlib.adler32(row * rest, adler)
        data += struct.pack(">I", adler)
        fh.write(_png_chunk(b"IDAT", bytes(data)) + _png_chunk(b"IEND", b""))
    return path


# --------------------------------------------------------------------------- the corpus


def _field() -> np.ndarray:
    """A bundled smear field, ``(480, 640, 3)`` uint8."""
    with Image.open(SAMPLES / "BloodImage_00056.jpg") as im:
        return np.asarray(im.convert("RGB"))


def _jpeg_bytes(rgb: np.ndarray, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90, **kwargs)
    return buf.getvalue()


def _png_bytes(img: np.ndarray | Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    (img if isinstance(img, Image.Image) else Image.fromarray(img)).save(buf, "PNG", **kwargs)
    return buf.getvalue()


def _tiff_bytes(data: np.ndarray, **kwargs) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, data, **kwargs)
    return buf.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def _bomb_tiff(width: int, height: int) -> bytes:
    """A grey, uncompressed, single-strip TIFF header claiming ``width x height``."""
    tags = [  # (tag, type, value): type 3 SHORT, 4 LONG
        (256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
        (273, 4, 8 + 2 + 9 * 12 + 4), (277, 3, 1), (278, 4, height), (279, 4, 16),
    ]  # fmt: skip
    ifd = struct.pack("<H", len(tags))
    for tag, typ, value in tags:
        packed = struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, typ, 1) + packed
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 4 + b"\x80" * 16


def _tiff_bad_tag_offset(path: Path, rgb: np.ndarray) -> Path:
    """A sound TIFF whose ImageDescription points past the end: tifffile logs, pixels read."""
    tifffile.imwrite(path, rgb, photometric="rgb", description="x" * 64)
    with tifffile.TiffFile(path) as tif:
        where = tif.pages.first.tags[270].offset
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, where + 8, len(data) + 10_000)
    path.write_bytes(bytes(data))
    return path


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _big_tiled_tiff(path: Path, field: np.ndarray, side: int = 8192, tile: int = 256) -> Path:
    """A genuine ``side x side`` JPEG-tiled RGB TIFF, written tile by tile (about 10 MB)."""
    h, w = field.shape[:2]

    def tiles():
        for ty in range(0, side, tile):
            for tx in range(0, side, tile):
                y, x = ty % (h - tile), tx % (w - tile)
                yield np.ascontiguousarray(field[y : y + tile, x : x + tile])

    tifffile.imwrite(
        path, tiles(), shape=(side, side, 3), dtype=np.uint8, tile=(tile, tile),
        photometric="rgb", compression="jpeg",
    )  # fmt: skip
    return path


def make_corpus(folder: str | os.PathLike[str], *, large: bool = False) -> list[Entry]:
    """Write the hostile corpus into ``folder`` (created) and describe every file.

    Parameters
    ----------
    folder : str or path-like
        Where the files go; it should be empty (files of the same names are
        replaced).
    large : bool, optional
        Also write genuine large files (an 8192 x 8192 tiled TIFF), good but
        slow to read and to analyse.

    Returns
    -------
    list of Entry
        One per file written, in a fixed order (see the notes of this module
        for what stays stable).
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    field = _field()
    rng = np.random.default_rng(2024)
    crop = np.ascontiguousarray(field[:256, :320])
    entries: list[Entry] = []

    def add(name: str | bytes, good: bool, kind: str, note: str, write: Callable[[Path], object]):
        raw = name if isinstance(name, bytes) else name.encode()
        path = Path(os.fsdecode(os.path.join(os.fsencode(root), raw)))
        if path.is_symlink() or path.exists():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        try:
            write(path)
        except (NotImplementedError, OSError, AttributeError) as exc:
            # No os.mkfifo (AttributeError), symbolic links refused (EPERM) or not
            # supported (ENOSYS, EOPNOTSUPP): the platform cannot make it; anything
            # else is a bug here.
            if isinstance(exc, OSError) and exc.errno not in (None, 1, 38, 95):
                raise
            return
        entries.append(Entry(path, raw, good, kind, note))

    def data(payload: bytes) -> Callable[[Path], object]:
        return lambda p: p.write_bytes(payload)

    def copy(src: Path) -> Callable[[Path], object]:
        return lambda p: shutil.copyfile(src, p)

    sample = SAMPLES / "BloodImage_00056.jpg"
    # ---- good: what LeukView reads
    for src in sorted(SAMPLES.glob("*.jpg")):
        add(f"good-{src.name}", True, "ok", "a bundled smear field (camera JPEG)", copy(src))
    add(
        "good-tiled.tif",
        True,
        "ok",
        "a small tiled RGB TIFF",
        data(_tiff_bytes(crop, photometric="rgb", tile=(64, 64), compression="zlib")),
    )
    add(
        "good-pyramid.ome.tif",
        True,
        "ok",
        "a small pyramidal OME-TIFF (SubIFDs)",
        lambda p: _pyramid(p, crop),
    )
    add(
        "good-png-named.jpg",
        True,
        "ok",
        "a PNG with a .jpg suffix (format from content)",
        data(_png_bytes(crop)),
    )
    add(
        "good-grey16.png",
        True,
        "ok",
        "16-bit grey PNG with 12-bit data",
        data(_png_bytes(Image.fromarray(crop[..., 1].astype(np.uint16) * 16))),
    )
    add(
        "good-rgba.png",
        True,
        "ok",
        "RGBA PNG, half transparent",
        data(_png_bytes(np.dstack([crop, np.full(crop.shape[:2], 128, np.uint8)]))),
    )
    add(
        "good-palette.png",
        True,
        "ok",
        "palette PNG",
        data(_png_bytes(Image.fromarray(crop).quantize(64))),
    )
    add(
        "good-float.tif",
        True,
        "ok",
        "float32 RGB TIFF, 0..1",
        data(_tiff_bytes(crop.astype(np.float32) / 255, photometric="rgb")),
    )
    add("good-rgba16.tif", True, "ok", "16-bit RGBA TIFF, unassociated alpha",
        data(_tiff_bytes(np.dstack([crop, crop[..., :1]]).astype(np.uint16) * 257,
                         photometric="rgb", extrasamples=["unassalpha"])))  # fmt: skip
    add(
        "good-exif-rotated.jpg",
        True,
        "ok",
        "JPEG with EXIF orientation 6",
        data(_jpeg_bytes(crop, exif=_exif(6))),
    )
    for name in ('=HYPERLINK("x.com";"y").jpg', "+1.jpg", "-rf.jpg", "@SUM(A1).jpg"):
        add(f"{name}", True, "ok", "a name a spreadsheet or a shell would misread", copy(sample))
    long = "good-long-" + "x" * (240 - len("good-long-") - len(".jpg")) + ".jpg"
    add(long, True, "ok", "a 240-byte file name", copy(sample))
    add(b"good-latin1-\xe9\xff.jpg", True, "ok", "a file name that is not UTF-8", copy(sample))
    for value in ("1e308", "inf", "nan", "0", "-0.25"):
        add(
            f"pixel-size-{value}.ome.tif",
            True,
            "ok-no-pixel-size",
            f"OME PhysicalSizeX={value}: ignored, pixel size unknown",
            lambda p, v=value: write_ome_tiff(p, crop, ome_xml(320, 256, physical_size_x=v)),
        )
    add("pixel-size-aperio-1e308.tif", True, "ok-no-pixel-size", "Aperio MPP = 1e308",
        data(_tiff_bytes(crop, photometric="rgb",
                         description="Aperio Image Library v12\n320x256 JPEG/RGB|MPP = 1e308")))  # fmt: skip
    add("pixel-size-imagej-overflow.tif", True, "ok-no-pixel-size",
        "ImageJ resolution 1/4294967295 px per um",
        data(_tiff_bytes(crop[..., 0], imagej=True, metadata={"unit": "um"},
                         resolution=(1 / 4294967295, 1 / 4294967295))))  # fmt: skip
    add(
        "odd-tag-offset.tif",
        True,
        "ok-warning",
        "a tag value past the end (tifffile logs)",
        lambda p: _tiff_bad_tag_offset(p, crop),
    )

    # ---- bad: cut short
    jpeg = _jpeg_bytes(field)
    add("cut.jpg", False, "truncated", "a JPEG cut in half", data(jpeg[: len(jpeg) // 2]))
    add(
        "cut-closed.jpg",
        False,
        "truncated",
        "a JPEG cut in half, EOI appended",
        lambda p: jpeg_cut_and_closed(p, jpeg, 0.5),
    )
    add(
        "cut-closed-progressive.jpg",
        False,
        "truncated",
        "a progressive JPEG cut at 40 %, EOI appended",
        lambda p: jpeg_cut_and_closed(p, _jpeg_bytes(field, progressive=True), 0.4),
    )
    png = _png_bytes(field)
    add("cut.png", False, "truncated", "a PNG cut in half", data(png[: len(png) // 2]))
    add(
        "cut-closed.png",
        False,
        "truncated",
        "a PNG cut in half, IEND appended",
        data(png[: len(png) // 2] + _png_chunk(b"IEND", b"")),
    )
    bmp = io.BytesIO()
    Image.fromarray(crop).save(bmp, "BMP")
    add(
        "cut.bmp",
        False,
        "truncated",
        "a BMP cut in half",
        data(bmp.getvalue()[: len(bmp.getvalue()) // 2]),
    )
    tif = _tiff_bytes(crop, photometric="rgb", tile=(64, 64), compression="zlib")
    add("cut.tif", False, "truncated", "a tiled TIFF cut in half", data(tif[: len(tif) // 2]))
    # ---- bad: headers that lie, bombs, sizes no reader should attempt
    add(
        "claims-20000x20000.jpg",
        False,
        "truncated",
        "a 1.4 KB JPEG whose header claims 20000 x 20000",
        lambda p: jpeg_with_lying_size(p, 20000, 20000),
    )
    add(
        "bomb-100000x100000.png",
        False,
        "too-large",
        "a PNG header claiming 10 gigapixels",
        data(_bomb_png(100_000, 100_000)),
    )
    add(
        "bomb-100000x100000.tif",
        False,
        "too-large",
        "a TIFF header claiming 10 gigapixels",
        data(_bomb_tiff(100_000, 100_000)),
    )
    add(
        "genuine-20000x20000.png",
        False,
        "too-large",
        "a genuine 440 KB grey PNG of 20000 x 20000 (1.5 GiB to read)",
        lambda p: png_streamed(p, 20000, 20000),
    )
    add(
        "huge-tiles.tif",
        False,
        "too-large",
        "a 64 x 64 TIFF whose one tile claims 2**31 pixels",
        lambda p: tiff_with_huge_tiles(p),
    )
    add(
        "missing-tiles.tif",
        False,
        "missing-tiles",
        "3 of 256 tiles with no data",
        lambda p: tiff_with_missing_tiles(p),
    )
    # ---- bad: pixel data somewhere else
    uuid = "urn:uuid:00000000-0000-0000-0000-000000000002"
    for tag, target in (("sibling", "good-tiled.tif"), ("parent", "../outside.tif"),
                        ("passwd", "../../../../../../etc/passwd")):  # fmt: skip
        add(
            f"ome-ref-{tag}.ome.tif",
            False,
            "external-reference",
            f"an OME-TIFF whose pixels are said to be in {target}",
            lambda p, t=target: write_ome_tiff(p, crop, ome_xml(320, 256, references=((t, uuid),))),
        )
    # ---- bad: not images, or not what the suffix says
    add("empty.jpg", False, "empty", "0 bytes", data(b""))
    add("zero-width.png", False, "damaged", "a PNG header with width 0", data(_bomb_png(0, 10)))
    for suffix in ("jpg", "png", "tif", "bmp"):
        add(
            f"random.{suffix}",
            False,
            "not-an-image",
            "random bytes",
            data(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()),
        )
    add("text.tif", False, "not-an-image", "a text file", data(b"patient 12, smear 3\nfine\n"))
    add("gif-named.png", False, "not-an-image", "a GIF named .png", data(b"GIF89a" + bytes(64)))
    add("pdf-named.tif", False, "not-an-image", "a PDF named .tif", data(b"%PDF-1.4\n" + bytes(64)))
    add(
        "tiff-magic-then-random.tif",
        False,
        "damaged",
        "TIFF magic, then random bytes",
        data(b"II*\x00" + rng.integers(0, 256, 2048, dtype=np.uint8).tobytes()),
    )
    add("jpeg-header-only.jpg", False, "damaged", "SOI and APP0, no frame", data(jpeg[:20]))
    add(
        "png-bad-crc.png",
        False,
        "damaged",
        "a PNG whose IHDR checksum is wrong",
        data(png[:29] + bytes([png[29] ^ 0xFF]) + png[30:]),
    )
    # ---- bad: sample layouts that are not a bright-field picture
    add(
        "complex.tif",
        False,
        "unsupported",
        "complex64 samples",
        data(_tiff_bytes(crop[..., 0].astype(np.complex64))),
    )
    add(
        "cmyk.tif",
        False,
        "unsupported",
        "a separated (CMYK) TIFF",
        data(_tiff_bytes(np.dstack([crop, crop[..., :1]]), photometric="separated")),
    )
    add("five-channels.tif", False, "unsupported", "five grey channel samples",
        data(_tiff_bytes(rng.integers(0, 256, (32, 32, 5), dtype=np.uint8),
                         photometric="minisblack", planarconfig="contig")))  # fmt: skip
    # ---- bad: not regular files
    add("folder.jpg", False, "folder", "a folder named like an image", lambda p: p.mkdir())
    add(
        "fifo.jpg",
        False,
        "not-regular",
        "a named pipe (opening it would block)",
        lambda p: os.mkfifo(p),
    )
    if os.path.exists("/dev/zero"):
        add(
            "dev-zero.tif",
            False,
            "not-regular",
            "a link to /dev/zero",
            lambda p: os.symlink("/dev/zero", p),
        )
    add(
        "loop-a.jpg",
        False,
        "link-loop",
        "a symbolic link to loop-b.jpg, which links back",
        lambda p: os.symlink(root / "loop-b.jpg", p),
    )
    add(
        "loop-b.jpg",
        False,
        "link-loop",
        "a symbolic link to loop-a.jpg",
        lambda p: os.symlink(root / "loop-a.jpg", p),
    )
    add(
        "self-loop.png", False, "link-loop", "a symbolic link to itself", lambda p: os.symlink(p, p)
    )
    add(
        "broken-link.jpg",
        False,
        "broken-link",
        "a symbolic link to a file that is not there",
        lambda p: os.symlink(root / "not-there.jpg", p),
    )
    if large:
        add(
            "large-8192x8192.tif",
            True,
            "ok",
            "a genuine 8192 x 8192 JPEG-tiled TIFF",
            lambda p: _big_tiled_tiff(p, field),
        )
    return entries


def _pyramid(path: Path, rgb: np.ndarray) -> Path:
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(rgb, subifds=1, photometric="rgb", tile=(64, 64), metadata={"axes": "YXS"})
        tw.write(rgb[::2, ::2], subfiletype=1, photometric="rgb", tile=(64, 64))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the hostile image corpus.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--large", action="store_true", help="also write genuine large files")
    args = parser.parse_args(argv)
    entries = make_corpus(args.folder, large=args.large)
    for e in entries:
        name = e.name.decode("utf-8", "backslashreplace")
        print(f"{'good' if e.good else 'bad ':4}  {e.kind:18}  {name[:60]:60}  {e.note}")
    print(f"{len(entries)} files in {args.folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
