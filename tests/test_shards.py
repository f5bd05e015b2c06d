"""Tests for dataformat.shards: a dataset directory's files."""

import collections
import hashlib
import json
import os
import re
import tempfile

import pytest

from dataformat import files
from dataformat import shards
from tests.fixtures import faults


def test_shard_index_is_a_stable_hash():
  # Pinned values: a change would reshuffle every existing dataset.
  assert [shards.shard_index(k, 16) for k in ("a", "b", "000001")] == [
      int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "big") % 16
      for k in ("a", "b", "000001")]
  assert [shards.shard_index(k, 16) for k in ("a", "b", "000001")] == [
      10, 10, 0]
  assert shards.shard_index("a", 1) == 0
  counts = collections.Counter(shards.shard_index(str(i), 8)
                               for i in range(8000))
  assert set(counts) == set(range(8))
  assert min(counts.values()) > 900  # Roughly uniform.


def test_shard_name():
  assert shards.shard_name("train", 3, 16) == (
      "train-00003-of-00016.array_record")


def test_write_array_record_round_trip_and_checksum(tmp_path):
  path = str(tmp_path / "out" / "train-00000-of-00001.array_record")
  records = [b"first", b"", b"x" * 100_000]
  info = shards.write_array_record(path, records)
  assert info.file == "train-00000-of-00001.array_record"
  assert info.count == 3
  assert info.sha256 == hashlib.sha256(open(path, "rb").read()).hexdigest()
  assert info.sha256 == files.sha256(path)
  assert shards.read_array_record(path) == records
  from array_record.python import array_record_module
  reader = array_record_module.ArrayRecordReader(path)
  options = reader.writer_options_string().split(",")
  assert options[0] == "group_size:1" and "uncompressed" in options
  reader.close()


def test_write_array_record_is_deterministic_and_empty_shards_work(tmp_path):
  infos = [shards.write_array_record(str(tmp_path / f"{i}.array_record"),
                                    [b"a", b"b"]) for i in range(2)]
  assert infos[0].sha256 == infos[1].sha256
  empty = shards.write_array_record(str(tmp_path / "e.array_record"), [])
  assert empty.count == 0
  assert shards.read_array_record(str(tmp_path / "e.array_record")) == []


def test_shards_written_compressed_before_still_read(tmp_path):
  from array_record.python import array_record_module
  path = str(tmp_path / "train-00000-of-00001.array_record")
  records = [b"first", b"x" * 50_000]
  writer = array_record_module.ArrayRecordWriter(path, "group_size:1")
  for record in records:
    writer.write(record)
  writer.close()
  assert shards.read_array_record(path) == records


def test_rejected_parts_are_sorted_and_concatenated(tmp_path):
  out = str(tmp_path)
  part0 = os.path.join(out, shards.rejected_part_name(0, 2))
  part1 = os.path.join(out, shards.rejected_part_name(1, 2))
  shards.write_rejected_part(part0, [
      shards.RejectedExample("b", "s.tar", "empty_caption", ""),
      shards.RejectedExample("a", "s.tar", "corrupt_image", "OSError: x",
                             "http://x/a.jpg"),
  ])
  shards.write_rejected_part(part1, [])
  destination = os.path.join(out, shards.REJECTED)
  files.concatenate([part0, part1], destination)
  shards.remove_rejected_parts(out)
  assert not os.path.exists(os.path.join(out, shards.REJECTED_PARTS_DIR))
  lines = open(destination, encoding="utf-8").read().splitlines()
  assert json.loads(lines[0]) == {"key": "a", "source": "s.tar",
                                  "reason": "corrupt_image",
                                  "detail": "OSError: x",
                                  "url": "http://x/a.jpg"}
  assert [r.key for r in shards.read_rejected(destination)] == ["a", "b"]


