"""The fast image primitives that the dataset build and the trainer share.

JPEG decoding and encoding run in libjpeg-turbo through `simplejpeg`, PNG
decoding in libspng through `imagecodecs`, WebP decoding and area resizing in
OpenCV: together about half the CPU time of the same work in Pillow
(BENCHMARKS.md, "Image path"). `resize_bilinear` is
TensorFlow's bilinear resize, which big_vision's released checkpoints were
trained with.
Untrusted bytes are not validated here: `pipelines.images.decode_image`
checks them before and around these calls.
"""

import cv2
import imagecodecs
import numpy as np
import simplejpeg

# Parallelism comes from Beam workers and Grain workers, one image each at a
# time; OpenCV's own thread pool would only compete with them for the cores.
cv2.setNumThreads(1)

JPEG_SIGNATURE = b"\xff\xd8\xff"


def is_jpeg(data: bytes) -> bool:
  """Whether `data` starts like a JPEG file (SOI marker, then a marker)."""
  return data[:3] == JPEG_SIGNATURE


def decode_jpeg(data: bytes, min_height: int = 0, min_width: int = 0,
                fast_dct: bool = False) -> np.ndarray:
  """(height, width, 3) uint8 RGB pixels of a YCbCr, RGB or greyscale JPEG.

  With `min_height`/`min_width`, libjpeg-turbo decodes at the smallest DCT
  scale M/8 (M = 1..8) that keeps both sides at least that large, which skips
  most of the inverse DCT and colour work; never upsampled. With `fast_dct`,
  the inverse DCT is libjpeg's fast integer one (JDCT_IFAST), the default of
  TensorFlow's `decode_jpeg` / `decode_image`, whose pixels it then gives
  (the accurate default differs from them by a few levels, up to 16 on the
  test photographs).

  Raises:
    ValueError: for anything libjpeg-turbo warns about (truncated or corrupt
      data): strict decoding never returns padded or guessed pixels.
  """
  return simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=fast_dct,
                                strict=True, min_height=min_height,
                                min_width=min_width)


def decode_webp(data: bytes) -> np.ndarray | None:
  """(height, width, 3) uint8 RGB pixels of a still WebP, or None.

  Decoded by OpenCV's libwebp, about 25% faster than Pillow's decoder (which
  goes through RGBA); EXIF orientation is left to the caller. None for
  anything libwebp cannot decode whole.
  """
  bgr = cv2.imdecode(np.frombuffer(data, np.uint8),
                     cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
  return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode_png(data: bytes) -> np.ndarray | None:
  """(height, width, 3) uint8 RGB pixels of an opaque PNG of up to 8 bits
  per sample, or None.

  Decoded by libspng, about twice as fast as Pillow's decoder, checking what
  Pillow checks: chunk checksums, the zlib stream's own checksum, filters, a
  short pixel stream. Greyscale is replicated into RGB and palettes looked
  up; gamma and colour profiles are not applied (nor are they by Pillow).
  None for anything libspng cannot decode whole, for 16-bit samples and for
  an alpha channel.
  """
  try:
    pixels = imagecodecs.spng_decode(data)
  except imagecodecs.SpngError:
    return None
  if pixels.dtype != np.uint8:
    return None
  if pixels.ndim == 2:
    return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
  return pixels if pixels.shape[2] == 3 else None


def encode_jpeg(pixels: np.ndarray, quality: int) -> bytes:
  """Baseline JPEG of RGB pixels: 4:2:0, no metadata, deterministic."""
  return simplejpeg.encode_jpeg(np.ascontiguousarray(pixels), quality=quality,
                                colorspace="RGB", colorsubsampling="420")


def resize_area(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
  """Pixels resized to (height, width): each output pixel is the exact mean
  of the input area it covers (bilinear when enlarging)."""
  return cv2.resize(np.ascontiguousarray(pixels), (width, height),
                    interpolation=cv2.INTER_AREA)


# Above about this many input pixels the float32 copy (12 bytes a pixel) costs
# more than it saves: the uint8 path is faster from 0.7 MP on the benchmark
# host (8.4 MB of float32, a few times its L2 cache).
_FLOAT_AREA_MAX_PIXELS = 700_000


def resize_area_uint8(pixels: np.ndarray, height: int,
                      width: int) -> np.ndarray:
  """`resize_area` of uint8 pixels, rounded to uint8 exactly as OpenCV does.

  OpenCV area-resizes uint8 pixels in float32 and rounds half to even, except
  at whole-number ratios (an integer path that is fast already). Resizing a
  float32 copy of an image up to 0.7 MP does the same arithmetic about 20%
  faster (BENCHMARKS.md, image path), and rounding it with `np.rint` gives the
  same bytes.
  """
  in_height, in_width = pixels.shape[:2]
  if (in_height % height == 0 and in_width % width == 0
      or in_height * in_width > _FLOAT_AREA_MAX_PIXELS):
    return resize_area(pixels, height, width)
  resized = resize_area(pixels.astype(np.float32), height, width)
  return np.rint(resized).astype(np.uint8)


def _bilinear_taps(in_size: int, out_size: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(lower index, upper index, weight of upper) of each output position."""
  # TensorFlow's ResizeBilinear with half_pixel_centers, step for step in
  # float32, so that the weights (and the results) are bit for bit its own.
  scale = np.float32(in_size) / np.float32(out_size)
  centres = ((np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale
             - np.float32(0.5))
  floor = np.floor(centres)
  lower = np.maximum(floor, 0).astype(np.intp)
  upper = np.minimum(np.ceil(centres), in_size - 1).astype(np.intp)
  return lower, upper, centres - floor


def resize_bilinear(pixels: np.ndarray, height: int,
                    width: int) -> np.ndarray:
  """float32 pixels resized to (height, width) by bilinear interpolation.

  As `tf.image.resize(pixels, (height, width), "bilinear", antialias=False)`
  computes it: half-pixel centres, each output pixel from the 2 x 2 input
  pixels around its centre (no antialiasing: when shrinking, the pixels in
  between are skipped), in the same float32 operations. OpenCV's INTER_LINEAR
  on float32 input places its samples the same way, but its weights differ
  from TensorFlow's in the last bits (up to about 0.008 levels).
  """
  rows, row_below, row_weight = _bilinear_taps(pixels.shape[0], height)
  cols, col_right, col_weight = _bilinear_taps(pixels.shape[1], width)
  # Only the rows and columns sampled are converted to float32, not the
  # whole (full-size) image.
  top, bottom = pixels[rows], pixels[row_below]
  col_weight = col_weight.reshape((1, width) + (1,) * (pixels.ndim - 2))
  row_weight = row_weight.reshape((height,) + (1,) * (pixels.ndim - 1))
  top_left = top[:, cols].astype(np.float32)
  bottom_left = bottom[:, cols].astype(np.float32)
  upper = top_left + (top[:, col_right] - top_left) * col_weight
  lower = bottom_left + (bottom[:, col_right] - bottom_left) * col_weight
  return upper + (lower - upper) * row_weight
