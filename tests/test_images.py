"""Tests for pipelines.images: safe decoding, resizing, re-encoding, hashing."""

import io
import struct
import zlib

import cv2
import numpy as np
from PIL import Image
from PIL import ImageFile
from PIL import ImageOps
from PIL import PngImagePlugin
import pytest

from dataformat import image_codec
from pipelines import images
from pipelines.reasons import Reason
from pipelines.reasons import Rejection
from tests.fixtures import photos


def _encode(image: Image.Image, image_format: str, **kwargs) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, format=image_format, **kwargs)
  return buffer.getvalue()


def _gradient(height: int, width: int) -> np.ndarray:
  y, x = np.mgrid[0:height, 0:width]
  return np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                   (x + y) % 256], axis=-1).astype(np.uint8)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, body: bytes) -> bytes:
  """A PNG chunk with a correct checksum."""
  return (struct.pack(">I", len(body)) + kind + body
          + struct.pack(">I", zlib.crc32(kind + body)))


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
  """(type, body) of each chunk of a PNG."""
  chunks, position = [], len(PNG_SIGNATURE)
  while position < len(data):
    length = int.from_bytes(data[position:position + 4], "big")
    chunks.append((data[position + 4:position + 8],
                   data[position + 8:position + 8 + length]))
    position += 12 + length
  return chunks


def _png(chunks: list[tuple[bytes, bytes]]) -> bytes:
  return PNG_SIGNATURE + b"".join(_png_chunk(*chunk) for chunk in chunks)


def _png_header_only(width: int, height: int) -> bytes:
  """A PNG whose header claims width x height, with no pixel data at all."""
  ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  return _png([(b"IHDR", ihdr), (b"IEND", b"")])


def _rejection(data: bytes | None, **kwargs) -> Rejection:
  with pytest.raises(Rejection) as info:
    images.decode_image(data, **kwargs)
  return info.value


def test_missing_and_empty_images_are_rejected():
  assert _rejection(None).reason == Reason.MISSING_IMAGE
  assert _rejection(b"").reason == Reason.EMPTY_IMAGE


@pytest.mark.parametrize("kept", [0.2, 0.6, 0.99])
def test_truncated_jpeg_is_rejected_not_padded(kept):
  data = _encode(Image.fromarray(_gradient(64, 96)), "JPEG", quality=90)
  rejection = _rejection(data[:int(len(data) * kept)])
  assert rejection.reason == Reason.CORRUPT_IMAGE
  assert "truncated" in rejection.detail.lower()
  assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("damage,detail", [
    ("cut", "incomplete checksum in b'IDAT'"),
    ("flip", "bad header checksum in b'IDAT'"),
])
def test_damaged_png_is_rejected_by_its_checksums(damage, detail):
  # Cut just before the pixel chunk's checksum, PIL's decoder alone would
  # still produce every pixel.
  data = bytearray(_encode(Image.fromarray(_gradient(32, 32)), "PNG"))
  pixels_end = data.rindex(b"IEND") - 4
  if damage == "cut":
    data = data[:pixels_end - 2]
  else:
    data[pixels_end - 10] ^= 0x01
  rejection = _rejection(bytes(data))
  assert rejection.reason == Reason.CORRUPT_IMAGE
  assert detail in rejection.detail


@pytest.mark.parametrize("data", [
    bytes(range(256)) * 4,
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
    b"\xff\xd8\xff\xe0" + b"\x13" * 64,
    b"GIF89a" + b"\xff" * 32,
    b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x01" * 16,
])
def test_garbage_is_a_corrupt_image(data):
  assert _rejection(data).reason == Reason.CORRUPT_IMAGE


def test_formats_outside_the_accepted_list_are_refused():
  ico = _encode(Image.new("RGB", (16, 16), (1, 2, 3)), "ICO")
  rejection = _rejection(ico)
  assert rejection.reason == Reason.CORRUPT_IMAGE
  assert rejection.detail == images.NOT_AN_IMAGE


