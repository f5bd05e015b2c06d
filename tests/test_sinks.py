"""Tests for pipelines.sinks."""

import collections
import hashlib
import json
import os
import re
import tempfile

import pytest

from pipelines import sinks
from pipelines.reasons import REASONS
from tests.fixtures import faults


def test_shard_index_is_a_stable_hash():
  # Pinned values: a change would reshuffle every existing dataset.
  assert [sinks.shard_index(k, 16) for k in ("a", "b", "000001")] == [
      int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "big") % 16
      for k in ("a", "b", "000001")]
  assert [sinks.shard_index(k, 16) for k in ("a", "b", "000001")] == [
      10, 10, 0]
  assert sinks.shard_index("a", 1) == 0
  counts = collections.Counter(sinks.shard_index(str(i), 8)
                               for i in range(8000))
  assert set(counts) == set(range(8))
  assert min(counts.values()) > 900  # Roughly uniform.


def test_shard_name():
  assert sinks.shard_name("train", 3, 16) == "train-00003-of-00016.array_record"


def test_write_array_record_round_trip_and_checksum(tmp_path):
  path = str(tmp_path / "out" / "train-00000-of-00001.array_record")
  records = [b"first", b"", b"x" * 100_000]
  info = sinks.write_array_record(path, records)
  assert info.file == "train-00000-of-00001.array_record"
  assert info.count == 3
  assert info.sha256 == hashlib.sha256(open(path, "rb").read()).hexdigest()
  assert info.sha256 == sinks.file_sha256(path)
  assert sinks.read_array_record(path) == records
  from array_record.python import array_record_module
  reader = array_record_module.ArrayRecordReader(path)
  assert reader.writer_options_string().startswith("group_size:1,")
  reader.close()


def test_write_array_record_is_deterministic_and_empty_shards_work(tmp_path):
  infos = [sinks.write_array_record(str(tmp_path / f"{i}.array_record"),
                                    [b"a", b"b"]) for i in range(2)]
  assert infos[0].sha256 == infos[1].sha256
  empty = sinks.write_array_record(str(tmp_path / "e.array_record"), [])
  assert empty.count == 0
  assert sinks.read_array_record(str(tmp_path / "e.array_record")) == []


def test_rejected_parts_are_sorted_and_concatenated(tmp_path):
  out = str(tmp_path)
  part0 = os.path.join(out, sinks.rejected_part_name(0, 2))
  part1 = os.path.join(out, sinks.rejected_part_name(1, 2))
  sinks.write_rejected_part(part0, [
      sinks.RejectedExample("b", "s.tar", "empty_caption", ""),
      sinks.RejectedExample("a", "s.tar", "corrupt_image", "OSError: x",
                            "http://x/a.jpg"),
  ])
  sinks.write_rejected_part(part1, [])
  destination = os.path.join(out, sinks.REJECTED)
  sinks.concatenate([part0, part1], destination)
  sinks.remove_rejected_parts(out)
  assert not os.path.exists(os.path.join(out, sinks.REJECTED_PARTS_DIR))
  lines = open(destination, encoding="utf-8").read().splitlines()
  assert json.loads(lines[0]) == {"key": "a", "source": "s.tar",
                                  "reason": "corrupt_image",
                                  "detail": "OSError: x",
                                  "url": "http://x/a.jpg"}
  assert [r.key for r in sinks.read_rejected(destination)] == ["a", "b"]


def test_rejected_counts_lists_every_reason_in_order():
  counts = sinks.rejected_counts({"empty_caption": 2})
  assert list(counts) == [str(r) for r in REASONS]
  assert counts["empty_caption"] == 2 and sum(counts.values()) == 2
  with pytest.raises(ValueError, match="unknown rejection reasons"):
    sinks.rejected_counts({"cosmic_rays": 1})


def test_dataset_stats_merge_and_language_order():
  a, b = sinks.DatasetStats(), sinks.DatasetStats()
  a.add("en", 10, 480, 640)
  a.add("de", 12, 5000, 40)
  b.add("de", 12, 33, 33)
  b.add("fr", 3, 64, 64)
  merged = a.merge(b)
  assert merged.language_histogram() == {"de": 2, "en": 1, "fr": 1}
  assert list(merged.language_histogram()) == ["de", "en", "fr"]
  assert merged.caption_chars == {10: 1, 12: 2, 3: 1}
  assert merged.image_sizes[(20, 15)] == 1
  assert merged.image_sizes[(1, 64)] == 1  # Height clipped to the last bin.


