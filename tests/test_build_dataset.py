"""Tests for pipelines.build_dataset: the dataset build, end to end."""

import collections
import contextlib
import hashlib
import io
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile

import numpy as np
from PIL import Image
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataformat import files
from dataformat import records
from dataformat import shards
from demo import corpus as demo_corpus_lib
from pipelines import build_dataset
from pipelines import beam_options
from pipelines import images
from pipelines import spill
from pipelines import verify
from pipelines.readers import dispatch
from pipelines.reasons import REASONS
from pipelines.reasons import Reason
from tests.fixtures import dataset as dataset_fixture
from tests.fixtures import faults
from tests.fixtures.corpus import XM3600_NUM_IMAGES as XM3600_IMAGES
from vocabularies.vocabulary import Vocabulary
from trainer import input_pipeline


def _files(directory: pathlib.Path) -> dict[str, bytes]:
  return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _records(directory: pathlib.Path) -> list[records.Record]:
  manifest = json.loads((directory / shards.MANIFEST).read_text())
  return [records.parse_record(data) for shard in manifest["shards"]
          for data in shards.read_array_record(str(directory / shard["file"]))]


def _argv(demo_corpus, xm3600_dir, en_vocab_dir, multi_vocab_dir, output_dir):
  return dataset_fixture.build_dataset_argv(
      demo_corpus.output_dir, output_dir, [en_vocab_dir, multi_vocab_dir],
      xm3600_dir)


def test_counts_and_reasons_match_the_corpus_truth(built_dataset, demo_corpus):
  manifest = json.loads((built_dataset / shards.MANIFEST).read_text())
  counts = manifest["counts"]
  assert counts["read"] == demo_corpus.num_examples == 400
  assert counts["read"] == counts["kept"] + sum(counts["rejected"].values())
  assert counts["kept"] == demo_corpus.num_kept
  assert list(counts["rejected"]) == [str(r) for r in REASONS]
  assert {r: n for r, n in counts["rejected"].items() if n} == (
      demo_corpus.reason_counts)
  rejected = shards.read_rejected(str(built_dataset / shards.REJECTED))
  assert {r.key: r.reason for r in rejected} == demo_corpus.expected_rejections
  # Every set-level kind is there: the fixture block-lists XM3600's images.
  assert counts["rejected"][Reason.BLOCKLISTED_IMAGE] > 0
  assert counts["rejected"][Reason.DUPLICATE_IMAGE] > 0
  duplicates = [r for r in rejected if r.reason == Reason.DUPLICATE_IMAGE]
  assert all(r.detail.startswith("duplicate of ") for r in duplicates)
  assert all(r.detail.removeprefix("duplicate of ") < r.key
             for r in duplicates)
  all_keys = {e.key for shard in demo_corpus.shards
              for e in dispatch.read_examples(str(shard))}
  kept_keys = {r.key for r in _records(built_dataset)}
  assert kept_keys == all_keys - set(demo_corpus.expected_rejections)


def test_every_kept_record_is_valid(built_dataset, en_vocab_dir,
                                    multi_vocab_dir):
  vocabularies = [Vocabulary.load(str(en_vocab_dir)),
                  Vocabulary.load(str(multi_vocab_dir))]
  kept = _records(built_dataset)
  untruncated = collections.Counter()
  for record in kept:
    decoded = images.decode_image(record.image_encoded)
    assert decoded.format == "JPEG"
    expected_size = images.shorter_side_size(
        record.image_original_height, record.image_original_width, 256)
    assert decoded.pixels.shape[:2] == expected_size
    assert (record.image_height, record.image_width) == expected_size
    assert len(record.image_sha256) == 64
    assert record.text and record.source.endswith(".tar")
    assert sorted(record.tokens) == sorted(v.name for v in vocabularies)
    for vocabulary in vocabularies:
      ids = record.tokens[vocabulary.name]
      assert ids == vocabulary.encode(record.text, max_len=64)
      full = vocabulary.decode(vocabulary.encode(record.text))
      if len(ids) < 64:
        assert vocabulary.decode(ids) == full
        untruncated[vocabulary.name] += 1
      else:  # Cut to 64 ids, EOS last: the text's beginning.
        assert ids[-1] == vocabulary.eos_id
        assert full.startswith(vocabulary.decode(ids))
  assert min(untruncated.values()) > len(kept) // 2