def _touch(path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  open(path, "wb").close()


def test_prepare_output_dir_refuses_completed_unless_overwrite(tmp_path):
  out = str(tmp_path / "ds")
  shards.prepare_output_dir(out, overwrite=False)  # Creates it.
  assert os.path.isdir(out)
  for name in ("train-00000-of-00002.array_record",
               "train-00001-of-00002.array_record", shards.MANIFEST,
               shards.REJECTED, shards.STATS_PLOT, "notes.txt",
               shards.rejected_part_name(0, 2),
               f"{shards.SPILL_DIR}/0123456789abcdef.spill"):
    _touch(os.path.join(out, name))
  shards.write_completed(out)
  assert shards.is_completed(out)
  with pytest.raises(FileExistsError,
                     match="already holds a completed dataset; pass "
                     "--overwrite to replace it"):
    shards.prepare_output_dir(out, overwrite=False)
  assert shards.is_completed(out)
  shards.prepare_output_dir(out, overwrite=True)
  # Only the user's own file survives.
  assert os.listdir(out) == ["notes.txt"]


@pytest.mark.parametrize("leftover", [
    "train-00007-of-00008.array_record", shards.MANIFEST,
    shards.rejected_part_name(3, 8),
    f"{shards.SPILL_DIR}/0123456789abcdef.spill"])
def test_prepare_output_dir_refuses_an_unfinished_build_unless_overwrite(
    tmp_path, leftover):
  out = str(tmp_path)
  _touch(os.path.join(out, "notes.txt"))
  _touch(os.path.join(out, leftover))
  with pytest.raises(FileExistsError) as raised:
    shards.prepare_output_dir(out, overwrite=False)
  assert str(raised.value) == (
      f"{out} holds an incomplete dataset (no COMPLETED marker: an earlier "
      "build did not finish); pass --overwrite to replace it")
  assert os.path.exists(os.path.join(out, leftover))
  shards.prepare_output_dir(out, overwrite=True)
  assert sorted(os.listdir(out)) == ["notes.txt"]


def test_prepare_output_dir_takes_a_directory_without_dataset_files(
    tmp_path):
  out = str(tmp_path)
  _touch(os.path.join(out, "notes.txt"))
  shards.prepare_output_dir(out, overwrite=False)
  assert os.listdir(out) == ["notes.txt"]


def _full_disk_error(path) -> str:
  return (f"^writing {re.escape(str(path))} failed: .*"
          r"No space left on device")


def test_writes_on_a_full_disk_fail_naming_the_file(tmp_path, monkeypatch):
  faults.fill_after(monkeypatch, 1000)
  shard = tmp_path / "train-00000-of-00001.array_record"
  with pytest.raises(OSError, match=_full_disk_error(shard) + "$"):
    shards.write_array_record(str(shard), [b"x" * 2000])
  manifest = tmp_path / shards.MANIFEST
  with pytest.raises(OSError, match=_full_disk_error(manifest) + "$"):
    files.write_json(str(manifest), {"counts": list(range(1000))})


def test_shards_on_a_full_tmpfs_fail_naming_the_file(tmp_path, monkeypatch):
  records = [os.urandom(1000) for _ in range(200)]
  with faults.small_tmpfs(tmp_path / "small", 64 << 10) as small:
    shard = small / "train-00000-of-00002.array_record"
    with pytest.raises(OSError, match=_full_disk_error(shard)):
      shards.write_array_record(str(shard), records)
    # ArrayRecord writes a local temporary file first: that disk is full too.
    monkeypatch.setattr(tempfile, "tempdir", str(small))
    elsewhere = tmp_path / "train-00001-of-00002.array_record"
    with pytest.raises(OSError, match=_full_disk_error(elsewhere)):
      shards.write_array_record(str(elsewhere), records)
    assert not elsewhere.exists()
    assert os.listdir(small) == [shard.name]


def _dataset(directory, split="train", num_shards=2):
  """A complete dataset directory of empty shards."""
  for i in range(num_shards):
    shards.write_array_record(
        files.join(directory, shards.shard_name(split, i, num_shards)), [])
  files.write_bytes(files.join(directory, shards.MANIFEST), b"{}")
  shards.write_completed(directory)


def test_dataset_shards_lists_a_split_and_names_what_is_wrong(tmp_path):
  data_dir = str(tmp_path / "ds")
  _dataset(data_dir)
  assert shards.dataset_shards(data_dir, "train") == [
      os.path.join(data_dir, shards.shard_name("train", i, 2))
      for i in range(2)]
  with pytest.raises(ValueError) as raised:
    shards.dataset_shards(data_dir, "validation")
  assert str(raised.value) == (
      f"dataset {data_dir} has no 'validation' shards")
  missing = str(tmp_path / "missing")
  with pytest.raises(ValueError) as raised:
    shards.dataset_shards(missing, "train")
  assert str(raised.value) == f"dataset directory {missing} does not exist"
  os.remove(os.path.join(data_dir, shards.COMPLETED))
  with pytest.raises(ValueError) as raised:
    shards.dataset_shards(data_dir, "train")
  assert str(raised.value) == (
      f"dataset {data_dir} is incomplete (no COMPLETED marker)")


def test_dataset_shards_on_gcs_tests_files_not_directories(gcs, gcs_dir):
  data_dir = f"{gcs_dir}/ds"
  _dataset(data_dir)
  assert shards.dataset_shards(data_dir, "train") == [
      f"{data_dir}/{shards.shard_name('train', i, 2)}" for i in range(2)]
  # GCS has no directory objects: a dataset is there by its files.
  with pytest.raises(ValueError,
                     match=f"^dataset directory {gcs_dir}/missing does not "
                     "exist$"):
    shards.dataset_shards(f"{gcs_dir}/missing", "train")
  files.remove(f"{data_dir}/{shards.COMPLETED}")
  with pytest.raises(ValueError,
                     match=f"^dataset {data_dir} is incomplete"):
    shards.dataset_shards(data_dir, "train")


def test_remote_shards_are_read_through_a_local_copy(gcs, gcs_dir, tmp_path):
  records = [b"a", b"", b"c" * 1000]
  remote = f"{gcs_dir}/train-00000-of-00001.array_record"
  info = shards.write_array_record(remote, records)
  local = str(tmp_path / "local.array_record")
  assert info.sha256 == shards.write_array_record(local, records).sha256
  assert info.file == "train-00000-of-00001.array_record"
  assert shards.read_array_record(remote) == records
  assert gcs.read(remote) == files.read_bytes(local)