def test_oversized_header_is_a_bomb_rejected_before_decoding():
  # Over the default limit but under PIL's own, so this module's check acts;
  # the file has no pixel data at all, so only a header check can fire.
  rejection = _rejection(_png_header_only(9000, 9000))
  assert rejection.reason == Reason.DECOMPRESSION_BOMB
  assert rejection.detail == (
      f"9000x9000 is over {images.DEFAULT_MAX_PIXELS} pixels")


def test_bomb_limit_is_configurable():
  data = _encode(Image.fromarray(_gradient(40, 50)), "PNG")
  assert _rejection(data, max_pixels=1999).reason == Reason.DECOMPRESSION_BOMB
  assert images.decode_image(data, max_pixels=2000).pixels.shape == (40, 50, 3)


def test_pils_own_hard_limit_is_also_a_bomb():
  side = 2 * int(Image.MAX_IMAGE_PIXELS ** 0.5) + 2
  rejection = _rejection(_png_header_only(side, side), max_pixels=10**12)
  assert rejection.reason == Reason.DECOMPRESSION_BOMB


@pytest.mark.parametrize("image_format,kwargs", [
    ("PNG", {}),
    ("WEBP", {"lossless": True}),
    ("BMP", {}),
    ("TIFF", {}),
])
def test_lossless_formats_decode_to_exact_pixels(image_format, kwargs):
  pixels = _gradient(30, 50)
  decoded = images.decode_image(
      _encode(Image.fromarray(pixels), image_format, **kwargs))
  assert decoded.format == image_format
  assert (decoded.original_height, decoded.original_width) == (30, 50)
  assert decoded.pixels.dtype == np.uint8
  np.testing.assert_array_equal(decoded.pixels, pixels)


def test_cmyk_jpeg_cyan_becomes_rgb_cyan():
  data = _encode(Image.new("CMYK", (8, 8), (255, 0, 0, 0)), "JPEG", quality=95)
  pixels = images.decode_image(data).pixels
  assert pixels.shape == (8, 8, 3)
  np.testing.assert_allclose(pixels.reshape(-1, 3).mean(0), (0, 255, 255),
                             atol=3)


def test_half_transparent_red_is_composited_on_white():
  data = _encode(Image.new("RGBA", (4, 4), (255, 0, 0, 128)), "PNG")
  pixels = images.decode_image(data).pixels
  np.testing.assert_array_equal(pixels, np.full((4, 4, 3), (255, 127, 127)))


def test_transparent_grey_with_alpha_becomes_white():
  data = _encode(Image.new("LA", (3, 3), (100, 0)), "PNG")
  np.testing.assert_array_equal(images.decode_image(data).pixels, 255)


def test_palette_transparency_becomes_white():
  image = Image.new("P", (4, 2), 0)
  image.putpalette([0, 128, 0, 10, 20, 30] + [0] * 762)
  image.putpixel((0, 0), 1)
  pixels = images.decode_image(
      _encode(image, "PNG", transparency=0)).pixels
  assert tuple(pixels[0, 0]) == (10, 20, 30)
  np.testing.assert_array_equal(pixels[1], 255)


@pytest.mark.parametrize("value", [0, 37, 200, 255])
def test_greyscale_value_becomes_equal_rgb(value):
  data = _encode(Image.new("L", (5, 3), value), "PNG")
  np.testing.assert_array_equal(images.decode_image(data).pixels, value)


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
  values = np.array([[0, 257 * 37, 257 * 200, 65535]], dtype=np.uint16)
  data = _encode(Image.fromarray(values), "PNG")
  pixels = images.decode_image(data).pixels
  np.testing.assert_array_equal(pixels[0, :, 0], [0, 37, 200, 255])
  np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])


