"""Images in: every supported file to an RGB ``uint8`` array, safely.

What comes out
--------------
:func:`read_image` returns the whole image, :func:`read_region` a rectangle of
one pyramid level, both as ``(H, W, 3)`` ``uint8`` RGB with the original pixel
grid (no resizing). :func:`image_info` reads only the header.

* JPEG, PNG and BMP are decoded by Pillow, 16-bit PNG by imagecodecs (Pillow
  would drop the low byte), TIFF by tifffile. The format is taken from the
  file's first bytes, not from its suffix.
* Greyscale is repeated into three channels; palette images are looked up;
  transparency (RGBA, grey + alpha, palette transparency, TIFF alpha samples,
  premultiplied or not) is composited on **white**, because slides are
  bright-field and an empty background is white.
* EXIF orientation (JPEG, PNG) and the TIFF Orientation tag are applied, with
  the same eight transforms as :func:`PIL.ImageOps.exif_transpose`.

Public API
----------
:func:`read_image`, :func:`read_region`, :func:`image_info` and its
:class:`ImageInfo`; :func:`is_supported` and :data:`SUPPORTED_SUFFIXES`;
:func:`max_pixels_limit`, :data:`DEFAULT_MAX_PIXELS` and :data:`MAX_PIXELS_ENV`;
:func:`max_read_bytes_limit`, :data:`DEFAULT_MAX_READ_BYTES` and
:data:`MAX_READ_BYTES_ENV`. The private modules behind them: ``_sniff``
(suffixes, format from the first bytes), ``_limits`` (the bomb limit and the
memory budget), ``_pillow`` (JPEG, PNG, BMP), ``_tiff``
and ``_tiff_region`` (whole TIFFs, regions tile by tile), ``_rgb`` (samples to
RGB ``uint8``), ``_geometry`` (orientation, white-padded crops),
``_pixelsize`` (metadata to micrometres per pixel), ``_info`` (:class:`ImageInfo`).

More than 8 bits per sample
---------------------------
Samples are scaled by their **effective bit depth**, not by the dtype's maximum
and not by a min-max stretch: the white level is the TIFF ``MaxSampleValue`` tag
when it is below the dtype's maximum, else the smallest ``2**n - 1`` (``n >= 8``)
that is at least the data's maximum, and ``value * 255 / white`` is rounded.
So a 12-bit camera image stored in 16 bits (maximum <= 4095) fills 0..255
instead of coming out black, zero stays black and no contrast is invented.
Floating-point samples are taken as 0..1 when their maximum is <= 1, else
scaled by their maximum; negative values are clipped to 0. For a region read
the white level comes from the smallest pyramid level when it has at most
4 million pixels (so neighbouring regions match), else from the region itself.

Decompression bombs
-------------------
A file whose header claims more pixels than the limit is refused before any
pixel is decoded. The limit is, first to last: the ``max_pixels`` argument, the
``LEUKVIEW_MAX_PIXELS`` environment variable, :data:`DEFAULT_MAX_PIXELS`. It
bounds the pixels of the array that would be decoded: the whole image for
:func:`read_image`, the requested rectangle (and any single tile or strip) for
:func:`read_region`, so a large region of a larger slide passes it (the memory
budget below still applies).
Pillow's own bomb check (``Image.MAX_IMAGE_PIXELS``) is replaced by this limit
while LeukView decodes, and ``ImageFile.LOAD_TRUNCATED_IMAGES`` is held False:
a truncated file is an error, never a half-grey image.

Damaged files
-------------
A damaged file is an error, never an image with a grey, black or invented part:
a file cut short (any format); a JPEG whose data stop early but that was closed
again with an EOI marker, which libjpeg fills with grey after a mere warning
(caught from the markers before decoding, and from the fill itself after, see
``_jpeg``); a TIFF whose tiles or strips have no data (a zero offset or byte
count), which tifffile reads as black: :func:`read_image` refuses it naming how
many are missing, :func:`read_region` refuses a rectangle that needs one of them
and reads the others, and :func:`image_info` lists them in ``ImageInfo.warnings``.
A tile (or strip) above the pixel limit is refused before it is allocated, since
each one is decoded whole whatever the size of the image. One case is left: a
progressive JPEG cut inside its last refinement scan decodes with the lowest
bits of its fine detail missing, which no check short of a second decoder sees.

Memory budget
-------------
The pixel limit does not bound memory: a 3 KB JPEG may claim 20000 x 20000
pixels, a 440 KB PNG may really hold them. So before decoding, every read
estimates from the header what it will allocate at its peak (``ImageInfo.read_bytes``):
the decoder's own image (Pillow keeps RGB at 4 bytes a pixel, grey at 1) and
buffers (libjpeg's coefficients for a progressive JPEG, tifffile's compressed
batch and decoded tiles), the ``(H, W, 3)`` result, the colour conversion's
temporaries (it runs in bands of rows) and a rotated copy when an orientation
turns the image. A read above the budget is refused with an
:class:`~leukview.core.errors.ImageReadError` that says what the read would
need, the budget and what to do instead. The budget is, first to last: the
``max_bytes`` argument, the ``LEUKVIEW_MAX_READ_BYTES`` environment variable
(bytes, or a size such as ``1.5GiB``), :data:`DEFAULT_MAX_READ_BYTES` (1 GiB).
It applies to one read: a whole image for :func:`read_image`, one rectangle
(with one tile) for :func:`read_region` of a TIFF, so a slide too large to read
whole is still read region by region. JPEG, PNG and BMP cannot be decoded by
region: their region reads cost a whole read.

Large TIFFs
-----------
Tiled, stripped, pyramidal (SubIFDs, OME-TIFF, reduced-resolution pages) and
OME-TIFF files are read through the first series that tifffile finds.
:func:`read_region` decodes only the tiles (or strips) that overlap the
rectangle, reading their bytes via the page's data offsets and decoding them
one by one with the page's own decoder, so memory is bounded by the region plus
one tile, whatever the size of the level. Its coordinates are in the pixels of
the level that is read (not level 0), and pixels outside the image are white.
Stacks (time, focus, series of pages) give their first plane; three separate
channel planes (OME ``C`` = 3) are combined as RGB.

Only the file that is opened is read. An OME-TIFF can put its pixel data in
other files (``TiffData``/``UUID FileName``, any path), and tifffile would open
them: LeukView refuses such a file, naming the references, without opening any
of them; Micro-Manager and NDTiff series, which tifffile gathers from the files
beside the one opened, are not built either (the pages of the file itself are
read as a plain series).

Pixel size
----------
``ImageInfo.pixel_size_um`` (micrometres per pixel of level 0) comes from, in
order: OME-XML ``PhysicalSizeX`` (with its unit, default um), ImageJ metadata
(``unit`` with the resolution tags), Aperio ``MPP``, and otherwise the TIFF
``XResolution`` with ``ResolutionUnit`` inch or centimetre (or, for PNG and
JPEG, the pHYs / JFIF density). Resolution tags are often a meaningless default
(72 or 300 dpi, 1 pixel per unit, no unit): a value is kept only when its unit
is inch or centimetre and it gives 0.01 to 20 um/px, the range of light
microscopes; anything else gives ``None``. Every value, whatever its source, must
pass :func:`~leukview.core.calibration.validate_pixel_size` (finite, 0.001 to
100 um/px): an absurd one (``PhysicalSizeX="1e308"``, ``inf``, ``nan``, zero,
negative, a resolution that overflows the range) is skipped with a sentence in
``ImageInfo.warnings``, and the next source is tried; so the pixel size is
always a plain finite number or ``None``, never one that overflows later or
reaches JSON as ``Infinity``/``NaN``.

Files that are not images
-------------------------
The path is looked at with :func:`os.stat` before it is opened, so a symbolic
link loop, a broken link (its target named), a folder, a named pipe (which
would block the reader for ever), a device (a link to ``/dev/zero``) or a socket
is named as such and never read; the file is then opened non-blocking and its
type checked again. Bytes paths (file names that are not UTF-8) are accepted.
tifffile's own log lines (it logs what it finds odd in a file, and logging's
last resort prints them, once per open) are not printed: while a file is open
they are collected, and :func:`image_info` returns them in
``ImageInfo.warnings`` as ``tifffile: ...``; the ``tifffile`` logger does not
propagate to the application's handlers.

Every failure raises :class:`~leukview.core.errors.ImageReadError` naming the
file and the reason.
"""

from ._info import ImageInfo
from ._limits import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_READ_BYTES,
    MAX_PIXELS_ENV,
    MAX_READ_BYTES_ENV,
    max_pixels_limit,
    max_read_bytes_limit,
)
from ._open_slide import open_slide
from ._read import image_info, read_image, read_region
from ._slide import (  # whole slides: see _slide
    SLIDE_MIN_PIXELS,
    SLIDE_SUFFIXES,
    Slide,
    is_slide_file,
    reads_as_slide,
)
from ._sniff import SUPPORTED_SUFFIXES, is_supported

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_READ_BYTES",
    "MAX_PIXELS_ENV",
    "MAX_READ_BYTES_ENV",
    "SLIDE_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "ImageInfo",
    "Slide",
    "image_info",
    "is_slide_file",
    "reads_as_slide",
    "SLIDE_MIN_PIXELS",
    "is_supported",
    "max_pixels_limit",
    "max_read_bytes_limit",
    "open_slide",
    "read_image",
    "read_region",
]