def test_manifest(built_dataset, demo_corpus, en_vocab_dir, multi_vocab_dir):
  manifest = json.loads((built_dataset / shards.MANIFEST).read_text())
  num_shards = dataset_fixture.BUILT_DATASET_NUM_SHARDS
  assert [s["file"] for s in manifest["shards"]] == [
      f"train-{i:05d}-of-{num_shards:05d}.array_record"
      for i in range(num_shards)]
  assert sum(s["count"] for s in manifest["shards"]) == (
      manifest["counts"]["kept"])
  for shard in manifest["shards"]:
    assert shard["sha256"] == files.sha256(
        str(built_dataset / shard["file"]))
  assert [v["name"] for v in manifest["vocabularies"]] == [
      Vocabulary.load(str(en_vocab_dir)).name,
      Vocabulary.load(str(multi_vocab_dir)).name]
  assert sum(manifest["languages"].values()) == manifest["counts"]["kept"]
  kept_langs = collections.Counter(r.lang for r in _records(built_dataset))
  assert manifest["languages"] == dict(kept_langs)
  options = manifest["options"]
  assert options["num_shards"] == num_shards
  assert (options["image_size"], options["jpeg_quality"],
          options["max_tokens"]) == (256, 95, 64)
  assert options["filters"]["min_image_side"] == 32
  assert options["blocklist"]["hashes"] == 24
  assert manifest["input_files"] == {"count": 2, "corrupt": []}
  assert manifest["rejected_file"]["count"] == len(
      demo_corpus.expected_rejections)
  assert manifest["schema_version"] == records.SCHEMA_VERSION
  names = set(os.listdir(built_dataset))
  assert {shards.MANIFEST, shards.REJECTED, shards.STATS_PLOT,
          shards.COMPLETED} <= names
  assert shards.REJECTED_PARTS_DIR not in names
  assert (built_dataset / shards.STATS_PLOT).read_bytes().startswith(b"\x89PNG")


def test_records_are_sorted_by_key_in_their_hash_shard(built_dataset):
  manifest = json.loads((built_dataset / shards.MANIFEST).read_text())
  for index, shard in enumerate(manifest["shards"]):
    keys = [records.parse_record(d).key for d in
            shards.read_array_record(str(built_dataset / shard["file"]))]
    assert keys == sorted(keys)
    assert {shards.shard_index(k, len(manifest["shards"])) for k in keys} <= {
        index}


def test_rerun_into_a_completed_dataset_is_refused(built_dataset, demo_corpus,
                                                  xm3600_dir, en_vocab_dir,
                                                  multi_vocab_dir, capsys):
  before = _files(built_dataset)
  argv = _argv(demo_corpus, xm3600_dir, en_vocab_dir, multi_vocab_dir,
               built_dataset)
  assert build_dataset.main(argv) == 1
  err = capsys.readouterr().err
  assert err == (f"error: {built_dataset} already holds a completed dataset; "
                 "pass --overwrite to replace it\n")
  assert _files(built_dataset) == before


@pytest.mark.parametrize("extra, message", [
    (["--num_shards", "0"], "error: --num_shards must be positive, got 0"),
    (["--split", "a/b"], "error: --split must be letters, digits and '_'"),
    (["--jpeg_quality", "0"], "error: jpeg_quality must be in [1, 100], got 0"),
    (["--min_caption_chars", "9", "--max_caption_chars", "3"],
     "error: caption chars limits must satisfy"),
    (["--num_shard", "3"], "error: unrecognized arguments: --num_shard"),
    (["--vocab", "/nonexistent/vocab"], "error: /nonexistent/vocab is neither"),
    (["--blocklist", "/nonexistent/list"],
     "error: block-list /nonexistent/list does not exist"),
    (["--langid_min_score", "2"], "error: min_score must be in [0, 1]"),
    (["--languages", "mi,quz"], "error: the cascade language identifier "
     "never outputs quz; it outputs und and af "),
    (["--languages", "mi", "--langid_backend", "fast"],
     "error: the fast language identifier never outputs mi;"),
])
def test_bad_arguments_give_one_line_errors(extra, message, demo_corpus,
                                            tmp_path, capsys):
  output = tmp_path / "out"
  argv = ["--input", f"{demo_corpus.output_dir}/*.tar",
          "--output", str(output)] + extra
  assert build_dataset.main(argv) == 1
  err = capsys.readouterr().err
  assert err.startswith(message) and err.count("\n") == 1
  assert not output.exists()


