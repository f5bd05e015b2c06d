"""Tests for dataformat.image_codec's decoding and resizing against TensorFlow.

The references are TensorFlow's own ops (tensorflow-cpu is a dev dependency),
which big_vision's preprocessing calls.
"""

import os

import numpy as np
import pytest

from dataformat import image_codec
from tests.fixtures import photos

tf = pytest.importorskip("tensorflow")

# Output sizes: the released checkpoints' shrinking, a non-square one, and
# enlarging (every photograph's height or width, and the icon).
SIZES = ((224, 224), (384, 384), (37, 91), (1024, 1024))


def tf_decode(encoded: bytes) -> np.ndarray:
  """big_vision's `decode` op: TensorFlow's defaults (JPEG: IFAST DCT)."""
  return tf.io.decode_image(encoded, channels=3,
                            expand_animations=False).numpy()


@pytest.mark.parametrize("path", photos.JPEGS, ids=os.path.basename)
def test_fast_dct_decodes_the_pixels_tensorflow_decodes(path):
  encoded = photos.read(path)
  expected = tf_decode(encoded)
  # Both pinned wheels carry their own libjpeg-turbo; their IFAST inverse
  # DCTs agree bit for bit on these photographs.
  np.testing.assert_array_equal(
      image_codec.decode_jpeg(encoded, fast_dct=True), expected)
  # The accurate DCT, this project's default, gives other pixels.
  assert not np.array_equal(image_codec.decode_jpeg(encoded), expected)


@pytest.mark.parametrize("path", photos.PNGS[:2], ids=os.path.basename)
def test_decode_png_gives_the_pixels_tensorflows_libpng_gives(path):
  encoded = photos.read(path)
  np.testing.assert_array_equal(image_codec.decode_png(encoded),
                                tf_decode(encoded))


def test_decode_png_refuses_alpha_and_damage():
  assert image_codec.decode_png(photos.read(photos.PNGS[2])) is None  # RGBA
  photo = photos.read(photos.PNGS[0])
  assert image_codec.decode_png(photo[:len(photo) // 2]) is None
  assert image_codec.decode_png(b"not a PNG") is None


@pytest.mark.parametrize("path", photos.JPEGS + photos.PNGS,
                         ids=os.path.basename)
def test_resize_bilinear_is_tensorflows_bilinear_resize(path):
  pixels = tf_decode(photos.read(path))
  for height, width in SIZES + (pixels.shape[:2],):
    expected = tf.image.resize(pixels, (height, width), method="bilinear",
                               antialias=False).numpy()
    resized = image_codec.resize_bilinear(pixels, height, width)
    assert resized.dtype == np.float32
    assert resized.shape == (height, width, 3)
    # The same float32 operations in the same order: equal on every image
    # and size here. A TensorFlow build that fused the multiply-adds would
    # round each of the three interpolations once instead of twice, a few
    # units in the last place of 255 (3e-5 each): 1e-4 leaves room for that.
    np.testing.assert_allclose(resized, expected, rtol=0, atol=1e-4)


def test_resize_bilinear_takes_single_channel_images():
  grey = tf_decode(photos.read(photos.PNGS[1]))[..., :1]
  expected = tf.image.resize(grey, (100, 50), method="bilinear",
                             antialias=False).numpy()[..., 0]
  np.testing.assert_allclose(
      image_codec.resize_bilinear(grey[..., 0], 100, 50), expected, rtol=0,
      atol=1e-4)