def test_plot_stats_writes_a_deterministic_png(tmp_path):
  stats = sinks.DatasetStats()
  for i in range(50):
    stats.add(["en", "de", "ja"][i % 3], 5 + i, 100 + 10 * i, 200 + 7 * i)
  paths = [str(tmp_path / f"{i}.png") for i in range(2)]
  for path in paths:
    sinks.plot_stats(stats, path, "train: 50 examples")
  data = [open(p, "rb").read() for p in paths]
  assert data[0].startswith(b"\x89PNG\r\n\x1a\n")
  assert data[0] == data[1]


def test_write_json_keeps_order_and_unicode(tmp_path):
  path = str(tmp_path / "m.json")
  sinks.write_json(path, {"z": 1, "a": "日本"})
  text = open(path, encoding="utf-8").read()
  assert text == '{\n  "z": 1,\n  "a": "日本"\n}\n'
  assert sinks.read_json(path) == {"z": 1, "a": "日本"}


def _touch(path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  open(path, "wb").close()


def test_prepare_output_dir_refuses_completed_unless_overwrite(tmp_path):
  out = str(tmp_path / "ds")
  sinks.prepare_output_dir(out, overwrite=False)  # Creates it.
  assert os.path.isdir(out)
  for name in ("train-00000-of-00002.array_record",
               "train-00001-of-00002.array_record", sinks.MANIFEST,
               sinks.REJECTED, sinks.STATS_PLOT, "notes.txt",
               sinks.rejected_part_name(0, 2)):
    _touch(os.path.join(out, name))
  sinks.write_completed(out)
  assert sinks.is_completed(out)
  with pytest.raises(FileExistsError,
                     match="already holds a completed dataset; pass "
                     "--overwrite to replace it"):
    sinks.prepare_output_dir(out, overwrite=False)
  assert sinks.is_completed(out)
  sinks.prepare_output_dir(out, overwrite=True)
  # Only the user's own file survives.
  assert os.listdir(out) == ["notes.txt"]


@pytest.mark.parametrize("leftover", [
    "train-00007-of-00008.array_record", sinks.MANIFEST,
    sinks.rejected_part_name(3, 8)])
def test_prepare_output_dir_refuses_an_unfinished_build_unless_overwrite(
    tmp_path, leftover):
  out = str(tmp_path)
  _touch(os.path.join(out, "notes.txt"))
  _touch(os.path.join(out, leftover))
  with pytest.raises(FileExistsError) as raised:
    sinks.prepare_output_dir(out, overwrite=False)
  assert str(raised.value) == (
      f"{out} holds an incomplete dataset (no COMPLETED marker: an earlier "
      "build did not finish); pass --overwrite to replace it")
  assert os.path.exists(os.path.join(out, leftover))
  sinks.prepare_output_dir(out, overwrite=True)
  assert sorted(os.listdir(out)) == ["notes.txt"]


def test_prepare_output_dir_takes_a_directory_without_dataset_files(
    tmp_path):
  out = str(tmp_path)
  _touch(os.path.join(out, "notes.txt"))
  sinks.prepare_output_dir(out, overwrite=False)
  assert os.listdir(out) == ["notes.txt"]


def _full_disk_error(path) -> str:
  return (f"^writing {re.escape(str(path))} failed: .*"
          r"No space left on device")


def test_writes_on_a_full_disk_fail_naming_the_file(tmp_path, monkeypatch):
  faults.fill_after(monkeypatch, 1000)
  shard = tmp_path / "train-00000-of-00001.array_record"
  with pytest.raises(OSError, match=_full_disk_error(shard) + "$"):
    sinks.write_array_record(str(shard), [b"x" * 2000])
  manifest = tmp_path / sinks.MANIFEST
  with pytest.raises(OSError, match=_full_disk_error(manifest) + "$"):
    sinks.write_json(str(manifest), {"counts": list(range(1000))})


def test_shards_on_a_full_tmpfs_fail_naming_the_file(tmp_path, monkeypatch):
  records = [os.urandom(1000) for _ in range(200)]
  with faults.small_tmpfs(tmp_path / "small", 64 << 10) as small:
    shard = small / "train-00000-of-00002.array_record"
    with pytest.raises(OSError, match=_full_disk_error(shard)):
      sinks.write_array_record(str(shard), records)
    # ArrayRecord writes a local temporary file first: that disk is full too.
    monkeypatch.setattr(tempfile, "tempdir", str(small))
    elsewhere = tmp_path / "train-00001-of-00002.array_record"
    with pytest.raises(OSError, match=_full_disk_error(elsewhere)):
      sinks.write_array_record(str(elsewhere), records)
    assert not elsewhere.exists()
    assert os.listdir(small) == [shard.name]