def test_input_matching_nothing_is_an_error(tmp_path, capsys):
  argv = ["--input", str(tmp_path / "*.tar"), "--output", str(tmp_path / "o")]
  assert build_dataset.main(argv) == 1
  assert capsys.readouterr().err.startswith("error: no input files match")


def test_set_level_rejections():
  assert build_dataset.set_level_rejections("h", ["b", "a", "c"], False) == [
      ("b", Reason.DUPLICATE_IMAGE, "duplicate of a"),
      ("c", Reason.DUPLICATE_IMAGE, "duplicate of a")]
  assert build_dataset.set_level_rejections("h", ["a"], False) == []
  assert build_dataset.set_level_rejections("h", ["a", "b", "a"], False) == [
      ("b", Reason.DUPLICATE_IMAGE, "duplicate of a")]
  assert build_dataset.set_level_rejections("h", ["b", "a"], True) == [
      ("a", Reason.BLOCKLISTED_IMAGE, "pixel sha256 h"),
      ("b", Reason.BLOCKLISTED_IMAGE, "pixel sha256 h")]


def _kept(key, record=b"r"):
  return build_dataset.KeptExample(key, "s.tar", "h", "en", 3, 64, 64, record)


def test_split_shard_applies_drops_and_sorts():
  earlier = shards.RejectedExample("z", "s.tar", "empty_caption", "")
  written, rejected = build_dataset.split_shard(
      [_kept("c"), _kept("a", b"2"), _kept("b"), _kept("a", b"1")], [earlier],
      [("b", Reason.DUPLICATE_IMAGE, "duplicate of a")])
  assert [(e.key, e.record) for e in written] == [
      ("a", b"1"), ("a", b"2"), ("c", b"r")]
  assert rejected == [earlier, shards.RejectedExample(
      "b", "s.tar", "duplicate_image", "duplicate of a")]


def test_help_explains_every_flag(capsys):
  with pytest.raises(SystemExit) as exit_info:
    build_dataset.main(["--help"])
  assert exit_info.value.code == 0
  text = capsys.readouterr().out
  for flag in ("--input", "--output", "--vocab", "--num_shards", "--split",
               "--blocklist", "--image_size", "--jpeg_quality",
               "--max_image_pixels", "--min_image_side", "--max_aspect_ratio",
               "--min_caption_chars", "--max_caption_chars",
               "--min_caption_words", "--max_caption_words", "--max_tokens",
               "--languages", "--langid_backend", "--langid_min_score",
               "--overwrite", "--direct_num_workers"):
    assert flag in text


@pytest.mark.slow
def test_rebuild_is_byte_identical_and_overwrite_replaces(
    built_dataset, demo_corpus, xm3600_dir, en_vocab_dir, multi_vocab_dir,
    tmp_path, capsys):
  output = tmp_path / "again"
  argv = _argv(demo_corpus, xm3600_dir, en_vocab_dir, multi_vocab_dir, output)
  args, beam_argv = build_dataset.parse_args(argv)
  result = build_dataset.build(args, beam_argv)
  assert _files(output) == _files(built_dataset)
  counts = result.manifest.counts
  # Every decision was counted by a Beam counter too.
  assert result.counters["processed"] == counts.read
  assert result.counters["kept"] == counts.kept
  assert {r: result.counters.get(f"rejected_{r}", 0)
          for r in counts.rejected} == counts.rejected
  # On the local runner the kept records waited on disk, now removed.
  assert result.counters["spilled"] == result.counters["passed_example_checks"]
  assert not (output / shards.SPILL_DIR).exists()
  (output / "stale-00009-of-00010.array_record").write_bytes(b"old")
  assert build_dataset.main(argv + ["--overwrite"]) == 0
  summary = capsys.readouterr().out
  assert "read 400 examples from 2 input files" in summary
  assert f"kept {counts.kept}, rejected" in summary
  assert _files(output) == _files(built_dataset)