def test_bilevel_image_is_black_and_white():
  image = Image.new("1", (4, 1), 0)
  image.putpixel((1, 0), 1)
  pixels = images.decode_image(_encode(image, "PNG")).pixels
  np.testing.assert_array_equal(pixels[0, :, 0], [0, 255, 0, 0])


def test_gif_first_frame_is_decoded():
  frames = [Image.new("RGB", (6, 6), color) for color in
            ((255, 0, 0), (0, 0, 255))]
  data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
  decoded = images.decode_image(data)
  assert decoded.format == "GIF"
  np.testing.assert_array_equal(decoded.pixels, np.full((6, 6, 3), (255, 0, 0)))


def test_exif_orientation_is_applied():
  pixels = np.zeros((16, 32, 3), np.uint8)
  pixels[:, :16] = (255, 0, 0)
  pixels[:, 16:] = (0, 0, 255)
  exif = Image.Exif()
  exif[0x0112] = 6  # Stored rotated: display turned 90 degrees clockwise.
  decoded = images.decode_image(
      _encode(Image.fromarray(pixels), "PNG", exif=exif.tobytes()))
  assert (decoded.original_height, decoded.original_width) == (32, 16)
  np.testing.assert_array_equal(decoded.pixels[:16], np.full((16, 16, 3),
                                                             (255, 0, 0)))
  np.testing.assert_array_equal(decoded.pixels[16:], np.full((16, 16, 3),
                                                             (0, 0, 255)))


def test_truncated_images_setting_is_refused(monkeypatch):
  monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
  with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
    images.decode_image(_encode(Image.new("RGB", (2, 2)), "PNG"))


@pytest.mark.parametrize("shape,size,expected", [
    ((480, 640), 256, (256, 341)),
    ((640, 480), 256, (341, 256)),
    ((100, 1000), 50, (50, 500)),
    ((512, 513), 256, (256, 257)),  # 256.5 rounds half up.
    ((300, 300), 256, (256, 256)),
    ((2000, 3), 2, (1333, 2)),
])
def test_resize_keeps_aspect(shape, size, expected):
  assert images.shorter_side_size(*shape, size) == expected
  resized = images.resize_shorter_side(_gradient(*shape), size)
  assert resized.shape == (*expected, 3)
  assert resized.dtype == np.uint8


def test_resize_never_upsamples():
  pixels = _gradient(200, 300)
  assert images.resize_shorter_side(pixels, 256) is pixels
  assert images.resize_shorter_side(pixels, 200) is pixels


def test_resize_is_antialiased():
  # A one-pixel checkerboard averages to grey when shrunk, not to aliasing.
  checkerboard = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)
  pixels = np.repeat(checkerboard[..., None], 3, axis=-1)
  resized = images.resize_shorter_side(pixels, 16)
  assert np.abs(resized.astype(int) - 127.5).max() <= 2


def test_resize_rejects_bad_arguments():
  with pytest.raises(ValueError, match="size must be positive"):
    images.resize_shorter_side(_gradient(4, 4), 0)
  with pytest.raises(ValueError, match="uint8 RGB"):
    images.resize_shorter_side(np.zeros((4, 4), np.uint8), 2)


def test_encode_jpeg_is_deterministic_and_decodable():
  pixels = _gradient(48, 64)
  data = images.encode_jpeg(pixels)
  assert data == images.encode_jpeg(pixels.copy())
  assert data != images.encode_jpeg(pixels, quality=50)
  decoded = images.decode_image(data)
  assert decoded.format == "JPEG"
  assert decoded.pixels.shape == pixels.shape
  assert np.abs(decoded.pixels.astype(int) - pixels).mean() < 3
  with pytest.raises(ValueError, match="quality"):
    images.encode_jpeg(pixels, quality=101)


