"""Tests for pipelines.readers: every input format, damage handling, Beam."""

import gzip
import io
import json
import os
import tarfile

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to
import numpy as np
from PIL import Image
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import (
    masked_crc32c as reference_masked_crc32c)

from dataformat import example_proto
from pipelines.readers import beam_read
from pipelines.readers import common
from pipelines.readers import dispatch
from pipelines.readers import parquet
from pipelines.readers import tfrecord
from pipelines.readers.common import RawExample


def _jpeg(color: tuple[int, int, int]) -> bytes:
  buffer = io.BytesIO()
  Image.new("RGB", (8, 8), color).save(buffer, format="JPEG")
  return buffer.getvalue()


class _Errors(list):
  """An `on_error` callback that keeps what it is given."""

  def __call__(self, source: str, error: Exception) -> None:
    self.append((source, error))


def _write_tar(path, members: list[tuple[str, bytes]]) -> None:
  with tarfile.open(path, "w") as tar:
    for name, data in members:
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))


def _webdataset_members(keys) -> list[tuple[str, bytes]]:
  members = []
  for i, key in enumerate(keys):
    members += [(f"{key}.jpg", _jpeg((i, 0, 0)) + bytes(2000)),
                (f"{key}.txt", f"caption {key}".encode()),
                (f"{key}.json", json.dumps({"url": f"http://{key}"}).encode())]
  return members


def _keys(examples) -> list[str]:
  return [e.key for e in examples]


# Webdataset tars.


def test_tar_round_trip(tmp_path):
  path = str(tmp_path / "00000.tar")
  _write_tar(path, _webdataset_members(["000000", "000001"])
             + [("000002.png", b"png bytes"), ("000003.txt", b"no image")])
  examples = list(dispatch.read_examples(path))
  assert _keys(examples) == ["000000", "000001", "000002", "000003"]
  assert examples[1] == RawExample(
      key="000001", source=path, image=_jpeg((1, 0, 0)) + bytes(2000),
      caption=b"caption 000001", metadata={"url": "http://000001"})
  assert (examples[2].image, examples[2].caption) == (b"png bytes", None)
  assert (examples[3].image, examples[3].caption) == (None, b"no image")


def test_tar_truncated_in_the_middle_yields_the_examples_before(tmp_path):
  path = tmp_path / "00000.tar"
  _write_tar(path, _webdataset_members(["a", "b", "c", "d"]))
  with tarfile.open(path) as tar:
    cut = tar.getmember("c.jpg").offset_data + 100
  path.write_bytes(path.read_bytes()[:cut])
  errors = _Errors()
  examples = list(dispatch.read_examples(str(path), errors))
  # "b" is complete once "c" starts; "c" was half-read and is dropped.
  assert _keys(examples) == ["a", "b"]
  assert [source for source, _ in errors] == [str(path)]
  with pytest.raises(tarfile.ReadError):
    list(dispatch.read_examples(str(path)))


def test_gzipped_tars_are_read(tmp_path):
  plain = tmp_path / "plain.tar"
  _write_tar(plain, _webdataset_members(["k1", "k2"]))
  for name in ("shard.tar.gz", "shard.tgz"):
    (tmp_path / name).write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    examples = list(dispatch.read_examples(str(tmp_path / name)))
    assert _keys(examples) == ["k1", "k2"]


# Parquet.


def test_parquet_img2dataset_layout_in_row_groups(tmp_path):
  path = str(tmp_path / "00000.parquet")
  table = pa.table({
      "key": [f"{i:09d}" for i in range(5)],
      "caption": ["a cat", "a dog", None, "ein Hund", "chat"],
      "jpg": [_jpeg((i, 0, 0)) for i in range(4)] + [None],
      "url": [f"http://x/{i}" for i in range(5)],
      "width": [8, 8, 8, 8, None],
      "exif": [b"raw"] * 5,
  })
  pq.write_table(table, path, row_group_size=2)
  assert pq.ParquetFile(path).num_row_groups == 3
  examples = list(dispatch.read_examples(path))
  assert _keys(examples) == [f"{i:09d}" for i in range(5)]
  assert examples[0] == RawExample(
      key="000000000", source=path, image=_jpeg((0, 0, 0)), caption=b"a cat",
      metadata={"url": "http://x/0", "width": 8})
  assert examples[2].caption is None
  assert examples[4].image is None
  assert examples[4].metadata == {"url": "http://x/4", "width": None}


