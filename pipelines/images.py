"""Safe image decoding, resizing and re-encoding for training records.

`decode_image` turns untrusted bytes into RGB pixels or raises a `Rejection`
with a reason; it never lets a PIL error escape. `resize_shorter_side` and
`encode_jpeg` make the stored training image, `pixel_sha256` its exact
duplicate key. All are deterministic for given Pillow, libjpeg-turbo
(simplejpeg) and OpenCV builds.

Pillow reads every header, so every image meets the same checks; the pixels
of an intact YCbCr or greyscale JPEG, most of web data, are then decoded by
libjpeg-turbo directly (`dataformat.image_codec`), those of an opaque still
PNG by libspng and of an opaque still WebP by libwebp, everything else by
Pillow.
"""

import dataclasses
import hashlib
import io

import numpy as np
from PIL import ExifTags
from PIL import Image
from PIL import ImageFile
from PIL import ImageOps

from dataformat import image_codec
from pipelines.reasons import Reason
from pipelines.reasons import Rejection

# 8192 x 8192: 192 MiB of decoded RGB, below PIL's own bomb warning
# (Image.MAX_IMAGE_PIXELS, about 89.5 MP), so this limit is the one that acts.
# Larger limits still meet PIL's hard limit (twice its warning size), which is
# reported as a decompression bomb too.
DEFAULT_MAX_PIXELS = 8192 * 8192
DEFAULT_SHORTER_SIDE = 256
DEFAULT_JPEG_QUALITY = 95

# Formats a web pair may carry. Others (EPS, PSD, ICO, ...) are refused before
# their decoders run: they are rare in web data and widen the attack surface.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF")

NOT_AN_IMAGE = (f"not an image in an accepted format "
                f"({', '.join(ACCEPTED_FORMATS)})")

_WHITE = (255, 255, 255, 255)
_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")


@dataclasses.dataclass(frozen=True, eq=False)
class DecodedImage:
  """A decoded image, upright (EXIF orientation applied).

  Attributes:
    pixels: (height, width, 3) uint8 RGB.
    original_height: the image's height as stored (after orientation).
    original_width: the image's width as stored (after orientation).
    format: the container format PIL recognised ("JPEG", "PNG", ...).
  """

  pixels: np.ndarray
  original_height: int
  original_width: int
  format: str


def _to_rgb(image: Image.Image) -> Image.Image:
  """Any PIL mode -> RGB; transparency is composited onto white."""
  if image.mode in _SIXTEEN_BIT_MODES:
    # PIL's own 16-bit -> 8-bit conversion clips at 255 instead of scaling.
    values = np.clip(np.asarray(image, dtype=np.int64), 0, 0xFFFF) >> 8
    image = Image.fromarray(values.astype(np.uint8))
  if image.has_transparency_data:
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE),
                                 rgba).convert("RGB")
  return image if image.mode == "RGB" else image.convert("RGB")


def _upright(image: Image.Image) -> Image.Image:
  try:
    return ImageOps.exif_transpose(image)
  except Exception:  # pylint: disable=broad-except
    # EXIF is optional side data: unreadable EXIF means no known orientation,
    # not a bad image.
    return image


# EXIF orientation -> the numpy view that makes the pixels upright, as
# ImageOps.exif_transpose turns them (2..8 as in the EXIF standard).
_ORIENTED = {
    2: lambda p: p[:, ::-1],
    3: lambda p: p[::-1, ::-1],
    4: lambda p: p[::-1],
    5: lambda p: p.transpose(1, 0, 2),
    6: lambda p: p.transpose(1, 0, 2)[:, ::-1],
    7: lambda p: p.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda p: p.transpose(1, 0, 2)[::-1],
}


def _orientation(image: Image.Image) -> int:
  try:
    # Not image.getexif(): a PNG's decodes every pixel first, to read metadata
    # stored after them. PNGs reach here only when there is none
    # (`_png_pixel_data_is_last`), so what Pillow read on opening is all.
    exif = Image.Image.getexif(image)
    return int(exif.get(ExifTags.Base.Orientation, 1))
  except Exception:  # pylint: disable=broad-except
    # As in _upright: unreadable EXIF means no known orientation.
    return 1


def _oriented(pixels: np.ndarray, image: Image.Image) -> np.ndarray:
  """Pixels decoded outside Pillow, turned upright by `image`'s EXIF."""
  orient = _ORIENTED.get(_orientation(image))
  return pixels if orient is None else np.ascontiguousarray(orient(pixels))