def test_pixel_sha256_depends_on_pixels_only():
  pixels = _gradient(20, 30)
  digests = {
      images.pixel_sha256(images.decode_image(
          _encode(Image.fromarray(pixels), image_format, **kwargs)).pixels)
      for image_format, kwargs in (("PNG", {}), ("BMP", {}),
                                   ("WEBP", {"lossless": True}))}
  assert digests == {images.pixel_sha256(pixels)}
  changed = pixels.copy()
  changed[5, 5, 1] ^= 1
  assert images.pixel_sha256(changed) != images.pixel_sha256(pixels)


def test_pixel_sha256_includes_the_shape():
  flat = np.arange(36, dtype=np.uint8)
  assert (images.pixel_sha256(flat.reshape(2, 6, 3))
          != images.pixel_sha256(flat.reshape(6, 2, 3)))
  assert len(images.pixel_sha256(flat.reshape(2, 6, 3))) == 64


@pytest.mark.filterwarnings("ignore:(Truncated File Read|Corrupt EXIF)")
@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "GIF", "TIFF"])
def test_mutated_files_decode_or_are_rejected_never_crash(image_format):
  data = _encode(Image.fromarray(_gradient(24, 40)), image_format)
  rng = np.random.default_rng(0)
  outcomes = set()
  for _ in range(100):
    mutated = bytearray(data[:rng.integers(1, len(data) + 1)])
    for position in rng.integers(0, len(mutated), rng.integers(0, 4)):
      mutated[position] = rng.integers(0, 256)
    try:
      pixels = images.decode_image(bytes(mutated)).pixels
      assert pixels.dtype == np.uint8 and pixels.shape[2] == 3
      outcomes.add("decoded")
    except Rejection as e:
      outcomes.add(e.reason)
  assert Reason.CORRUPT_IMAGE in outcomes


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
  """Row i: how much of each input pixel the output pixel i covers, / scale."""
  scale = n_in / n_out
  edges = np.arange(n_out + 1) * scale
  starts, ends = edges[:-1, None], edges[1:, None]
  pixel = np.arange(n_in)[None, :]
  overlap = np.minimum(ends, pixel + 1) - np.maximum(starts, pixel)
  return np.clip(overlap, 0, None) / scale


def test_resize_is_the_exact_area_average_rounded():
  pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
  resized = images.resize_shorter_side(pixels, 21)
  assert resized.shape == (21, 28, 3)
  rows, cols = _area_matrix(48, 21), _area_matrix(64, 28)
  expected = np.stack([rows @ pixels[..., c] @ cols.T for c in range(3)], -1)
  assert np.abs(resized - expected).max() <= 0.5 + 1e-6


def _zone_plate(height: int, width: int) -> np.ndarray:
  """Rings whose frequency grows with the radius, to Nyquist at the sides."""
  y, x = np.mgrid[0:height, 0:width].astype(np.float64)
  k = np.pi / width  # Local frequency k * r / pi: 0.5 cycles/px at r = w/2.
  rings = 127.5 + 127.5 * np.cos(k * ((x - width / 2) ** 2
                                      + (y - height / 2) ** 2))
  return np.repeat(np.round(rings).astype(np.uint8)[..., None], 3, axis=-1)


def _aliasing_rms(plate: np.ndarray, resized: np.ndarray) -> float:
  """RMS deviation from flat grey where the rings are above the output's
  Nyquist frequency (with a margin): all of it is aliasing."""
  height, width = plate.shape[:2]
  scale = height / resized.shape[0]
  y, x = np.mgrid[0:resized.shape[0], 0:resized.shape[1]]
  radius = np.hypot((x + 0.5) * scale - width / 2,
                    (y + 0.5) * scale - height / 2)
  frequency = radius / width  # cycles per input pixel
  above = (frequency > 1.2 * 0.5 / scale) & (frequency < 0.5)
  return float(np.sqrt(np.mean((resized[..., 0][above] - 127.5) ** 2)))


