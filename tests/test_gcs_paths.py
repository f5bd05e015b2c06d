"""The commands on gs:// paths give what they give on local paths.

Inputs are the session's fixtures copied to a GCS emulator
(`tests/fixtures/gcs.py`); outputs go there too. Records store the path of
their input file (`source`), and the manifest the input and block-list
paths: those differ, and only those. The demo corpus command writes its
three sets to the bucket and to a local directory alike.
"""

import dataclasses
import json

import pytest

from dataformat import records
from dataformat import shards
from demo import corpus as demo_corpus_lib
from pipelines import build_dataset
from pipelines import inspect
from pipelines import verify
from tests.fixtures import dataset as dataset_fixture
from tests.fixtures import vocab as vocab_fixture
from vocabularies import train_vocab
from vocabularies import vocabulary

# Manifest entries that hold the paths the build was given, or depend on
# them (the stored `source` of each record changes the shards' checksums).
_PATH_DEPENDENT = ("shards", "rejected_file", "options", "input_files")


def _unsourced(data: bytes) -> records.Record:
  return dataclasses.replace(records.parse_record(data), source="")


def _shard_records(read, manifest: dict) -> list[list[records.Record]]:
  return [[_unsourced(data) for data in read(shard["file"])]
          for shard in manifest["shards"]]


def _without_paths(manifest: dict) -> dict:
  options = dict(manifest["options"])
  del options["inputs"]
  options["blocklist"] = {k: v for k, v in options["blocklist"].items()
                          if k != "sources"}
  return {**{k: v for k, v in manifest.items() if k not in _PATH_DEPENDENT},
          "options": options,
          "shards": [{"file": s["file"], "count": s["count"]}
                     for s in manifest["shards"]],
          "rejected_count": manifest["rejected_file"]["count"],
          "input_files": manifest["input_files"]["count"],
          "corrupt": [c["file"].rsplit("/", 1)[-1]
                      for c in manifest["input_files"]["corrupt"]]}


def _rejected_without_sources(lines: list[shards.RejectedExample]):
  return [dataclasses.replace(r, source=r.source.rsplit("/", 1)[-1])
          for r in lines]


@pytest.fixture(scope="module")
def gcs_inputs(gcs, demo_corpus, xm3600_dir, en_vocab_dir,
               multi_vocab_dir) -> dict[str, str]:
  """The corpus, vocabularies and block-list images, copied to the bucket."""
  return {
      "corpus": gcs.upload_dir(demo_corpus.output_dir, gcs.uri("in/corpus")),
      "en_vocab": gcs.upload_dir(en_vocab_dir, gcs.uri("in/en_vocab")),
      "multi_vocab": gcs.upload_dir(multi_vocab_dir,
                                    gcs.uri("in/multi_vocab")),
      "xm3600": gcs.upload_dir(xm3600_dir, gcs.uri("in/xm3600")),
  }


@pytest.fixture(scope="module")
def gcs_dataset(gcs, gcs_inputs) -> str:
  """`built_dataset`'s build, read from and written to the bucket."""
  output = gcs.uri("built_dataset")
  argv = dataset_fixture.build_dataset_argv(
      gcs_inputs["corpus"], output,
      [gcs_inputs["en_vocab"], gcs_inputs["multi_vocab"]],
      gcs_inputs["xm3600"])
  assert build_dataset.main(argv) == 0
  return output


def test_build_dataset_on_gcs_writes_the_local_records(gcs, gcs_dataset,
                                                       built_dataset):
  remote = gcs.read_dir(gcs_dataset)
  local = {p.name: p.read_bytes() for p in built_dataset.iterdir()}
  assert sorted(remote) == sorted(local)
  remote_manifest = json.loads(remote[shards.MANIFEST])
  local_manifest = json.loads(local[shards.MANIFEST])
  assert _without_paths(remote_manifest) == _without_paths(local_manifest)
  assert remote_manifest["options"]["inputs"] == [
      f"{gcs.uri('in/corpus')}/*.tar"]
  remote_records = _shard_records(
      lambda name: shards.read_array_record(f"{gcs_dataset}/{name}"),
      remote_manifest)
  assert remote_records == _shard_records(
      lambda name: shards.read_array_record(str(built_dataset / name)),
      local_manifest)
  first_shard = f"{gcs_dataset}/{remote_manifest['shards'][0]['file']}"
  assert all(records.parse_record(data).source.startswith(
      gcs.uri("in/corpus/")) for data in shards.read_array_record(first_shard))
  assert _rejected_without_sources(
      shards.read_rejected(f"{gcs_dataset}/{shards.REJECTED}")) == (
          _rejected_without_sources(
              shards.read_rejected(str(built_dataset / shards.REJECTED))))
  assert remote[shards.STATS_PLOT] == local[shards.STATS_PLOT]
  assert remote[shards.COMPLETED] == b""


def test_verify_on_gcs(gcs_dataset, built_dataset, capsys):
  assert verify.main([str(built_dataset)]) == 0
  local = capsys.readouterr().out
  assert verify.main([gcs_dataset]) == 0
  assert capsys.readouterr().out == local
  assert local.startswith("OK: ")