def _fast_jpeg_pixels(data: bytes, image: Image.Image) -> np.ndarray | None:
  """Upright RGB pixels of an intact YCbCr/greyscale JPEG, else None.

  None leaves the image to Pillow: CMYK (Pillow's Adobe conversion) and other
  colour spaces, and any file libjpeg-turbo warns about, so that damaged files
  get Pillow's verdict and message exactly as before.
  """
  if image.format != "JPEG" or image.mode not in ("RGB", "L"):
    return None
  try:
    pixels = image_codec.decode_jpeg(data)
  except ValueError:
    return None
  return _oriented(pixels, image)


def _riff_is_whole(data: bytes) -> bool:
  """Whether the RIFF container's size field covers exactly `data`."""
  return len(data) == 8 + int.from_bytes(data[4:8], "little")


def _fast_webp_pixels(data: bytes, image: Image.Image) -> np.ndarray | None:
  """Upright RGB pixels of a whole, still, opaque WebP, else None.

  None leaves the image to Pillow: alpha (composited onto white there),
  animations (first frame), files whose container is cut short or padded,
  and anything libwebp cannot decode, so that those get Pillow's verdict.
  """
  if (image.format != "WEBP" or image.mode != "RGB"
      or getattr(image, "n_frames", 1) != 1 or not _riff_is_whole(data)):
    return None
  pixels = image_codec.decode_webp(data)
  if pixels is None or pixels.shape[:2] != (image.height, image.width):
    return None
  return _oriented(pixels, image)


def _png_pixel_data_is_last(data: bytes) -> bool:
  """Whether a PNG's first chunk is IHDR and only pixel data (IDAT) follows
  its first IDAT chunk, up to IEND.

  Pillow reads the chunks after the pixel data (and may reject the file for
  them) only when it decodes the pixels.
  """
  if data[12:16] != b"IHDR":
    return False
  position, seen_pixels = 8, False
  while position + 8 <= len(data):
    kind = data[position + 4:position + 8]
    if kind == b"IEND":
      return True
    if kind == b"IDAT":
      seen_pixels = True
    elif seen_pixels:
      return False
    position += 12 + int.from_bytes(data[position:position + 4], "big")
  return False


def _fast_png_pixels(data: bytes, image: Image.Image) -> np.ndarray | None:
  """Upright RGB pixels of an opaque, still PNG of up to 8 bits per sample,
  else None.

  None leaves the image to Pillow: transparency (composited onto white
  there), 16-bit samples, animations, chunks after the pixel data, and
  anything libspng cannot decode whole, so that those get Pillow's verdict.
  """
  if (image.format != "PNG" or image.mode not in ("RGB", "L", "P")
      or image.has_transparency_data or getattr(image, "n_frames", 1) != 1
      or not _png_pixel_data_is_last(data)
      or data[24] > 8):  # IHDR's bit depth: Pillow's "RGB" may be 16-bit.
    return None
  pixels = image_codec.decode_png(data)
  if pixels is None or pixels.shape[:2] != (image.height, image.width):
    return None
  return _oriented(pixels, image)


def _verify_png_checksums(data: bytes) -> None:
  """Raises if a PNG chunk, pixel data included, is cut short or corrupt.

  PIL's decoder skips the pixel data checksums: a PNG cut inside its final
  pixel chunk, or with flipped pixel bytes, would decode without an error.
  """
  with Image.open(io.BytesIO(data), formats=("PNG",)) as image:
    image.verify()