def test_parquet_hugging_face_layout_and_image_paths(tmp_path):
  (tmp_path / "images").mkdir()
  (tmp_path / "images" / "on_disk.jpg").write_bytes(_jpeg((9, 9, 9)))
  struct_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
  table = pa.table({
      "text": pa.array([b"inline", b"\xff\xfe bad utf-8", b"gone"],
                       pa.binary()),
      "image": pa.array([{"bytes": _jpeg((1, 2, 3)), "path": "x.jpg"},
                         {"bytes": None, "path": "images/on_disk.jpg"},
                         {"bytes": None, "path": "images/missing.jpg"}],
                        struct_type),
  })
  path = str(tmp_path / "train.parquet")
  pq.write_table(table, path)
  examples = list(dispatch.read_examples(path))
  assert _keys(examples) == [f"{path}:0", f"{path}:1", f"{path}:2"]
  assert examples[0].image == _jpeg((1, 2, 3))
  assert examples[1].image == _jpeg((9, 9, 9))
  assert examples[1].caption == b"\xff\xfe bad utf-8"
  assert examples[2].image is None
  assert examples[2].metadata[common.READ_ERROR].startswith(
      "cannot read image " + str(tmp_path / "images" / "missing.jpg"))


def test_parquet_configurable_columns(tmp_path):
  path = str(tmp_path / "custom.parquet")
  pq.write_table(pa.table({"id": [7], "alt": ["a photo"],
                           "img": [b"bytes"]}), path)
  columns = parquet.ParquetColumns(key=("id",), caption=("alt",),
                                   image=("img",))
  [example] = dispatch.read_examples(path, parquet_columns=columns)
  assert example == RawExample(key="7", source=path, image=b"bytes",
                               caption=b"a photo")
  errors = _Errors()
  assert not list(dispatch.read_examples(path, errors))
  assert str(errors[0][1]) == (
      "no image column: expected one of ['jpg', 'image', 'image_path'], "
      "found ['id', 'alt', 'img']")


def test_parquet_damaged_row_group_keeps_the_rows_before(tmp_path):
  path = tmp_path / "damaged.parquet"
  table = pa.table({"key": [str(i) for i in range(6)],
                    "caption": ["c"] * 6, "jpg": [bytes(500)] * 6})
  pq.write_table(table, path, row_group_size=2, compression="none")
  data = bytearray(path.read_bytes())
  page = pq.ParquetFile(path).metadata.row_group(1).column(0).data_page_offset
  data[page:page + 16] = b"\xff" * 16
  path.write_bytes(bytes(data))
  errors = _Errors()
  assert _keys(dispatch.read_examples(str(path), errors)) == ["0", "1"]
  assert len(errors) == 1


def test_parquet_cells_of_other_types_count_as_missing(tmp_path):
  path = str(tmp_path / "odd.parquet")
  pq.write_table(pa.table({"caption": [["a", "list"]], "jpg": [3]}), path)
  [example] = dispatch.read_examples(path)
  assert (example.image, example.caption) == (None, None)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_unreadable_parquet_is_reported(tmp_path, damage):
  path = tmp_path / "bad.parquet"
  pq.write_table(pa.table({"key": ["1"], "caption": ["c"], "jpg": [b"j"]}),
                 path)
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2] if damage == "truncated"
                   else b"not parquet at all")
  errors = _Errors()
  assert not list(dispatch.read_examples(str(path), errors))
  assert [source for source, _ in errors] == [str(path)]
  with pytest.raises(pa.ArrowException):
    list(dispatch.read_examples(str(path)))


# TFRecord.


