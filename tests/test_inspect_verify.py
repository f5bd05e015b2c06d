"""Tests for pipelines.inspect and pipelines.verify."""

import json
import shutil

import pytest

from dataformat import files
from dataformat import manifest as manifest_lib
from dataformat import shards
from pipelines import inspect
from pipelines import verify
from tests.fixtures import faults
from vocabularies.vocabulary import Vocabulary


@pytest.fixture
def dataset_copy(built_dataset, tmp_path):
  """A copy of the built dataset that a test may damage."""
  return shutil.copytree(built_dataset, tmp_path / "dataset")


def _manifest(directory):
  return json.loads((directory / shards.MANIFEST).read_text())


def test_verify_accepts_the_built_dataset(built_dataset, capsys):
  report = verify.verify_dataset(str(built_dataset), check_images=True)
  assert report.problems == []
  manifest = _manifest(built_dataset)
  assert report.records == manifest["counts"]["kept"]
  assert report.shards == len(manifest["shards"])
  assert report.rejected == manifest["rejected_file"]["count"]
  assert verify.main([str(built_dataset)]) == 0
  assert capsys.readouterr().out == (
      f"OK: {report.records} records in {report.shards} shards, "
      f"{report.rejected} rejected examples; checksums and counts match\n")


def test_verify_detects_a_flipped_byte(dataset_copy, capsys):
  shard = _manifest(dataset_copy)["shards"][1]
  path = dataset_copy / shard["file"]
  data = bytearray(path.read_bytes())
  data[len(data) // 3] ^= 0x01
  path.write_bytes(bytes(data))
  report = verify.verify_dataset(str(dataset_copy))
  assert report.problems[0].startswith(
      f"{shard['file']}: sha256 {files.sha256(str(path))} != manifest "
      f"{shard['sha256']}")
  assert verify.main([str(dataset_copy)]) == 1
  err = capsys.readouterr().err
  assert f"{shard['file']}: sha256" in err
  assert err.endswith(f"FAILED: {len(report.problems)} problems in "
                      f"{dataset_copy}\n")


def test_verify_detects_a_flipped_byte_in_the_padding(dataset_copy):
  # ArrayRecord's own hashes do not cover the file's tail; the sha256 does.
  shard = _manifest(dataset_copy)["shards"][0]
  path = dataset_copy / shard["file"]
  data = bytearray(path.read_bytes())
  data[-3] ^= 0x01
  path.write_bytes(bytes(data))
  assert [p.split(":")[0] for p in
          verify.verify_dataset(str(dataset_copy)).problems] == [shard["file"]]


@pytest.mark.parametrize("damage", [faults.TRUNCATED, faults.FLIPPED])
def test_verify_names_a_damaged_shard_and_what_it_could_read(
    dataset_copy, damage, capsys):
  shard = _manifest(dataset_copy)["shards"][1]
  faults.damage_shard(dataset_copy / shard["file"], damage)
  report = verify.verify_dataset(str(dataset_copy))
  problems = report.problems
  kept = _manifest(dataset_copy)["counts"]["kept"]
  assert problems[-1] == (f"{report.records} records in the shards, manifest "
                          f"says kept {kept}")
  assert {p.split(":")[0] for p in problems[:-1]} == {shard["file"]}
  unreadable = [p for p in problems if "unreadable after" in p]
  assert len(unreadable) == 1, problems
  if damage == faults.TRUNCATED:
    assert unreadable[0] == (
        f"{shard['file']}: unreadable after 0 records: not a readable "
        "ArrayRecord file (truncated?)")
  else:
    assert "hash mismatch" in unreadable[0]
  assert verify.main([str(dataset_copy)]) == 1
  err = capsys.readouterr().err
  assert err.startswith(f"{shard['file']}: sha256 ")
  assert err.endswith(f"FAILED: {len(problems)} problems in {dataset_copy}\n")


def test_verify_detects_a_missing_shard(dataset_copy):
  manifest = _manifest(dataset_copy)
  shard = manifest["shards"][2]
  (dataset_copy / shard["file"]).unlink()
  problems = verify.verify_dataset(str(dataset_copy)).problems
  assert problems == [
      f"{shard['file']}: missing",
      f"{manifest['counts']['kept'] - shard['count']} records in the shards, "
      f"manifest says kept {manifest['counts']['kept']}"]


def test_verify_detects_extra_files_missing_marker_and_bad_rejected(
    dataset_copy):
  (dataset_copy / "train-00004-of-00004.array_record").write_bytes(b"")
  (dataset_copy / shards.COMPLETED).unlink()
  with open(dataset_copy / shards.REJECTED, "a", encoding="utf-8") as f:
    f.write(shards.RejectedExample("k", "s", "empty_caption", "").to_json_line())
  problems = verify.verify_dataset(str(dataset_copy)).problems
  assert problems[0] == "COMPLETED marker missing: the build did not finish"
  assert ("train-00004-of-00004.array_record: shard file not in the manifest"
          in problems)
  assert any(p.startswith("rejected.jsonl: sha256") for p in problems)
  assert any(p.startswith("rejected.jsonl: reasons") for p in problems)


def test_verify_detects_counts_that_do_not_add_up(dataset_copy):
  manifest = _manifest(dataset_copy)
  manifest["counts"]["read"] += 1
  manifest["shards"][0]["count"] += 1
  files.write_json(str(dataset_copy / shards.MANIFEST), manifest)
  problems = verify.verify_dataset(str(dataset_copy)).problems
  counts = manifest["counts"]
  assert problems[0] == (
      f"manifest.json: read {counts['read']} != kept {counts['kept']} + "
      f"rejected {sum(counts['rejected'].values())}")
  shard = manifest["shards"][0]
  assert (f"{shard['file']}: {shard['count'] - 1} records, manifest says "
          f"{shard['count']}") in problems


def test_verify_cli_errors(tmp_path, capsys):
  assert verify.main([str(tmp_path / "missing")]) == 1
  assert capsys.readouterr().err == (
      f"error: {tmp_path / 'missing'} does not exist\n")
  assert verify.main([str(tmp_path)]) == 1
  assert "manifest.json: missing" in capsys.readouterr().err


def test_inspect_prints_summary_and_decoded_records(built_dataset,
                                                    en_vocab_dir, capsys):
  assert inspect.main([str(built_dataset), "--num_records", "2", "--vocab",
                       str(en_vocab_dir)]) == 0
  out = capsys.readouterr().out
  manifest = _manifest(built_dataset)
  counts = manifest["counts"]
  assert out.startswith(
      f"split train: {counts['kept']} records in 4 shards (read "
      f"{counts['read']}, rejected {sum(counts['rejected'].values())})\n")
  assert "  rejected duplicate_image" in out
  first = next(inspect.iter_records(
      str(built_dataset),
      manifest_lib.read(str(built_dataset / shards.MANIFEST))))
  assert f"key {first.key}  lang {first.lang}" in out
  assert f"  text   {first.text!r}" in out
  assert f"  image  {first.image_width}x{first.image_height} JPEG of " in out
  vocabulary = Vocabulary.load(str(en_vocab_dir))
  decoded = vocabulary.decode(first.tokens[vocabulary.name])
  assert f"    -> {decoded!r}" in out
  assert out.count("\nkey ") == 2


def test_inspect_errors(tmp_path, built_dataset, capsys):
  assert inspect.main([str(tmp_path)]) == 1
  assert capsys.readouterr().err == (
      f"error: {tmp_path} holds no manifest.json: not a dataset directory\n")
  assert inspect.main([str(built_dataset), "--num_records", "-1"]) == 1
  assert capsys.readouterr().err == (
      "error: --num_records must be >= 0, got -1\n")


def test_a_manifest_missing_a_key_is_one_line_naming_file_and_key(
    dataset_copy, capsys):
  manifest = _manifest(dataset_copy)
  del manifest["rejected_file"]
  path = dataset_copy / shards.MANIFEST
  files.write_json(str(path), manifest)
  assert verify.verify_dataset(str(dataset_copy)).problems == [
      f"{path} has no key 'rejected_file'"]
  assert inspect.main([str(dataset_copy)]) == 1
  assert capsys.readouterr().err == (
      f"error: {path} has no key 'rejected_file'\n")
