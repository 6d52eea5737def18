"""The structure of a JPEG file, read from its markers, and the signs that its data end early.

libjpeg does not fail when the entropy-coded data stop before the image is
complete but an EOI marker follows (a cut file that was closed again, or a
header that lies about the size): it warns, Pillow drops the warning, and the
rest of the image is filled with mid-grey. Two checks catch it here:

* before decoding, from the markers: a sequential Huffman scan needs at least
  2 bits a block (a DC code and an end-of-block code), a progressive DC scan 1;
  a file with fewer bytes of scan data than that cannot hold the image its
  header claims. A progressive file must also bring every coefficient of every
  component to full precision; scans missing from the end mean a cut file.
* after decoding, :func:`check_jpeg_fill`: blocks that libjpeg had no data for
  decode to exactly 128 in every channel (all coefficients zero), so a last
  MCU that is uniformly 128 is the fill, not the picture.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ImageReadError

__all__ = ["JpegScan", "JpegStructure", "check_jpeg_fill", "check_jpeg_structure", "jpeg_structure"]

# Start-of-frame markers: C0-C3, C5-C7, C9-CB, CD-CF (C4 DHT, C8 JPG, CC DAC are not).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PROGRESSIVE = {0xC2, 0xC6, 0xCA, 0xCE}
_SEQUENTIAL_HUFFMAN = {0xC0, 0xC1}
# In entropy-coded data 0xFF is followed by 0x00 (a stuffed byte) or RST0-7; any
# other byte after 0xFF (0xFF itself is fill) starts the next marker.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_CHUNK = 1 << 20
_MAX_SEGMENTS = 100_000  # markers before the first frame ends; beyond that the file is garbage


@dataclass(frozen=True)
class JpegScan:
    """One SOS: its components (indices into the frame's), spectral band and approximation."""

    components: tuple[int, ...]
    ss: int
    se: int
    ah: int
    al: int
    nbytes: int  # entropy-coded bytes (with restart markers) up to the next marker


@dataclass(frozen=True)
class JpegStructure:
    """What the markers of the first frame of a JPEG say."""

    sof: int
    width: int
    height: int
    sampling: tuple[tuple[int, int], ...]  # (h, v) per component
    scans: tuple[JpegScan, ...]
    ended: bool  # an EOI marker follows the last scan

    @property
    def progressive(self) -> bool:
        return self.sof in _PROGRESSIVE

    @property
    def mcu(self) -> tuple[int, int]:
        """``(rows, columns)`` of pixels in one MCU of an interleaved scan."""
        if len(self.sampling) == 1:
            return 8, 8
        return 8 * max(v for _, v in self.sampling), 8 * max(h for h, _ in self.sampling)

    def blocks(self, scan: JpegScan) -> int:
        """8 x 8 blocks that ``scan`` codes."""
        hmax = max(h for h, _ in self.sampling)
        vmax = max(v for _, v in self.sampling)
        if len(scan.components) == 1:
            h, v = self.sampling[scan.components[0]]
            cw = math.ceil(self.width * h / hmax)
            ch = math.ceil(self.height * v / vmax)
            return math.ceil(cw / 8) * math.ceil(ch / 8)
        mcus = math.ceil(self.width / (8 * hmax)) * math.ceil(self.height / (8 * vmax))
        return mcus * sum(self.sampling[c][0] * self.sampling[c][1] for c in scan.components)


def jpeg_structure(file: Path) -> JpegStructure | None:
    """The markers of the first frame, or None when they cannot be followed.

    Reads the file once in chunks; the entropy-coded data are skipped with a
    search for the next marker, never decoded. A structure that cannot be
    followed (no frame, a marker cut short) is left to the decoder to name.
    """
    with open(file, "rb") as fh:
        data = _Reader(fh)
        if data.read(2) != b"\xff\xd8":
            return None
        sof = width = height = 0
        sampling: list[tuple[int, int]] = []
        ids: list[int] = []
        scans: list[JpegScan] = []
        for _ in range(_MAX_SEGMENTS):
            marker = data.marker()
            if marker is None:
                break
            if marker == 0xD9:  # EOI
                return _structure(sof, width, height, sampling, scans, ended=True)
            if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM, stray RST: no length
                continue
            head = data.read(2)
            if len(head) < 2:
                break
            payload = data.read(max(int.from_bytes(head, "big") - 2, 0))
            if marker in _SOF and not sof and len(payload) >= 6:
                sof = marker
                height, width = (
                    int.from_bytes(payload[1:3], "big"),
                    int.from_bytes(payload[3:5], "big"),
                )
                for i in range(min(payload[5], (len(payload) - 6) // 3)):
                    cid, hv = payload[6 + 3 * i], payload[7 + 3 * i]
                    ids.append(cid)
                    sampling.append((max(hv >> 4, 1), max(hv & 15, 1)))
            elif marker == 0xDA:  # SOS, then entropy-coded data up to the next marker
                if len(payload) < 1:
                    break
                n = payload[0]
                comps = tuple(ids.index(cid) for cid in payload[1 : 1 + 2 * n : 2] if cid in ids)
                tail = payload[1 + 2 * n : 4 + 2 * n]
                ss, se, a = (tail[0], tail[1], tail[2]) if len(tail) == 3 else (0, 63, 0)
                nbytes = data.skip_entropy()
                scans.append(JpegScan(comps, ss, se, a >> 4, a & 15, nbytes))
        return _structure(sof, width, height, sampling, scans, ended=False)


def _structure(sof, width, height, sampling, scans, *, ended) -> JpegStructure | None:
    if not sof or not sampling:
        return None
    return JpegStructure(sof, width, height, tuple(sampling), tuple(scans), ended)


class _Reader:
    """Sequential reads of a file in chunks, with a search for the next marker."""

    def __init__(self, fh) -> None:
        self.fh = fh
        self.buf = b""
        self.pos = 0

    def _fill(self, n: int) -> None:
        if len(self.buf) - self.pos < n:
            self.buf = self.buf[self.pos :] + self.fh.read(max(n, _CHUNK))
            self.pos = 0

    def read(self, n: int) -> bytes:
        self._fill(n)
        out = self.buf[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    def marker(self) -> int | None:
        """The next marker code, skipping fill bytes; None at the end or on garbage."""
        b = self.read(1)
        if b != b"\xff":
            return None
        while True:
            b = self.read(1)
            if not b:
                return None
            if b != b"\xff":
                return b[0]

    def skip_entropy(self) -> int:
        """Skip entropy-coded data; the reader stops at the next marker. Returns the bytes skipped."""
        skipped = 0
        while True:
            self._fill(2)
            found = _NEXT_MARKER.search(self.buf, self.pos)
            if found:
                skipped += found.start() - self.pos
                self.pos = found.start()
                return skipped
            keep = 1 if self.buf.endswith(b"\xff") else 0  # a marker may straddle chunks
            skipped += len(self.buf) - self.pos - keep
            self.pos = len(self.buf) - keep
            more = self.fh.read(_CHUNK)
            if not more:
                skipped += keep
                self.pos = len(self.buf)
                return skipped
            self.buf = self.buf[self.pos :] + more
            self.pos = 0


def check_jpeg_structure(file: Path, jpeg: JpegStructure) -> None:
    """Refuse, before decoding, a JPEG whose scans cannot hold the image its header claims.

    Raises
    ------
    ImageReadError
        Too few bytes of scan data for the claimed size, or progressive scans
        that stop before every coefficient is complete.
    """
    if jpeg.width < 1 or jpeg.height < 1 or not jpeg.scans:
        return  # a DNL height or no scan at all: the decoder names it
    if jpeg.sof in _SEQUENTIAL_HUFFMAN or (jpeg.progressive and jpeg.sof == 0xC2):
        least_bits = 0
        for scan in jpeg.scans:
            if jpeg.sof in _SEQUENTIAL_HUFFMAN:
                least_bits += 2 * jpeg.blocks(scan)
            elif scan.ss == 0 and scan.ah == 0:  # progressive DC, first pass
                least_bits += jpeg.blocks(scan)
        nbytes = sum(scan.nbytes for scan in jpeg.scans)
        if nbytes * 8 < least_bits:
            raise ImageReadError(
                f"the JPEG data end early: the header claims {jpeg.width} x {jpeg.height} pixels, "
                f"but the file holds only {nbytes:,} bytes of image data, fewer than that size "
                f"needs (at least {math.ceil(least_bits / 8):,}); the file was cut short or its "
                "header is wrong",
                file,
            )
    if jpeg.progressive:
        for c in range(len(jpeg.sampling)):
            done = np.zeros(64, bool)
            for scan in jpeg.scans:
                if c in scan.components and scan.al == 0:
                    done[scan.ss : scan.se + 1] = True
            if not done.all():
                raise ImageReadError(
                    "the JPEG data end early: its progressive scans stop before the image is "
                    "complete (the file was cut short)",
                    file,
                )


def check_jpeg_fill(file: Path, jpeg: JpegStructure, stored: np.ndarray) -> None:
    """Refuse a decoded JPEG whose last MCUs are libjpeg's mid-grey fill after a picture.

    Parameters
    ----------
    file : pathlib.Path
        The image (for the message).
    jpeg : JpegStructure
        Its markers (for the MCU size).
    stored : numpy.ndarray
        ``(H, W, 3)`` uint8 RGB as decoded, before any EXIF orientation.

    Raises
    ------
    ImageReadError
        The MCUs from some point to the end (in raster order) are exactly 128 in
        every channel and the ones before are not: the data stopped there. An
        image that is mid-grey everywhere is taken as it is (a test card, not a
        cut file: the fill would not change it). The first two rows and columns
        of each MCU are left out when chroma is subsampled: upsampling blends
        them with the MCU before.
    """
    if len(jpeg.sampling) not in (1, 3):
        return  # CMYK / YCCK: the fill is not mid-grey once converted
    h, w = stored.shape[:2]
    mh, mw = jpeg.mcu
    nrows, ncols = math.ceil(h / mh), math.ceil(w / mw)
    # Pixels looked at: all but the first two rows and columns of an MCU when chroma
    # is subsampled, unless the MCU (cut by the image edge) has no more than those.
    considered = np.zeros((nrows * mh, ncols * mw), bool)
    considered[:h, :w] = True
    for axis, (size, step) in enumerate(((h, mh), (w, mw))):
        if step > 8:
            index = np.arange(considered.shape[axis])
            start = index - index % step
            blended = (index % step < 2) & (np.minimum(size - start, step) > 2)
            if axis == 0:
                considered[blended, :] = False
            else:
                considered[:, blended] = False

    def flat_mcus(row: int) -> np.ndarray:  # (ncols,) bool: MCU entirely 128
        band = stored[row * mh : (row + 1) * mh]
        seen = considered[row * mh : (row + 1) * mh]
        grey = ~seen.copy()
        grey[: band.shape[0], :w] |= (band == 128).all(axis=2)
        flat = grey.reshape(mh, ncols, mw).all(axis=(0, 2))
        return np.logical_and(flat, seen.reshape(mh, ncols, mw).any(axis=(0, 2)))

    last = flat_mcus(nrows - 1)
    if not last[-1]:
        return  # the usual case: one small band looked at
    grey_mcus = 0
    for row in range(nrows - 1, -1, -1):
        flags = last if row == nrows - 1 else flat_mcus(row)
        if flags.all():
            grey_mcus += ncols
            continue
        grey_mcus += int(np.argmin(flags[::-1]))  # the flat MCUs at the end of this row
        break
    else:
        return  # mid-grey everywhere
    total = nrows * ncols
    raise ImageReadError(
        f"the JPEG data end early: its last {grey_mcus:,} of {total:,} blocks of "
        f"{mw} x {mh} pixels are only the decoder's grey fill (the file was cut short and "
        "closed again)",
        file,
    )