@pytest.fixture(scope="module")
def tfrecord_files(tmp_path_factory):
  """TFRecord files written by TensorFlow itself: (plain path, gzip path)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def feature(values):
    if isinstance(values[0], bytes):
      return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

  records = [
      {"key": [b"r0"], "image/encoded": [_jpeg((5, 0, 0)) + bytes(4000)],
       "text": [b"first"], "image/width": [8], "url": [b"http://x/0"]},
      {"image": [b"small image"], "caption": [b"second"]},
      {"key": [b"r2"], "jpg": [bytes(3000)], "text": [b"\xc3\x28 bad"],
       "labels": [1, 2, 3]},
  ]
  folder = tmp_path_factory.mktemp("tfrecords")
  paths = (str(folder / "data.tfrecord"), str(folder / "data.tfrecords.gz"))
  for path, options in zip(paths, (None, "GZIP")):
    with tf.io.TFRecordWriter(path, options=options) as writer:
      for record in records:
        writer.write(tf.train.Example(features=tf.train.Features(
            feature={k: feature(v) for k, v in record.items()}))
                     .SerializeToString())
  return paths


def test_tfrecord_written_by_tensorflow(tfrecord_files):
  path, gzipped = tfrecord_files
  examples = list(dispatch.read_examples(path))
  assert examples == [
      RawExample(key="r0", source=path, image=_jpeg((5, 0, 0)) + bytes(4000),
                 caption=b"first",
                 metadata={"image/width": 8, "url": "http://x/0"}),
      RawExample(key=f"{path}:1", source=path, image=b"small image",
                 caption=b"second"),
      RawExample(key="r2", source=path, image=bytes(3000),
                 caption=b"\xc3\x28 bad", metadata={"labels": [1, 2, 3]}),
  ]
  assert ([(e.key, e.image, e.caption) for e in
           dispatch.read_examples(gzipped)]
          == [(f"{gzipped}:1" if e.key == f"{path}:1" else e.key, e.image,
               e.caption) for e in examples])


def _first_record_size(path) -> int:
  with open(path, "rb") as f:
    length = int.from_bytes(f.read(8), "little")
  return 8 + 4 + length + 4


@pytest.mark.parametrize("damage,message", [
    ("truncate", "truncated record at byte"),
    ("flip_length", "record length checksum mismatch at byte"),
    ("flip_data", "record data checksum mismatch at byte"),
    ("short_header", "truncated record header at byte"),
])
def test_damaged_tfrecord_keeps_the_records_before(tfrecord_files, tmp_path,
                                                   damage, message):
  data = bytearray(open(tfrecord_files[0], "rb").read())
  second = _first_record_size(tfrecord_files[0])
  if damage == "truncate":
    data = data[:second + 20]
  elif damage == "flip_length":
    data[second] ^= 0x01
  elif damage == "flip_data":
    data[second + 15] ^= 0x01
  else:
    data = data[:second + 5]
  path = tmp_path / "damaged.tfrecord"
  path.write_bytes(bytes(data))
  errors = _Errors()
  assert _keys(dispatch.read_examples(str(path), errors)) == ["r0"]
  [(source, error)] = errors
  assert source == str(path)
  assert isinstance(error, common.CorruptInputError)
  assert str(error) == f"{message} {second}"


def _write_tfrecord(path, payloads: list[bytes]) -> None:
  """TFRecord framing, checksummed by TensorBoard's reference CRC-32C."""
  with open(path, "wb") as f:
    for payload in payloads:
      header = len(payload).to_bytes(8, "little")
      f.write(header + reference_masked_crc32c(header).to_bytes(4, "little")
              + payload
              + reference_masked_crc32c(payload).to_bytes(4, "little"))


def test_tfrecord_payload_that_is_not_an_example_is_kept_as_unreadable(
    tmp_path):
  path = tmp_path / "odd.tfrecord"
  _write_tfrecord(path, [b"\xff\xff\xff not a proto"])
  [example] = dispatch.read_examples(str(path))
  assert example.key == f"{path}:0"
  assert (example.image, example.caption) == (None, None)
  assert example.metadata[common.READ_ERROR].startswith(
      "record 0 is not a tf.train.Example")