def decode_image(
    data: bytes | None, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
  """Decodes untrusted image bytes fully into upright RGB pixels.

  The pixel count is checked from the header before any pixel is decoded.
  Truncated files are rejected, never padded (PIL's LOAD_TRUNCATED_IMAGES is
  left False); PNG chunk checksums are verified. CMYK, greyscale (1, L,
  16-bit), palette and alpha images become RGB, transparency composited onto
  white; of an animation, the first frame is decoded.

  Raises:
    Rejection: MISSING_IMAGE for None, EMPTY_IMAGE for b"", DECOMPRESSION_BOMB
      when width * height > max_pixels, CORRUPT_IMAGE for anything that cannot
      be fully decoded (with PIL's message as the detail).
  """
  if data is None:
    raise Rejection(Reason.MISSING_IMAGE)
  if not data:
    raise Rejection(Reason.EMPTY_IMAGE)
  if ImageFile.LOAD_TRUNCATED_IMAGES:
    raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set: truncated "
                       "images would be padded instead of rejected")
  try:
    with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
      width, height = image.size
      if width * height > max_pixels:
        raise Rejection(Reason.DECOMPRESSION_BOMB,
                        f"{width}x{height} is over {max_pixels} pixels")
      if width * height == 0:
        raise Rejection(Reason.CORRUPT_IMAGE, f"{width}x{height} image")
      if image.format == "PNG":
        _verify_png_checksums(data)
      image_format = image.format
      pixels = _fast_jpeg_pixels(data, image)
      if pixels is None:
        pixels = _fast_png_pixels(data, image)
      if pixels is None:
        pixels = _fast_webp_pixels(data, image)
      if pixels is None:
        image.load()
        pixels = np.asarray(_to_rgb(_upright(image)), dtype=np.uint8)
  except Rejection:
    raise
  except Image.DecompressionBombError as e:
    raise Rejection(Reason.DECOMPRESSION_BOMB, str(e)) from e
  except Image.UnidentifiedImageError as e:
    # PIL's message names the stream object, not what is wrong.
    raise Rejection(Reason.CORRUPT_IMAGE, NOT_AN_IMAGE) from e
  except MemoryError:
    # Out of memory says nothing about the image: rejecting would make the
    # output depend on the worker's load.
    raise
  except Exception as e:  # pylint: disable=broad-except
    # PIL's decoders raise OSError, SyntaxError, ValueError, struct.error,
    # EOFError, IndexError, ... on bad input; none may stop a pipeline.
    raise Rejection(Reason.CORRUPT_IMAGE, f"{type(e).__name__}: {e}") from e
  return DecodedImage(pixels=pixels, original_height=pixels.shape[0],
                      original_width=pixels.shape[1], format=image_format)


def _check_rgb(pixels: np.ndarray) -> None:
  if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
    raise ValueError(f"expected (height, width, 3) uint8 RGB pixels, got "
                     f"{pixels.dtype} {pixels.shape}")


def pixel_sha256(pixels: np.ndarray) -> str:
  """Hex SHA-256 of the shape and RGB bytes: equal pixels, equal digest.

  The de-duplication and block-list key, taken of the stored (resized)
  pixels: it does not depend on the file format or encoder settings the
  pixels came from, and costs a quarter of hashing a 640x480 original.
  """
  _check_rgb(pixels)
  digest = hashlib.sha256(b"%dx%dx3:" % pixels.shape[:2])
  digest.update(np.ascontiguousarray(pixels).tobytes())
  return digest.hexdigest()


def shorter_side_size(height: int, width: int, size: int) -> tuple[int, int]:
  """(height, width) with the shorter side at most `size`, aspect kept.

  Images whose shorter side is already `size` or less keep their size (no
  upsampling: it adds bytes, not detail, and training crops resize anyway).
  The longer side is rounded half up.
  """
  if size <= 0:
    raise ValueError(f"size must be positive, got {size}")
  shorter, longer = min(height, width), max(height, width)
  if shorter <= size:
    return height, width
  scaled = max(1, (2 * longer * size + shorter) // (2 * shorter))
  return (size, scaled) if height <= width else (scaled, size)


def resize_shorter_side(pixels: np.ndarray, size: int) -> np.ndarray:
  """Downsizes RGB pixels so the shorter side is `size`; never upsamples.

  Each output pixel is the exact average of the input area it covers
  (OpenCV's INTER_AREA), rounded: twice as fast as Pillow's bicubic filter,
  and the quality comparison is in BENCHMARKS.md. Returns `pixels` itself
  when no resize is needed.
  """
  _check_rgb(pixels)
  height, width = pixels.shape[:2]
  new_height, new_width = shorter_side_size(height, width, size)
  if (new_height, new_width) == (height, width):
    return pixels
  return image_codec.resize_area_uint8(pixels, new_height, new_width)


def encode_jpeg(pixels: np.ndarray,
                quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
  """Baseline JPEG bytes of RGB pixels (4:2:0, no metadata), deterministic."""
  _check_rgb(pixels)
  if not 1 <= quality <= 100:
    raise ValueError(f"JPEG quality must be in [1, 100], got {quality}")
  return image_codec.encode_jpeg(pixels, quality)
