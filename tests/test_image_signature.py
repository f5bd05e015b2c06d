"""Tests for pipelines.image_signature: perceptual signatures of images."""

import io
import os

import numpy as np
from PIL import Image
from PIL import ImageEnhance
import pytest
import scipy.fft
import skimage

from pipelines import image_signature
from pipelines import signature_index

_PHOTOS = os.path.join(os.path.dirname(skimage.__file__), "data")
CONFIG = image_signature.MatchConfig()


def _photo(name: str) -> np.ndarray:
  with Image.open(os.path.join(_PHOTOS, name)) as image:
    return np.asarray(image.convert("RGB"))


def _jpeg(image: Image.Image, quality: int) -> np.ndarray:
  buffer = io.BytesIO()
  image.save(buffer, format="JPEG", quality=quality)
  return np.asarray(Image.open(buffer).convert("RGB"))


def _index(**photos: np.ndarray) -> signature_index.SignatureIndex:
  return signature_index.SignatureIndex.build(
      list(photos), [image_signature.eval_signatures(p)
                     for p in photos.values()], CONFIG)


def test_dct_matrix_is_scipys_orthonormal_dct():
  x = np.random.default_rng(0).normal(size=(32, 5))
  np.testing.assert_allclose(image_signature._dct_matrix(32) @ x,
                             scipy.fft.dct(x, axis=0, norm="ortho"),
                             atol=1e-12)


def test_hamming_counts_differing_bits():
  a = np.array([0, 0b1011, 2**64 - 1], np.uint64)
  b = np.array([0, 0b0001, 0], np.uint64)
  assert image_signature.hamming(a, b).tolist() == [0, 2, 64]


def test_transformed_copies_match_their_photo():
  chelsea = _photo("chelsea.png")
  image = Image.fromarray(chelsea)
  width, height = image.size
  index = _index(chelsea=chelsea, coffee=_photo("coffee.png"),
                 astronaut=_photo("astronaut.png"))
  copies = {
      "half size, jpeg 40": _jpeg(image.resize((width // 2, height // 2),
                                               Image.Resampling.BICUBIC), 40),
      "webp": np.asarray(Image.open(_encoded(image, "WEBP")).convert("RGB")),
      "mirrored": np.asarray(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
      "cropped 8/3/0/9%": chelsea[round(0.03 * height):round(0.91 * height),
                                  round(0.08 * width):],
      "greyscale": np.asarray(image.convert("L").convert("RGB")),
      "more saturated": np.asarray(ImageEnhance.Color(image).enhance(1.25)),
  }
  for name, pixels in copies.items():
    found = index.matches(image_signature.image_signature(pixels))
    assert [m.key for m in found] == ["chelsea"], name
    assert found[0].distance <= CONFIG.radius


def _encoded(image: Image.Image, fmt: str) -> io.BytesIO:
  buffer = io.BytesIO()
  image.save(buffer, format=fmt)
  buffer.seek(0)
  return buffer


def test_distinct_photos_do_not_match():
  names = ["astronaut.png", "camera.png", "chelsea.png", "coffee.png",
           "rocket.jpg", "motorcycle_left.png", "retina.jpg"]
  index = _index(**{n: _photo(n) for n in names[:4]})
  for name in names[4:]:
    assert not index.matches(image_signature.image_signature(_photo(name)))


def test_colour_decides_between_same_layouts():
  # A red and a blue disc on grey: the same layout, told apart by colour.
  yy, xx = np.mgrid[:128, :160]
  disc = (yy - 64) ** 2 + (xx - 70) ** 2 < 40 ** 2
  red = np.full((128, 160, 3), 128, np.uint8)
  blue = red.copy()
  red[disc] = (200, 40, 40)
  blue[disc] = (40, 40, 200)
  index = _index(red=red)
  assert [m.key for m in index.matches(
      image_signature.image_signature(red))] == ["red"]
  assert not index.matches(image_signature.image_signature(blue))
  grey = np.repeat(red.mean(axis=2, keepdims=True).astype(np.uint8), 3, 2)
  assert [m.key for m in index.matches(
      image_signature.image_signature(grey))] == ["red"]


def test_signatures_are_deterministic_and_typed():
  pixels = _photo("coffee.png")
  one = image_signature.image_signature(pixels)
  assert one.hashes.dtype == np.uint64 and one.hashes.shape == (2,)
  assert one.colour.shape == (2, image_signature.COLOUR_VALUES)
  again = image_signature.image_signature(pixels.copy())
  assert one.hashes.tolist() == again.hashes.tolist()
  assert np.array_equal(one.colour, again.colour)
  mirrored = image_signature.image_signature(pixels[:, ::-1].copy())
  assert image_signature.hamming(mirrored.hashes[0], one.hashes[1]) <= 2
  assert len(image_signature.eval_signatures(pixels)) == 81  # 3 ** 4 crops.
  with pytest.raises(ValueError, match="expected .* uint8 RGB"):
    image_signature.image_signature(pixels[..., 0])


def test_match_config_validation():
  with pytest.raises(ValueError, match=r"radius must be in \[0, 31\]"):
    image_signature.MatchConfig(radius=32)
  with pytest.raises(ValueError, match="colour distance must be >= 0"):
    image_signature.MatchConfig(max_colour_distance=-1)
  assert image_signature.MatchConfig(radius=7).to_json() == {
      "signature": image_signature.SIGNATURE_NAME,
      "signature_version": image_signature.SIGNATURE_VERSION,
      "radius": 7,
      "max_colour_distance": image_signature.DEFAULT_MAX_COLOUR_DISTANCE}