def test_zone_plate_aliasing_is_bounded():
  # Measured: area 25 grey levels RMS, Pillow's bicubic 16, unfiltered
  # sampling 90 (benchmarks/results/zone_plate.png shows them).
  plate = _zone_plate(480, 640)
  area = _aliasing_rms(plate, images.resize_shorter_side(plate, 256))
  bicubic = _aliasing_rms(plate, np.asarray(Image.fromarray(plate).resize(
      (341, 256), Image.Resampling.BICUBIC)))
  rows, cols = np.arange(256) * 480 // 256, np.arange(341) * 640 // 341
  sampled = _aliasing_rms(plate, plate[rows][:, cols])
  assert area < 1.7 * bicubic
  assert area < 0.5 * sampled


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_orientation_matches_pillow(orientation):
  pixels = _gradient(24, 40)
  exif = Image.Exif()
  exif[0x0112] = orientation
  data = _encode(Image.fromarray(pixels), "JPEG", quality=90,
                 exif=exif.tobytes())
  expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
  decoded = images.decode_image(data)
  np.testing.assert_array_equal(decoded.pixels, np.asarray(expected))
  assert decoded.pixels.flags.c_contiguous


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_jpeg_pixels_are_libjpeg_turbos_and_equal_pillows(mode):
  image = Image.fromarray(_gradient(30, 50)).convert(mode)
  data = _encode(image, "JPEG", quality=85)
  decoded = images.decode_image(data)
  np.testing.assert_array_equal(decoded.pixels, image_codec.decode_jpeg(data))
  np.testing.assert_array_equal(
      decoded.pixels, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


def test_encode_jpeg_is_baseline_420():
  data = images.encode_jpeg(_gradient(32, 48))
  with Image.open(io.BytesIO(data)) as image:
    assert image.format == "JPEG" and not image.info.get("progressive")
    # (component id, horizontal and vertical sampling, quantisation table)
    assert image.layer[1][1:3] == (1, 1) and image.layer[0][1:3] == (2, 2)


@pytest.mark.parametrize("seed", range(3))
def test_area_resize_of_uint8_gives_opencvs_uint8_bytes(seed):
  """The float32 route to the stored pixels rounds as OpenCV's uint8 one."""
  rng = np.random.default_rng(seed)
  for trial in range(300):
    height, width = (int(n) for n in rng.integers(2, 300, 2))
    out_height = int(rng.integers(1, height + 1))
    out_width = int(rng.integers(1, width + 1))
    if trial % 5 == 0:  # Whole-number ratios, OpenCV's integer path.
      out_height, out_width = height // 2 or 1, width // (1 + trial % 3) or 1
    # Two-level content puts many area means exactly half-way.
    high = 256 if trial % 2 else 2
    pixels = (rng.integers(0, high, (height, width, 3)) *
              (255 // (high - 1))).astype(np.uint8)
    expected = cv2.resize(pixels, (out_width, out_height),
                          interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(
        image_codec.resize_area_uint8(pixels, out_height, out_width),
        expected)


@pytest.mark.parametrize("path", photos.JPEGS)
def test_stored_pixels_of_photographs_are_opencvs(path):
  pixels = image_codec.decode_jpeg(photos.read(path))
  height, width = images.shorter_side_size(*pixels.shape[:2], 97)
  np.testing.assert_array_equal(
      images.resize_shorter_side(pixels, 97),
      cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA))


def _photo(height: int, width: int, seed: int) -> np.ndarray:
  rng = np.random.default_rng(seed)
  base = np.asarray(Image.fromarray(rng.integers(0, 256, (4, 5, 3), np.uint8))
                    .resize((width, height), Image.BICUBIC), np.int16)
  return np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_webp_pixels_are_libwebps_and_equal_pillows(orientation):
  exif = Image.Exif()
  exif[0x0112] = orientation
  data = _encode(Image.fromarray(_photo(37, 61, orientation)), "WEBP",
                 quality=80, exif=exif.tobytes())
  expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
  decoded = images.decode_image(data)
  np.testing.assert_array_equal(decoded.pixels,
                                np.asarray(expected.convert("RGB")))
  assert decoded.pixels.flags.c_contiguous
  assert decoded.format == "WEBP"


def test_webps_the_fast_path_leaves_to_pillow_decode_as_before():
  rgba = np.dstack([_photo(20, 30, 1), np.full((20, 30), 128, np.uint8)])
  with_alpha = _encode(Image.fromarray(rgba, "RGBA"), "WEBP", quality=80)
  frames = [Image.fromarray(_photo(20, 30, seed)) for seed in (2, 3)]
  animated = _encode(frames[0], "WEBP", save_all=True,
                     append_images=frames[1:], quality=80)
  whole = _encode(Image.fromarray(_photo(20, 30, 4)), "WEBP", quality=80)
  padded = whole + b"\x00" * 8
  for data in (with_alpha, animated, padded):
    image = Image.open(io.BytesIO(data))
    assert images._fast_webp_pixels(data, image) is None  # pylint: disable=protected-access
  composited = images.decode_image(with_alpha).pixels
  assert composited.shape == (20, 30, 3) and composited.min() >= 127
  np.testing.assert_array_equal(images.decode_image(animated).pixels,
                                np.asarray(Image.open(io.BytesIO(animated))
                                           .convert("RGB")))
  np.testing.assert_array_equal(images.decode_image(padded).pixels,
                                images.decode_image(whole).pixels)


def test_a_cut_webp_is_rejected_as_corrupt():
  data = _encode(Image.fromarray(_photo(40, 60, 5)), "WEBP", quality=80)
  for length in (len(data) // 2, len(data) - 1):
    assert _rejection(data[:length]).reason == Reason.CORRUPT_IMAGE


def _pillows_pixels(data: bytes) -> np.ndarray:
  """What decoding by Pillow alone gives (the path before libspng)."""
  with Image.open(io.BytesIO(data)) as image:
    image.load()
    return np.asarray(images._to_rgb(images._upright(image)))  # pylint: disable=protected-access


def _takes_png_fast_path(data: bytes) -> bool:
  with Image.open(io.BytesIO(data)) as image:
    return images._fast_png_pixels(data, image) is not None  # pylint: disable=protected-access


def _plain_pngs() -> dict[str, bytes]:
  photo = Image.fromarray(_photo(37, 53, 0))
  return {
      "rgb": _encode(photo, "PNG"),
      "grey": _encode(photo.convert("L"), "PNG"),
      "grey 4-bit": _encode(photo.convert("L"), "PNG", bits=4),
      "palette": _encode(photo.quantize(200), "PNG"),
      "palette 2-bit": _encode(photo.quantize(4), "PNG", bits=2),
      "palette 1-bit": _encode(photo.quantize(2), "PNG", bits=1),
      "photograph": photos.read(photos.PNGS[0]),
      "grey photograph": photos.read(photos.PNGS[1]),
  }


@pytest.mark.parametrize("name", _plain_pngs())
def test_png_pixels_are_libspngs_and_equal_pillows(name):
  data = _plain_pngs()[name]
  assert _takes_png_fast_path(data)
  decoded = images.decode_image(data)
  np.testing.assert_array_equal(decoded.pixels, _pillows_pixels(data))
  np.testing.assert_array_equal(decoded.pixels, image_codec.decode_png(data))
  assert decoded.format == "PNG" and decoded.pixels.flags.c_contiguous


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("carrier", ["eXIf", "XMP"])
def test_png_orientation_before_the_pixels_is_applied(orientation, carrier):
  info = PngImagePlugin.PngInfo()
  kwargs = {"pnginfo": info}
  if carrier == "XMP":
    info.add_itxt("XML:com.adobe.xmp",
                  f'<x:xmpmeta><rdf:Description tiff:Orientation='
                  f'"{orientation}"/></x:xmpmeta>')
  else:
    exif = Image.Exif()
    exif[0x0112] = orientation
    kwargs["exif"] = exif.tobytes()
  data = _encode(Image.fromarray(_photo(16, 24, orientation)), "PNG", **kwargs)
  assert _takes_png_fast_path(data)
  expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
  np.testing.assert_array_equal(images.decode_image(data).pixels,
                                np.asarray(expected))


def _after_the_pixels(data: bytes, chunk: tuple[bytes, bytes]) -> bytes:
  chunks = _png_chunks(data)
  return _png(chunks[:-1] + [chunk, chunks[-1]])


def test_pngs_the_fast_path_leaves_to_pillow_decode_as_before():
  photo = _photo(20, 30, 1)
  exif = Image.Exif()
  exif[0x0112] = 6
  plain = _encode(Image.fromarray(photo), "PNG")
  frames = [Image.fromarray(_photo(20, 30, seed)) for seed in (2, 3)]
  left = {
      "alpha": photos.read(photos.PNGS[2]),
      "rgb transparency": _encode(Image.fromarray(photo), "PNG",
                                  transparency=tuple(int(v)
                                                     for v in photo[0, 0])),
      "palette transparency": _encode(Image.fromarray(photo).quantize(8),
                                      "PNG", transparency=0),
      "16-bit": cv2.imencode(".png", photo.astype(np.uint16) * 257)[1]
                .tobytes(),
      "animation": _encode(frames[0], "PNG", save_all=True,
                           append_images=frames[1:]),
      "EXIF after the pixels": _after_the_pixels(plain,
                                                 (b"eXIf", exif.tobytes())),
      "text after the pixels": _after_the_pixels(plain,
                                                 (b"tEXt", b"Comment\0hi")),
  }
  for name, data in left.items():
    assert not _takes_png_fast_path(data), name
    np.testing.assert_array_equal(images.decode_image(data).pixels,
                                  _pillows_pixels(data), err_msg=name)
  assert images.decode_image(left["EXIF after the pixels"]).pixels.shape == (
      30, 20, 3)
  transparent = images.decode_image(left["rgb transparency"]).pixels[0, 0]
  assert transparent.tolist() == [255, 255, 255]


@pytest.mark.parametrize("damage", ["compressed", "cut", "filtered"])
def test_damaged_png_pixel_data_behind_valid_checksums_gets_pillows_verdict(
    damage):
  """Pixel data damaged before its chunk checksums were computed: libspng
  must reject what Pillow rejects and decode the rest to Pillow's pixels."""
  rng = np.random.default_rng(0)
  sources = [data for name, data in _plain_pngs().items()
             if "photograph" not in name]
  verdicts = set()
  for trial in range(60):
    chunks = _png_chunks(sources[trial % len(sources)])
    at = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    body = bytearray(chunks[at][1])
    if damage == "compressed":
      for position in rng.integers(0, len(body), rng.integers(1, 4)):
        body[position] ^= int(rng.integers(1, 256))
    elif damage == "cut":
      body = body[:rng.integers(0, len(body))]
    else:  # Valid zlib data whose rows (filter bytes included) are changed.
      rows = bytearray(zlib.decompress(bytes(body)))
      for position in rng.integers(0, len(rows), rng.integers(1, 3)):
        rows[position] = int(rng.integers(0, 256))
      body = bytearray(zlib.compress(bytes(rows)))
    chunks[at] = (b"IDAT", bytes(body))
    data = _png(chunks)
    try:
      expected = _pillows_pixels(data)
    except Exception:  # pylint: disable=broad-except
      assert _rejection(data).reason == Reason.CORRUPT_IMAGE
      verdicts.add("rejected")
    else:
      np.testing.assert_array_equal(images.decode_image(data).pixels,
                                    expected)
      verdicts.add("decoded")
  assert "rejected" in verdicts