def test_verify_on_gcs_finds_a_damaged_shard(gcs, gcs_dataset, capsys):
  manifest = json.loads(gcs.read(f"{gcs_dataset}/{shards.MANIFEST}"))
  damaged = gcs.uri("damaged_dataset")
  for name, data in gcs.read_dir(gcs_dataset).items():
    if name == manifest["shards"][1]["file"]:
      data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
    gcs.write(f"{damaged}/{name}", data)
  assert verify.main([damaged]) == 1
  err = capsys.readouterr().err
  assert f"{manifest['shards'][1]['file']}: sha256 " in err
  assert verify.main([gcs.uri("no_such_dataset")]) == 1
  assert "COMPLETED marker missing" in capsys.readouterr().err


def test_inspect_on_gcs(gcs, gcs_inputs, gcs_dataset, built_dataset,
                        en_vocab_dir, demo_corpus, capsys):
  def shown(dataset, vocab, corpus):
    assert inspect.main([str(dataset), "--num_records", "3",
                         "--vocab", str(vocab)]) == 0
    return capsys.readouterr().out.replace(str(corpus), "CORPUS")

  local = shown(built_dataset, en_vocab_dir, demo_corpus.output_dir)
  assert shown(gcs_dataset, gcs_inputs["en_vocab"],
               gcs_inputs["corpus"]) == local
  assert local.count("source CORPUS/") == 3
  assert inspect.main([gcs.uri("no_such_dataset")]) == 1
  assert "holds no manifest.json" in capsys.readouterr().err


def test_train_vocab_on_gcs_trains_the_local_vocabulary(gcs, gcs_dir,
                                                        gcs_inputs,
                                                        en_vocab_dir):
  output, sample = f"{gcs_dir}/vocab", f"{gcs_dir}/sample"
  assert train_vocab.main([
      "--input", f"{gcs_inputs['corpus']}/*.tar", "--output", output,
      "--preset", "en32k", "--vocab_size", str(vocab_fixture.EN_VOCAB_SIZE),
      "--sample_dir", sample]) == 0
  local = json.loads((en_vocab_dir / vocabulary.VOCAB_JSON).read_text())
  remote = json.loads(gcs.read(f"{output}/{vocabulary.VOCAB_JSON}"))
  assert remote["input"] == [f"{gcs_inputs['corpus']}/*.tar"]
  assert {**remote, "input": None} == {**local, "input": None}
  model = gcs.read(f"{output}/{remote['model_file']}")
  assert model == (en_vocab_dir / remote["model_file"]).read_bytes()
  assert vocabulary.Vocabulary.load(output).sha256 == local["sha256"]
  assert any(name.startswith(train_vocab.SAMPLE_PREFIX)
             for name in gcs.list(sample))



def _demo_argv(root: str, *flags: str) -> list[str]:
  return ["--output", f"{root}/corpus", "--xm3600_dir", f"{root}/xm3600",
          "--zeroshot_dir", f"{root}/zeroshot", "--num_examples", "60",
          "--examples_per_shard", "25", "--bad_fraction", "0.3", "--seed",
          "3", "--xm3600_num_images", "4", "--zeroshot_images_per_class",
          "2", *flags]


def test_demo_corpus_on_gcs_writes_the_local_bytes(gcs, gcs_dir, tmp_path):
  assert demo_corpus_lib.main(_demo_argv(str(tmp_path))) == 0
  assert demo_corpus_lib.main(_demo_argv(gcs_dir)) == 0
  for name in ("corpus", "xm3600", "zeroshot"):
    local = {path.relative_to(tmp_path / name).as_posix(): path.read_bytes()
             for path in (tmp_path / name).rglob("*") if path.is_file()}
    remote = gcs.read_dir(f"{gcs_dir}/{name}")
    if name == "corpus":  # corpus.json records the block-list path given.
      remote[demo_corpus_lib.CORPUS_FILE] = remote[
          demo_corpus_lib.CORPUS_FILE].replace(gcs_dir.encode(),
                                               str(tmp_path).encode())
    assert remote == local, name
  truth = json.loads(
      (tmp_path / "corpus" / demo_corpus_lib.CORPUS_FILE).read_text())
  # Block-listed examples are byte copies of the XM3600 images: on gs://,
  # the corpus read them back from the bucket.
  assert truth["defect_counts"]["blocklisted_image"] >= 1


def test_demo_corpus_on_gcs_refuses_a_used_output_unless_overwrite(
    gcs, gcs_dir, capsys):
  output = f"{gcs_dir}/corpus"
  assert demo_corpus_lib.main(["--output", output, "--num_examples", "30",
                               "--examples_per_shard", "10"]) == 0
  gcs.write(f"{output}/notes.txt", b"mine")
  capsys.readouterr()
  assert demo_corpus_lib.main(["--output", output, "--num_examples",
                               "10"]) == 1
  assert capsys.readouterr().err == (
      f"error: --output {output} is not empty; pass --overwrite to replace "
      "what an earlier run wrote there\n")
  assert demo_corpus_lib.main(["--output", output, "--num_examples", "10",
                               "--overwrite"]) == 0
  # Stale shards of the earlier run are gone; objects it did not write stay.
  assert gcs.list(output) == ["00000.tar", "corpus.json", "notes.txt"]
  assert demo_corpus_lib.main(["--output", f"{output}/notes.txt",
                               "--num_examples", "10"]) == 1
  assert "exists and is not a directory" in capsys.readouterr().err
