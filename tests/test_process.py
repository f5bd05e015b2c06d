"""Tests for pipelines.process: the per-example kernel of a dataset build."""

import io

import numpy as np
from PIL import Image
import pytest

from dataformat import records
from pipelines import filters
from pipelines import images
from pipelines import langid
from pipelines import process
from pipelines.readers.common import RawExample
from pipelines.reasons import Reason
from pipelines.reasons import Rejection
from vocabularies.vocabulary import Vocabulary

CAPTION = b"a red square on a grey background"


def _jpeg(height: int, width: int, seed: int = 0) -> bytes:
  rng = np.random.default_rng(seed)
  pixels = np.full((height, width, 3), 128, np.uint8)
  pixels[height // 4:height // 2, width // 4:width // 2] = rng.integers(
      0, 256, 3, np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
  return buffer.getvalue()


def _raw(key="k", image=None, caption=CAPTION, size=(300, 400)):
  return RawExample(key=key, source="in.tar",
                    image=_jpeg(*size) if image is None else image,
                    caption=caption)


@pytest.fixture(scope="module")
def identifier():
  return langid.LanguageIdentifier()


@pytest.fixture(scope="module")
def vocabularies(en_vocab_dir, multi_vocab_dir):
  return [Vocabulary.load(str(en_vocab_dir)),
          Vocabulary.load(str(multi_vocab_dir))]


def test_config_validation_and_json():
  with pytest.raises(ValueError, match="image_size must be positive, got 0"):
    process.ProcessConfig(image_size=0)
  with pytest.raises(ValueError, match=r"jpeg_quality must be in \[1, 100\]"):
    process.ProcessConfig(jpeg_quality=101)
  with pytest.raises(ValueError, match="max_tokens must be positive"):
    process.ProcessConfig(max_tokens=0)
  assert process.ProcessConfig().to_json() == {
      "image_size": 256, "jpeg_quality": 95, "max_image_pixels": 8192 * 8192,
      "max_tokens": 64, "filters": filters.FilterConfig().to_json()}


def test_kept_example_record(identifier, vocabularies):
  raw = _raw(size=(300, 400))
  record = process.process_example(raw, process.ProcessConfig(), identifier,
                                    vocabularies)
  assert (record.key, record.source) == ("k", "in.tar")
  assert record.text == CAPTION.decode()
  assert record.lang == "en" and record.lang_score > 0.5
  assert (record.image_original_height, record.image_original_width) == (
      300, 400)
  assert (record.image_height, record.image_width) == (256, 341)
  decoded = images.decode_image(record.image_encoded)
  assert decoded.pixels.shape == (256, 341, 3) and decoded.format == "JPEG"
  # The duplicate key is the hash of the stored pixels, before JPEG coding.
  assert record.image_sha256 == images.pixel_sha256(images.resize_shorter_side(
      images.decode_image(raw.image).pixels, 256))
  for vocabulary in vocabularies:
    ids = record.tokens[vocabulary.name]
    assert ids == vocabulary.encode(record.text, max_len=64)
    assert ids[-1] == vocabulary.eos_id


def test_small_images_are_not_upsampled(identifier):
  record = process.process_example(_raw(size=(100, 120)),
                                   process.ProcessConfig(), identifier, [])
  assert (record.image_height, record.image_width) == (100, 120)
  assert record.tokens == {}


@pytest.mark.parametrize("raw, reason", [
    (_raw(image=b""), Reason.EMPTY_IMAGE),
    (_raw(image=b"GIF89a garbage"), Reason.CORRUPT_IMAGE),
    # The image is checked first: a bad image with a bad caption is a bad image.
    (_raw(image=b"\xff\xd8 truncated", caption=None), Reason.CORRUPT_IMAGE),
    (_raw(caption=None), Reason.MISSING_CAPTION),
    (_raw(caption=b"\xffcat"), Reason.CAPTION_NOT_UTF8),
    (_raw(caption=b" \n "), Reason.EMPTY_CAPTION),
    # Caption decoding comes before the size filters.
    (_raw(size=(10, 10), caption=b""), Reason.EMPTY_CAPTION),
    (_raw(size=(10, 10), caption=b"x"), Reason.IMAGE_TOO_SMALL),
    (_raw(size=(40, 200)), Reason.EXTREME_ASPECT_RATIO),
    (_raw(caption=b"x"), Reason.CAPTION_TOO_SHORT),
    (_raw(caption=b"word " * 200), Reason.CAPTION_TOO_LONG),
])
def test_rejections_come_in_check_order(raw, reason, identifier):
  with pytest.raises(Rejection) as e:
    process.process_example(raw, process.ProcessConfig(), identifier, [])
  assert e.value.reason == reason


def test_failed_downloads_are_rejected_with_the_sources_reason(identifier):
  # An img2dataset Parquet row of a URL it could not fetch: no image.
  raw = RawExample(key="000000007", source="00000.parquet", image=None,
                   caption=b"a cat", metadata={
                       "url": "http://127.0.0.1:1/gone.jpg",
                       "status": "failed_to_download",
                       "error_message": "<urlopen error [Errno 111] "
                                        "Connection refused>"})
  with pytest.raises(Rejection) as e:
    process.process_example(raw, process.ProcessConfig(), identifier, [])
  assert e.value.reason == Reason.DOWNLOAD_FAILED
  assert e.value.detail == ("status failed_to_download: <urlopen error "
                            "[Errno 111] Connection refused>")
  no_message = RawExample(key="k", source="s", image=None, caption=b"x",
                          metadata={"status": "failed_to_resize"})
  with pytest.raises(Rejection, match="^download_failed: status "
                     "failed_to_resize$"):
    process.process_example(no_message, process.ProcessConfig(), identifier,
                            [])


def test_records_keep_the_source_metadata(identifier):
  image = _jpeg(300, 400)
  raw = RawExample(key="000000003", source="00000.tar", image=image,
                   caption=CAPTION, metadata={
                       "url": "http://127.0.0.1:8000/3.jpg",
                       "key": "000000003", "status": "success",
                       "error_message": None, "width": 400, "height": 300,
                       "original_width": 1600, "original_height": 1200,
                       "sha256": "ab" * 32, "exif": "{}"})
  record = process.process_example(raw, process.ProcessConfig(), identifier,
                                   [])
  assert (record.source_url, record.source_key, record.source_sha256,
          record.source_width, record.source_height) == (
              "http://127.0.0.1:8000/3.jpg", "000000003", "ab" * 32, 1600,
              1200)
  # Without metadata: the reader's key, nothing else.
  bare = process.process_example(_raw(key="k9"), process.ProcessConfig(),
                                 identifier, [])
  assert (bare.source_url, bare.source_key, bare.source_sha256,
          bare.source_width) == ("", "k9", "", 0)


def test_language_allow_list(identifier):
  config = process.ProcessConfig(
      thresholds=filters.FilterConfig(languages={"de"}))
  with pytest.raises(Rejection, match=r"language_not_allowed: en \(score "):
    process.process_example(_raw(), config, identifier, [])
  german = _raw(caption=b"ein rotes Quadrat auf grauem Hintergrund")
  assert process.process_example(german, config, identifier, []).lang == "de"


def test_rejection_details_name_no_memory_addresses(identifier):
  [result] = process.process_batch([_raw(image=b"not an image")],
                                   process.ProcessConfig(), identifier, [])
  assert isinstance(result, Rejection)
  assert "0x" not in result.detail
  assert result.detail == images.NOT_AN_IMAGE


def test_max_tokens_truncates_with_sticky_eos(identifier, vocabularies):
  config = process.ProcessConfig(max_tokens=4)
  record = process.process_example(_raw(), config, identifier, vocabularies)
  for vocabulary in vocabularies:
    ids = record.tokens[vocabulary.name]
    assert len(ids) == 4 and ids[-1] == vocabulary.eos_id


def test_batch_results_do_not_depend_on_the_batch(identifier, vocabularies):
  captions = [b"a dog on the beach", b"ein Hund am Strand", b"x",
              "海辺の犬".encode(), b"un chien sur la plage", None]
  raws = [_raw(key=str(i), caption=c, size=(64 + i, 80))
          for i, c in enumerate(captions)]
  config = process.ProcessConfig()
  batch = process.process_batch(raws, config, identifier, vocabularies)
  one_by_one = [process.process_batch([r], config, identifier,
                                      vocabularies)[0] for r in raws]
  assert len(batch) == len(raws)
  for together, alone in zip(batch, one_by_one):
    if isinstance(together, Rejection):
      assert (together.reason, together.detail) == (alone.reason,
                                                    alone.detail)
    else:
      assert (records.serialize_record(together)
              == records.serialize_record(alone))
  assert [type(r).__name__ for r in batch] == [
      "Record", "Record", "Rejection", "Record", "Record", "Rejection"]