def test_masked_crc32c_matches_the_reference():
  rng = np.random.default_rng(0)
  for size in (0, 1, 31, 2047, 2048, 2049, 4096, 70_001):
    data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    assert tfrecord.masked_crc32c(data) == reference_masked_crc32c(data), size


# JSONL manifests.


def test_jsonl_manifest(tmp_path):
  (tmp_path / "img").mkdir()
  (tmp_path / "img" / "a.jpg").write_bytes(_jpeg((1, 1, 1)))
  absolute = tmp_path / "b.png"
  absolute.write_bytes(b"png bytes")
  lines = [
      {"key": "a", "image_path": "img/a.jpg", "caption": "rel", "lang": "en"},
      {"key": 2, "image": str(absolute), "text": "abs"},
      {"key": "gone", "image_path": "img/nope.jpg", "caption": "missing"},
      {"image_path": "img/a.jpg", "caption": "lone \ud800 surrogate"},
  ]
  text = "\n".join([json.dumps(line) for line in lines[:2]]
                   + ["", "{not json", "[1, 2]"]
                   + [json.dumps(line) for line in lines[2:]])
  path = tmp_path / "manifest.jsonl"
  path.write_text(text + "\n")
  examples = list(dispatch.read_examples(str(path)))
  source = str(path)
  assert _keys(examples) == ["a", "2", f"{source}:4", f"{source}:5", "gone",
                             f"{source}:7"]
  assert examples[0] == RawExample(key="a", source=source,
                                   image=_jpeg((1, 1, 1)), caption=b"rel",
                                   metadata={"lang": "en"})
  assert (examples[1].image, examples[1].caption) == (b"png bytes", b"abs")
  assert examples[2].image is None
  assert examples[2].metadata[common.READ_ERROR].startswith(
      "line 4 is not valid JSON")
  assert examples[3].metadata == {
      common.READ_ERROR: "line 5 is not a JSON object"}
  assert examples[4].image is None
  assert "img/nope.jpg" in examples[4].metadata[common.READ_ERROR]
  assert examples[5].caption == b"lone \xed\xa0\x80 surrogate"


def test_gzipped_jsonl_truncated_keeps_the_lines_before(tmp_path):
  lines = "".join(json.dumps({"key": str(i), "caption": "c" * 50}) + "\n"
                  for i in range(200))
  data = gzip.compress(lines.encode(), mtime=0)
  path = tmp_path / "m.jsonl.gz"
  path.write_bytes(data)
  assert len(list(dispatch.read_examples(str(path)))) == 200
  path.write_bytes(data[:len(data) - 10])
  errors = _Errors()
  keys = _keys(dispatch.read_examples(str(path), errors))
  assert keys == [str(i) for i in range(len(keys))] and len(keys) < 200
  assert isinstance(errors[0][1], EOFError)


# Dispatch and matching.


@pytest.mark.parametrize("name", ["data.csv", "data.parquet.gz", "noext",
                                  "x.json"])
def test_unknown_extension_is_a_clear_error(name):
  with pytest.raises(ValueError, match=f"cannot read '{name}': unknown input "
                     "format; supported extensions: .tar, .tgz, .parquet"):
    dispatch.reader_for(name)


def test_missing_file_is_reported_or_raised(tmp_path):
  path = str(tmp_path / "absent.tar")
  errors = _Errors()
  assert not list(dispatch.read_examples(path, errors))
  assert isinstance(errors[0][1], FileNotFoundError)
  with pytest.raises(FileNotFoundError):
    list(dispatch.read_examples(path))


def test_resolve_relative_path():
  assert (common.resolve_relative_path("gs://b/d/m.jsonl", "i/x.jpg")
          == "gs://b/d/i/x.jpg")
  assert (common.resolve_relative_path("gs://b/d/m.jsonl", "gs://c/x.jpg")
          == "gs://c/x.jpg")
  assert common.resolve_relative_path("/d/m.jsonl", "/e/x.jpg") == "/e/x.jpg"
  assert common.resolve_relative_path("d/m.jsonl", "x.jpg") == os.path.join(
      "d", "x.jpg")


