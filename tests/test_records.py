"""The record schema: round trips and byte-compatibility with TensorFlow."""

import numpy as np
import pytest

from dataformat import records


def _record(**overrides) -> records.Record:
  values = dict(
      key="000000042", text="Ein roter Kreis auf blauem Grund.", lang="de",
      lang_score=0.75, source="shard-00000.tar", image_encoded=b"\xff\xd8jpeg",
      image_height=64, image_width=96, image_original_height=480,
      image_original_width=640, image_sha256="ab" * 32,
      tokens={"en32k": [5, 17, 1], "multi250k": [9, 1]},
      source_url="https://example.com/a.jpg", source_key="000000042",
      source_sha256="cd" * 32, source_width=1280, source_height=960,
      scores={"siglip_demo": 0.125})
  values.update(overrides)
  return records.Record(**values)


def test_round_trip_keeps_every_field():
  record = _record()
  assert records.parse_record(records.serialize_record(record)) == record


def test_source_and_score_fields():
  data = records.serialize_record(_record())
  parsed = records.parse_record(data)
  assert (parsed.source_url, parsed.source_key, parsed.source_width,
          parsed.source_height) == ("https://example.com/a.jpg", "000000042",
                                    1280, 960)
  assert parsed.scores == {"siglip_demo": 0.125}
  feature = records.example_proto.Example.FromString(data).features.feature
  assert feature["score/siglip_demo"].float_list.value[0] == 0.125
  assert feature["source/url"].bytes_list.value[0] == (
      b"https://example.com/a.jpg")
  # Unknown source fields are left out, not stored empty.
  bare = records.serialize_record(_record(
      source_url="", source_key="", source_sha256="", source_width=0,
      source_height=0, scores={}))
  feature = records.example_proto.Example.FromString(bare).features.feature
  assert not [name for name in feature
              if name.startswith(("source/", "score/"))]


def test_round_trip_embedding():
  emb = np.linspace(-1, 1, 16, dtype=np.float32)
  parsed = records.parse_record(records.serialize_record(
      _record(image_encoded=b"", image_embedding=emb)))
  np.testing.assert_array_equal(parsed.image_embedding, emb)
  assert parsed.image_encoded == b""


def test_bytes_match_tensorflow_example():
  tf = pytest.importorskip("tensorflow")
  data = records.serialize_record(_record())
  tf_example = tf.train.Example.FromString(data)
  feature = tf_example.features.feature
  assert feature["text"].bytes_list.value[0].decode() == _record().text
  assert list(feature["tokens/en32k"].int64_list.value) == [5, 17, 1]
  assert feature["lang/score"].float_list.value[0] == 0.75
  assert tf_example.SerializeToString(deterministic=True) == data


def test_parses_tensorflow_written_example():
  tf = pytest.importorskip("tensorflow")
  example = tf.train.Example(features=tf.train.Features(feature={
      "key": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"k1"])),
      "text": tf.train.Feature(
          bytes_list=tf.train.BytesList(value=["猫".encode()])),
  }))
  parsed = records.parse_record(example.SerializeToString())
  assert (parsed.key, parsed.text, parsed.lang) == ("k1", "猫", "und")


def test_serialization_is_deterministic():
  a = records.serialize_record(_record(tokens={"b": [1], "a": [2]}))
  b = records.serialize_record(_record(tokens={"a": [2], "b": [1]}))
  assert a == b


def test_garbage_is_a_value_error():
  with pytest.raises(ValueError, match="tf.train.Example|no 'key'"):
    records.parse_record(b"\x00\x01garbage")