@pytest.mark.slow
def test_records_sent_through_the_shuffle_give_the_same_dataset(
    built_dataset, demo_corpus, xm3600_dir, en_vocab_dir, multi_vocab_dir,
    tmp_path, monkeypatch):
  # What a remote runner does: no spill directory, the records cross the
  # shard GroupByKey themselves.
  monkeypatch.setattr(build_dataset, "spill_dir_for", lambda *unused: None)
  output = tmp_path / "shuffled"
  args, beam_argv = build_dataset.parse_args(
      _argv(demo_corpus, xm3600_dir, en_vocab_dir, multi_vocab_dir, output))
  result = build_dataset.build(args, beam_argv)
  assert "spilled" not in result.counters
  assert _files(output) == _files(built_dataset)


def test_kept_records_spill_only_where_the_runner_is_local(tmp_path):
  local = beam_options.from_flags([])
  assert build_dataset.spill_dir_for(str(tmp_path / "out"), local) == str(
      tmp_path / "out" / shards.SPILL_DIR)
  # Not to a bucket: the runner's workers read them back from local disk.
  remote_output = build_dataset.spill_dir_for("gs://bucket/out", local)
  assert re.fullmatch(
      re.escape(os.path.join(tempfile.gettempdir(), "build-spill-")) +
      "[0-9a-f]{16}", remote_output)
  assert remote_output != build_dataset.spill_dir_for("gs://bucket/out",
                                                      local)
  dataflow = beam_options.from_flags(["--runner", "DataflowRunner"])
  assert build_dataset.spill_dir_for("gs://bucket/out", dataflow) is None


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["multi_processing", "multi_threading"])
def test_two_workers_give_identical_output(
    built_dataset, demo_corpus, xm3600_dir, en_vocab_dir, multi_vocab_dir,
    tmp_path, mode):
  output = tmp_path / "multi"
  argv = _argv(demo_corpus, xm3600_dir, en_vocab_dir, multi_vocab_dir, output)
  argv += ["--direct_num_workers", "2", "--direct_running_mode", mode]
  assert build_dataset.main(argv) == 0
  assert _files(output) == _files(built_dataset)


def test_inputs_given_relative_are_stored_resolved(tmp_path, xm3600_dir,
                                                   monkeypatch):
  demo_corpus_lib.generate_corpus(tmp_path / "corpus", num_examples=10,
                                  seed=3, bad_fraction=0.0)
  monkeypatch.chdir(tmp_path)
  blocklist = os.path.relpath(xm3600_dir / "images", tmp_path)
  assert build_dataset.main(["--input", "corpus/*.tar", "--output", "out",
                             "--blocklist", blocklist,
                             "--num_shards", "1"]) == 0
  options = json.loads((tmp_path / "out" / shards.MANIFEST).read_text())[
      "options"]
  assert options["inputs"] == [str(tmp_path / "corpus" / "*.tar")]
  assert options["blocklist"]["sources"] == [str(xm3600_dir / "images")]
  shard = str(tmp_path / "corpus" / "00000.tar")
  assert {r.source for r in _records(tmp_path / "out")} == {shard}


_BUILD_THEN_LIST_MODULES = """
import sys
from pipelines import build_dataset
assert build_dataset.main(sys.argv[1:]) == 0
print(",".join(m for m in ("jax", "flax", "orbax", "grain", "trainer")
               if m in sys.modules))
"""