def test_match_input_files(tmp_path):
  for name in ("b.tar", "a.tar", "c.parquet", "notes.txt"):
    (tmp_path / name).write_bytes(b"")
  tars = str(tmp_path / "*.tar")
  assert dispatch.match_input_files([tars, str(tmp_path / "a.tar")]) == [
      str(tmp_path / "a.tar"), str(tmp_path / "b.tar")]
  assert dispatch.match_input_files(str(tmp_path / "*.parquet")) == [
      str(tmp_path / "c.parquet")]
  with pytest.raises(ValueError, match="no input files match '.*nothing"):
    dispatch.match_input_files([tars, str(tmp_path / "nothing*.tar")])
  with pytest.raises(ValueError, match="notes.txt.*unknown input format"):
    dispatch.match_input_files(str(tmp_path / "*"))
  with pytest.raises(ValueError, match="no input patterns"):
    dispatch.match_input_files([])


# Beam.


def _run_and_count(pipeline: beam.Pipeline) -> dict[str, int]:
  """Runs `pipeline`; the read counters it committed, by name."""
  result = pipeline.run()
  result.wait_until_finish()
  query = result.metrics().query(
      MetricsFilter().with_namespace(beam_read.METRICS_NAMESPACE))
  return {c.key.metric.name: c.committed for c in query["counters"]}


def test_read_raw_examples_with_beam(tmp_path):
  _write_tar(tmp_path / "00000.tar", _webdataset_members(["a", "b"]))
  _write_tar(tmp_path / "00001.tar", _webdataset_members(["c", "d", "e"]))
  path = tmp_path / "00001.tar"
  with tarfile.open(path) as tar:
    cut = tar.getmember("e.jpg").offset_data + 10
  path.write_bytes(path.read_bytes()[:cut])
  (tmp_path / "m.jsonl").write_text(
      json.dumps({"key": "f", "caption": "x"}) + "\n")
  pipeline = beam.Pipeline(runner="DirectRunner")
  outputs = pipeline | beam_read.ReadRawExamples(
      [str(tmp_path / "*.tar"), str(tmp_path / "*.jsonl")])
  assert_that(outputs.examples | beam.Map(lambda e: (e.key, e.caption)),
              equal_to([("a", b"caption a"), ("b", b"caption b"),
                        ("c", b"caption c"), ("d", b"caption d"),
                        ("f", b"x")]), label="Examples")
  assert_that(outputs[beam_read.FILE_ERRORS_TAG]
              | beam.Map(lambda e: (e.source, e.message.split(":")[0])),
              equal_to([(str(path), "ReadError")]), label="FileErrors")
  assert _run_and_count(pipeline) == {
      "files_read": 3, "examples_read": 5, "corrupt_files": 1}


def test_corrupt_tfrecord_checksum_is_counted_with_its_reason(tmp_path):
  payloads = [
      example_proto.Example(features=example_proto.Features(feature={
          "key": example_proto.Feature(
              bytes_list=example_proto.BytesList(value=[key.encode()]))
      })).SerializeToString() for key in ("t0", "t1", "t2")]
  path = tmp_path / "flipped.tfrecord"
  _write_tfrecord(path, payloads)
  data = bytearray(path.read_bytes())
  second = _first_record_size(path)
  data[second + 12] ^= 0x01  # The first payload byte of record "t1".
  path.write_bytes(bytes(data))
  pipeline = beam.Pipeline(runner="DirectRunner")
  outputs = pipeline | beam_read.ReadRawExamples(str(path))
  assert_that(outputs.examples | beam.Map(lambda e: e.key), equal_to(["t0"]),
              label="Examples")
  message = f"CorruptInputError: record data checksum mismatch at byte {second}"
  assert_that(outputs.file_errors,
              equal_to([common.FileError(str(path), message)]),
              label="FileErrors")
  assert _run_and_count(pipeline) == {
      "files_read": 1, "examples_read": 1, "corrupt_files": 1}


def test_read_raw_examples_fails_at_build_time_without_files(tmp_path):
  pipeline = beam.Pipeline(runner="DirectRunner")
  with pytest.raises(ValueError, match="no input files match"):
    _ = pipeline | beam_read.ReadRawExamples(str(tmp_path / "*.tar"))