def test_a_build_without_scoring_never_loads_jax(tmp_path):
  # JAX and the model code cost about 2 s of every build process's and
  # worker's start; only --score_model needs them. The local runner runs the
  # workers' code in this process, so it covers theirs too.
  corpus = demo_corpus_lib.generate_corpus(tmp_path / "corpus", num_examples=6,
                                           seed=3, bad_fraction=0.0)
  root = pathlib.Path(__file__).resolve().parents[1]
  run = subprocess.run(
      [sys.executable, "-c", _BUILD_THEN_LIST_MODULES, "--input",
       f"{corpus.output_dir}/*.tar", "--output", str(tmp_path / "out"),
       "--num_shards", "1"],
      cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
      capture_output=True, text=True, timeout=300, check=False)
  assert run.returncode == 0, run.stderr
  assert run.stdout.splitlines()[-1] == ""
  assert (tmp_path / "out" / shards.COMPLETED).exists()


@pytest.mark.slow
def test_damaged_input_file_is_listed_and_counts_add_up(tmp_path, capsys):
  corpus = demo_corpus_lib.generate_corpus(
      tmp_path / "corpus", num_examples=30, seed=3, examples_per_shard=15,
      bad_fraction=0.0)
  damaged = pathlib.Path(corpus.shards[1])
  data = damaged.read_bytes()
  damaged.write_bytes(data[:len(data) // 2])
  readable = sum(1 for _ in dispatch.read_examples(str(damaged),
                                                   on_error=lambda *_: None))
  output = tmp_path / "out"
  argv = ["--input", f"{corpus.output_dir}/*.tar", "--output",
          str(output), "--num_shards", "2", "--languages", "en"]
  assert build_dataset.main(argv) == 0
  manifest = json.loads((output / shards.MANIFEST).read_text())
  [corrupt] = manifest["input_files"]["corrupt"]
  assert corrupt["file"] == str(damaged)
  assert manifest["counts"]["read"] == 15 + readable
  counts = manifest["counts"]
  assert counts["read"] == counts["kept"] + sum(counts["rejected"].values())
  assert counts["rejected"]["language_not_allowed"] > 0
  assert set(manifest["languages"]) == {"en"}
  assert f"damaged input file {damaged}" in capsys.readouterr().out
  shutil.rmtree(output)


@pytest.mark.slow
def test_languages_allow_list_selects_maori(tmp_path):
  corpus = demo_corpus_lib.generate_corpus(
      tmp_path / "corpus", num_examples=40, seed=5, bad_fraction=0.0,
      lang_mix="mi=0.5,en=0.25,quz=0.25")
  output = tmp_path / "out"
  argv = ["--input", f"{corpus.output_dir}/*.tar", "--output",
          str(output), "--num_shards", "1", "--languages", "mi"]
  assert build_dataset.main(argv) == 0
  manifest = json.loads((output / shards.MANIFEST).read_text())
  assert manifest["languages"] == {"mi": corpus.language_counts["mi"]}
  rejected = manifest["counts"]["rejected"]
  assert rejected["language_not_allowed"] == sum(rejected.values()) == (
      40 - corpus.language_counts["mi"])


# Runs the command and SIGKILLs it (no cleanup runs) at a fixed point: when
# the second shard is about to be written, or just before COMPLETED, when
# every other file of the dataset is in place.
_KILLED_BUILD = """
import os, signal, sys
from dataformat import shards
from pipelines import build_dataset

def kill(*args, **kwargs):
  os.kill(os.getpid(), signal.SIGKILL)

written = []
write_array_record = shards.write_array_record

def write_one_shard(*args, **kwargs):
  if written:
    kill()
  written.append(write_array_record(*args, **kwargs))
  return written[-1]

if sys.argv[1] == "second_shard":
  shards.write_array_record = write_one_shard
else:
  shards.write_completed = kill
sys.exit(build_dataset.main(sys.argv[2:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", ["second_shard", "completed_marker"])
def test_a_killed_build_is_refused_until_overwritten_and_rebuilt_exactly(
    kill_at, built_dataset, demo_corpus, xm3600_dir, en_vocab_dir,
    multi_vocab_dir, tmp_path, capsys):
  output = tmp_path / "killed"
  argv = _argv(demo_corpus, xm3600_dir, en_vocab_dir, multi_vocab_dir, output)
  root = pathlib.Path(__file__).resolve().parents[1]
  # The killed build cannot remove the block-list it wrote for its workers:
  # it leaves it here, not in the machine's temporary directory.
  killed = subprocess.run(
      [sys.executable, "-c", _KILLED_BUILD, kill_at, *argv], cwd=root,
      env={**os.environ, "PYTHONPATH": str(root), "TMPDIR": str(tmp_path)},
      capture_output=True, text=True, timeout=120, check=False)
  assert killed.returncode == -signal.SIGKILL, killed.stderr
  left = {p.relative_to(output).as_posix() for p in output.rglob("*")
          if p.is_file()}
  shard_files = {name for name in left
                 if name.endswith(shards.SHARD_SUFFIX)}
  spilled = {name for name in left
             if name.startswith(shards.SPILL_DIR + "/")}
  if kill_at == "second_shard":
    assert len(shard_files) == 1 and shards.MANIFEST not in left
    assert spilled  # The kept records still wait there.
  else:
    assert len(shard_files) == dataset_fixture.BUILT_DATASET_NUM_SHARDS
    assert {shards.MANIFEST, shards.REJECTED, shards.STATS_PLOT} <= left
    assert not spilled
  assert shards.COMPLETED not in left
  # Nothing takes the half dataset for a dataset.
  assert verify.main([str(output)]) == 1
  assert capsys.readouterr().err.startswith(
      "COMPLETED marker missing: the build did not finish\n")
  with pytest.raises(ValueError, match="incomplete"):
    shards.dataset_shards(output, "train")

  before = {p: p.read_bytes() for p in output.rglob("*") if p.is_file()}
  assert build_dataset.main(argv) == 1
  assert capsys.readouterr().err == (
      f"error: {output} holds an incomplete dataset (no COMPLETED marker: an "
      "earlier build did not finish); pass --overwrite to replace it\n")
  assert {p: p.read_bytes() for p in output.rglob("*")
          if p.is_file()} == before

  assert build_dataset.main(argv + ["--overwrite"]) == 0
  assert _files(output) == _files(built_dataset)


@pytest.mark.slow
@pytest.mark.parametrize("full_disk", ["tmpfs", "injected_enospc"])
def test_a_full_disk_fails_the_build_with_one_line_and_no_marker(
    full_disk, demo_corpus, tmp_path, monkeypatch, capsys):
  small = tmp_path / "small"
  output = small / "dataset"
  argv = ["--input", f"{demo_corpus.output_dir}/*.tar", "--output",
          str(output), "--num_shards", "4"]
  with contextlib.ExitStack() as stack:
    if full_disk == "tmpfs":
      stack.enter_context(faults.small_tmpfs(small, 200 << 10))
    else:
      faults.fill_after(monkeypatch, 200 << 10)
    assert build_dataset.main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # No summary: nothing was built.
    assert "Traceback" not in captured.err
    # The disk fills while the kept records wait for their shards (tmpfs)
    # or while the shards are written (the file layer fails).
    assert re.fullmatch(
        rf"error: writing {re.escape(str(output))}/"
        rf"(train-\d{{5}}-of-00004\.array_record|"
        rf"{shards.SPILL_DIR}/[0-9a-f]{{16}}\{spill.SUFFIX}) failed: "
        r".*No space left on device.* "
        r"\[while running 'BuildDataset/(WriteShards|Spill)'\]",
        captured.err.splitlines()[-1])
    left = {p.name for p in output.iterdir()}
    assert not left & {shards.COMPLETED, shards.MANIFEST, shards.REJECTED,
                       shards.SPILL_DIR}
    assert verify.main([str(output)]) == 1


def _photo(seed: int) -> bytes:
  rng = np.random.default_rng(seed)
  buffer = io.BytesIO()
  Image.fromarray(rng.integers(0, 256, (48, 64, 3), np.uint8)).save(
      buffer, format="JPEG", quality=90)
  return buffer.getvalue()


def _img2dataset_meta(i: int, status: str = "success") -> dict:
  """A sample's metadata as img2dataset 1.47 writes it (.json, Parquet row)."""
  ok = status == "success"
  image = _photo(i) if ok else None
  return {
      "url": f"http://127.0.0.1:8000/photo{i}.jpg",
      "caption": f"a photo of a red bicycle number {i}",
      "key": f"{i:09d}", "status": status,
      "error_message": None if ok else (
          "<urlopen error [Errno 111] Connection refused>"),
      "width": 64 if ok else None, "height": 48 if ok else None,
      "original_width": 640 if ok else None,
      "original_height": 480 if ok else None,
      "exif": "{}" if ok else None,
      "sha256": hashlib.sha256(image).hexdigest() if ok else None,
  }


def test_img2dataset_failed_rows_are_download_failed(tmp_path):
  # Parquet: a row per URL, failed ones without image (`jpg` null).
  rows = [_img2dataset_meta(i, "success" if i % 3 else "failed_to_download")
          for i in range(6)]
  table = pa.table({**{name: [row[name] for row in rows] for name in rows[0]},
                    "jpg": [_photo(i) if row["status"] == "success" else None
                            for i, row in enumerate(rows)]})
  pq.write_table(table, tmp_path / "00000.parquet")
  # Webdataset: a sample whose .json says it failed.
  with tarfile.open(tmp_path / "00001.tar", "w") as tar:
    for i, status in ((10, "success"), (11, "failed_to_resize")):
      meta = _img2dataset_meta(i, status)
      members = [(f"{i:09d}.txt", meta["caption"].encode()),
                 (f"{i:09d}.json", json.dumps(meta).encode())]
      if status == "success":
        members.insert(0, (f"{i:09d}.jpg", _photo(i)))
      for name, data in members:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
  output = tmp_path / "out"
  assert build_dataset.main([
      "--input", str(tmp_path / "00000.parquet"),
      "--input", str(tmp_path / "00001.tar"), "--output", str(output),
      "--num_shards", "2"]) == 0
  counts = json.loads((output / shards.MANIFEST).read_text())["counts"]
  assert counts["read"] == 8
  assert counts["kept"] == 5
  assert {r: n for r, n in counts["rejected"].items() if n} == {
      "download_failed": 3}
  rejected = shards.read_rejected(str(output / shards.REJECTED))
  assert sorted((r.key, r.detail, r.url) for r in rejected) == [
      ("000000000", "status failed_to_download: <urlopen error [Errno 111] "
       "Connection refused>", "http://127.0.0.1:8000/photo0.jpg"),
      ("000000003", "status failed_to_download: <urlopen error [Errno 111] "
       "Connection refused>", "http://127.0.0.1:8000/photo3.jpg"),
      ("000000011", "status failed_to_resize: <urlopen error [Errno 111] "
       "Connection refused>", "http://127.0.0.1:8000/photo11.jpg"),
  ]
  kept = {r.key: r for r in _records(output)}
  assert sorted(kept) == ["000000001", "000000002", "000000004",
                          "000000005", "000000010"]
  for key, record in kept.items():
    i = int(key)
    assert (record.source_url, record.source_key, record.source_sha256,
            record.source_width, record.source_height) == (
                f"http://127.0.0.1:8000/photo{i}.jpg", key,
                hashlib.sha256(_photo(i)).hexdigest(), 640, 480)


def _near_copies_corpus(tmp_path: pathlib.Path, xm3600_dir: pathlib.Path
                        ) -> tuple[str, dict[str, str]]:
  """Clean demo scenes plus altered copies of XM3600 images.

  Returns:
    The corpus directory and, for each altered copy, the eval image it copies.
  """
  corpus = demo_corpus_lib.generate_corpus(
      tmp_path / "corpus", num_examples=12, seed=5, bad_fraction=0.0)
  eval_paths = sorted((xm3600_dir / "images").glob("*.jpg"))[:3]
  copies = {}
  examples = []
  for index, (path, alter) in enumerate(zip(eval_paths, [
      lambda im: im.resize((im.width * 3 // 5, im.height * 3 // 5)),
      lambda im: im.crop((im.width // 16, im.height // 20,
                          im.width - im.width // 14, im.height)),
      lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])):
    with Image.open(path) as image:
      altered = alter(image.convert("RGB"))
    buffer = io.BytesIO()
    altered.save(buffer, format="JPEG", quality=80)
    key = f"copy{index}"
    copies[key] = path.name
    examples.append(demo_corpus_lib.DemoExample(
        key, buffer.getvalue(), b"a picture of a shape on a background", {}))
  demo_corpus_lib.write_shard(os.path.join(corpus.output_dir, "copies.tar"),
                              examples)
  return corpus.output_dir, copies


@pytest.mark.slow
def test_near_duplicates_of_eval_images_are_rejected_with_their_key(
    tmp_path, xm3600_dir, monkeypatch, capsys):
  corpus_dir, copies = _near_copies_corpus(tmp_path, xm3600_dir)
  # Where the build writes the block-list for its workers.
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
  outputs = {}
  for workers in ("1", "2"):
    output = tmp_path / f"out{workers}"
    assert build_dataset.main([
        "--input", f"{corpus_dir}/*.tar", "--output", str(output),
        "--num_shards", "2", "--blocklist", str(xm3600_dir / "images"),
        "--direct_num_workers", workers,
        "--direct_running_mode", "multi_processing"]) == 0
    outputs[workers] = _files(output)
    [written] = re.findall(r"wrote the block-list for the workers to (\S+)\n",
                           capsys.readouterr().err)
    assert written.startswith(f"{tmp_path / 'tmp'}/worker-files-")
  # Removed after the build.
  assert os.listdir(tmp_path / "tmp") == []
  # The same output whatever the number of workers.
  assert outputs["1"] == outputs["2"]
  manifest = json.loads((tmp_path / "out1" / shards.MANIFEST).read_text())
  counts = manifest["counts"]
  assert counts["read"] == 15
  assert counts["read"] == counts["kept"] + sum(counts["rejected"].values())
  assert counts["rejected"][Reason.NEAR_DUPLICATE_OF_EVAL] == 3
  rejected = {r.key: r for r in shards.read_rejected(
      str(tmp_path / "out1" / shards.REJECTED))}
  for key, eval_name in copies.items():
    assert rejected[key].reason == Reason.NEAR_DUPLICATE_OF_EVAL
    assert re.fullmatch(rf"near {re.escape(eval_name)} \(distance \d+ <= "
                        rf"radius 10\)", rejected[key].detail)
  near = manifest["options"]["blocklist"]["near_duplicates"]
  assert near == {"signature": "dct64-ycc6x6", "signature_version": 1,
                  "radius": 10, "max_colour_distance": 35,
                  "eval_images": XM3600_IMAGES, "signatures": 81 * XM3600_IMAGES}


def test_near_duplicate_flags_are_checked_and_can_turn_matching_off(
    tmp_path, xm3600_dir, capsys):
  corpus_dir, copies = _near_copies_corpus(tmp_path, xm3600_dir)
  argv = ["--input", f"{corpus_dir}/*.tar", "--num_shards", "1",
          "--blocklist", str(xm3600_dir / "images")]
  assert build_dataset.main(argv + ["--output", str(tmp_path / "x"),
                                    "--near_duplicate_radius", "32"]) == 1
  assert ("the near-duplicate radius must be in [0, 31] (or -1 for none), "
          "got 32") in capsys.readouterr().err
  assert build_dataset.main(argv + ["--output", str(tmp_path / "off"),
                                    "--near_duplicate_radius", "-1"]) == 0
  manifest = json.loads((tmp_path / "off" / shards.MANIFEST).read_text())
  assert manifest["counts"]["rejected"][Reason.NEAR_DUPLICATE_OF_EVAL] == 0
  assert manifest["options"]["blocklist"]["near_duplicates"] is None
  kept = {r.key for r in _records(tmp_path / "off")}
  assert set(copies) <= kept
