"""Tests for eval.xm3600 (and eval.report) on the mini XM3600 set.

A randomly initialised tiny two-tower model is saved as a real training
checkpoint; its training dataset is a directory holding only the manifest
that names the multilingual vocabulary fixture by sha256, and a copy of that
vocabulary sits beside it, where the search rule finds it.
"""

import contextlib
import io
import json
import os
import pathlib
import shutil

import grain
import jax
import ml_collections
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from dataformat import files
from dataformat import manifest as manifest_lib
from dataformat import records
from dataformat import shards
from eval import report
from eval import retrieval_metrics
from eval import vocabulary_choice
from eval import xm3600
from eval import xm3600_data
from pipelines import langid
from tests.fixtures import corpus
from tests.fixtures import faults
from tests.fixtures import records as synthetic
from vocabularies import vocabulary as vocabulary_lib
from trainer import checkpoints
from trainer import configs
from trainer import input_pipeline
from trainer import train
from trainer.models import load_big_vision
from trainer.models import two_towers

STEP = 3
VOCAB_NAME = "multi250k"
NUM_CAPTIONS = 2 * corpus.XM3600_NUM_IMAGES
WIDTH = 16


def tiny_config(train_dir: pathlib.Path | None = None
                ) -> ml_collections.ConfigDict:
  """A one-block model on 32 x 32 images and 16 tokens."""
  config = configs.base_config()
  config.data.train_dir = str(train_dir) if train_dir else None
  config.data.vocab_name = VOCAB_NAME
  config.data.image_size = 32
  config.data.text_len = 16
  config.model.image = configs.image_tower(
      patch_size=8, width=WIDTH, depth=1, mlp_dim=2 * WIDTH, num_heads=2,
      pool_type="gap", posemb="learn")
  config.model.text = configs.text_tower(
      width=WIDTH, depth=1, mlp_dim=2 * WIDTH, num_heads=2, vocab_size=1000)
  config.model.out_dim = (None, WIDTH)
  return config


def init_params(config: ml_collections.ConfigDict):
  model = two_towers.build_model(config.model)
  size = config.data.image_size
  return jax.jit(model.init)(
      jax.random.key(1), np.zeros((1, size, size, 3), np.float32),
      np.zeros((1, config.data.text_len), np.int32))["params"]


def write_manifest(dataset_dir: pathlib.Path, sha256: str) -> None:
  """An empty dataset's manifest naming vocabulary VOCAB_NAME."""
  manifest_lib.write(str(dataset_dir / shards.MANIFEST), manifest_lib.Manifest(
      schema_version=records.SCHEMA_VERSION, split="train",
      counts=manifest_lib.Counts(read=0, kept=0, rejected={}), shards=[],
      rejected_file=manifest_lib.RejectedFile(shards.REJECTED, 0, ""),
      stats_plot=shards.STATS_PLOT, languages={},
      vocabularies=[manifest_lib.VocabularyEntry(VOCAB_NAME, 1000, sha256)],
      options={}, input_files=manifest_lib.InputFiles(0, [])))


def save_run(workdir: pathlib.Path, config: ml_collections.ConfigDict,
             params, step: int) -> pathlib.Path:
  """Writes `params` as the training run `workdir` at `step`."""
  checkpoints.save_config(config, workdir)
  checkpointer = checkpoints.Checkpointer(workdir, max_to_keep=1)
  checkpointer.save(step, {"step": np.int32(step), "params": params,
                           "opt_state": {}},
                    iter(grain.MapDataset.range(2).to_iter_dataset()))
  checkpointer.wait()
  checkpointer.close()
  return workdir


@pytest.fixture(scope="module")
def run(tmp_path_factory, multi_vocab_dir):
  """(workdir, config, params): a step-3 checkpoint of a random model."""
  root = tmp_path_factory.mktemp("xm3600_run")
  card = json.loads((multi_vocab_dir / "vocab.json").read_text())
  write_manifest(root / "dataset", card["sha256"])
  shutil.copytree(multi_vocab_dir, root / "vocabs" / VOCAB_NAME)
  config = tiny_config(root / "dataset")
  params = init_params(config)
  return save_run(root / "workdir", config, params, STEP), config, params


@pytest.fixture(scope="module")
def cli_report(run, xm3600_dir, tmp_path_factory):
  """(output dir, stdout) of the command on all 36 languages."""
  workdir, _, _ = run
  output = tmp_path_factory.mktemp("xm3600_report")
  stdout, stderr = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
    code = xm3600.main(["--data_dir", str(xm3600_dir), "--checkpoint",
                        str(workdir), "--output", str(output)])
  assert code == 0, stderr.getvalue()
  return output, stdout.getvalue()


def test_report_covers_every_language(run, cli_report, multi_vocab_dir):
  output, _ = cli_report
  results = json.loads((output / xm3600.RESULTS_FILE).read_text())
  assert list(results["languages"]) == list(langid.XM3600_LANGUAGES)
  assert results["checkpoint"] == {"path": str(run[0]), "kind": "ours",
                                   "step": STEP}
  card = json.loads((multi_vocab_dir / "vocab.json").read_text())
  assert results["vocabulary"] | {"path": None} == {
      "name": VOCAB_NAME, "sha256": card["sha256"], "size": card["size"],
      "lowercase": card["lowercase"], "path": None,
      "source": "manifest search", "verified_against_manifest": True}
  assert results["options"]["image_size"] == 32
  assert results["options"]["image_mode"] == input_pipeline.RESIZE
  assert results["data"] == {
      "num_images": corpus.XM3600_NUM_IMAGES, "missing_images": [],
      "languages_without_captions": [], "other_languages": []}
  for lang, row in results["languages"].items():
    assert (row["num_images"], row["num_captions"]) == (
        corpus.XM3600_NUM_IMAGES, NUM_CAPTIONS), lang
    for direction in retrieval_metrics.DIRECTIONS:
      r1, r5, r10 = (row[direction][k] for k in ("r1", "r5", "r10"))
      assert 0 <= r1 <= r5 <= r10 <= 1
  mean = results["mean"]
  assert mean["num_languages"] == 36
  assert mean["i2t"]["r1"] == pytest.approx(np.mean(
      [row["i2t"]["r1"] for row in results["languages"].values()]))


def test_random_weights_score_near_chance(cli_report):
  output, _ = cli_report
  mean = json.loads((output / xm3600.RESULTS_FILE).read_text())["mean"]
  # Exact chance for 24 images with 2 of 48 captions each.
  assert mean["chance"]["t2i"] == pytest.approx(
      {"r1": 1 / 24, "r5": 5 / 24, "r10": 10 / 24})
  assert mean["chance"]["i2t"]["r1"] == pytest.approx(2 / 48)
  # Averaged over 36 languages, random embeddings stay within a few points
  # of chance; a model that had learnt anything (or a bookkeeping error
  # that matched captions to their own images) would be far above.
  for direction in retrieval_metrics.DIRECTIONS:
    for key, band in (("r1", 0.06), ("r10", 0.15)):
      assert abs(mean[direction][key] - mean["chance"][direction][key]) < (
          band), (direction, key)


def test_table_and_chart_show_every_language(cli_report):
  output, stdout = cli_report
  table = (output / xm3600.TABLE_FILE).read_text()
  assert stdout == table
  rows = table.splitlines()
  assert rows[0].startswith("| Language | I→T R@1 | I→T R@5 | I→T R@10 |")
  assert [row.split(" | ")[0][2:] for row in rows[2:38]] == list(
      langid.XM3600_LANGUAGES)
  assert rows[38].startswith("| **mean (36)** |")
  assert rows[39].startswith("| chance (mean) | 4.2 |")
  assert (output / xm3600.CHART_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  results = json.loads((output / xm3600.RESULTS_FILE).read_text())
  (ax,) = report.recall_figure(results).axes
  assert [t.get_text() for t in ax.get_xticklabels()] == list(
      langid.XM3600_LANGUAGES)
  assert len(ax.patches) == 2 * 36


def test_batched_encoding_matches_one_pass(run, xm3600_dir, multi_vocab_dir):
  _, config, params = run
  data = xm3600_data.load_xm3600(xm3600_dir, ["ja", "de"])
  vocab = vocabulary_lib.Vocabulary.load(multi_vocab_dir)
  evaluator = xm3600.Xm3600Evaluator(data, config, vocab, batch_size=5)
  assert evaluator.batch_size == jax.device_count()
  image_embeddings, text_embeddings = evaluator.embeddings(params)
  assert list(text_embeddings) == ["ja", "de"]

  # One pass over every image and caption, without the evaluator's code.
  # That is another XLA program (no batches, no padding, one device), so it
  # agrees to float precision, not bit for bit: near-tied similarities may
  # swap, and recalls from the two may differ.
  model = two_towers.build_model(config.model)
  images = np.stack([
      input_pipeline.decode_image(files.read_bytes(data.image_path(key)), 32)
      for key in data.image_keys])
  np.testing.assert_allclose(
      image_embeddings, two_towers.encode_images(model, params, images),
      rtol=0, atol=1e-5)
  for lang, captions in data.languages.items():
    tokens = np.asarray([
        vocabulary_lib.pad_or_truncate(ids, 16, vocab.eos_id, vocab.pad_id)
        for ids in vocab.encode_batch(captions.texts)])
    np.testing.assert_allclose(
        text_embeddings[lang], two_towers.encode_texts(model, params, tokens),
        rtol=0, atol=1e-5, err_msg=lang)

  # `evaluate` encodes again with the same compiled programs and inputs, so
  # it scores these very embeddings: its recalls are theirs, exactly.
  results = evaluator.evaluate(params)
  assert list(results["languages"]) == ["ja", "de"]
  for lang, captions in data.languages.items():
    expected = retrieval_metrics.retrieval_recalls(
        image_embeddings @ text_embeddings[lang].T, captions.caption_image)
    got = results["languages"][lang]
    assert {d: got[d] for d in retrieval_metrics.DIRECTIONS} == expected

  metrics = xm3600.flat_metrics(results)
  assert metrics["i2t_r1_ja"] == results["languages"]["ja"]["i2t"]["r1"]
  assert metrics["t2i_r10_mean"] == results["mean"]["t2i"]["r10"]
  assert len(metrics) == 3 * 2 * 3


def test_big_vision_npz_gives_the_same_numbers(run, xm3600_dir,
                                               multi_vocab_dir, tmp_path):
  workdir, config, params = run
  npz = tmp_path / "model.npz"
  load_big_vision.save_npz(params, str(npz))
  config_file = tmp_path / "tiny.py"
  config_file.write_text(
      "from tests import test_xm3600\n"
      "def get_config():\n"
      "  return test_xm3600.tiny_config()\n")
  langs = ["--lang", "de,fil", "--lang", "zh", "en"]
  output = tmp_path / "report"
  assert xm3600.main([
      "--data_dir", str(xm3600_dir), "--checkpoint", str(npz), "--config",
      str(config_file), "--vocab", str(multi_vocab_dir), "--output",
      str(output), *langs]) == 0
  results = json.loads((output / xm3600.RESULTS_FILE).read_text())
  assert results["checkpoint"] == {"path": str(npz), "kind": "big_vision",
                                   "step": None}
  assert results["vocabulary"]["source"] == "--vocab"
  assert results["vocabulary"]["verified_against_manifest"] is False
  assert list(results["languages"]) == ["de", "fil", "zh", "en"]
  # The same parameters, images and captions go through the same programs
  # in the same batches as from the training run, so every number is equal.
  # (Other languages would put the captions into other batches.)
  reference = tmp_path / "reference"
  assert xm3600.main(["--data_dir", str(xm3600_dir), "--checkpoint",
                      str(workdir), "--output", str(reference), *langs]) == 0
  reference = json.loads((reference / xm3600.RESULTS_FILE).read_text())
  assert results["languages"] == reference["languages"]
  assert results["mean"] == reference["mean"]


def test_missing_images_are_skipped_and_listed(run, xm3600_dir, tmp_path,
                                               capsys):
  workdir, _, _ = run
  data_dir = shutil.copytree(xm3600_dir, tmp_path / "xm3600")
  key = xm3600_data.load_xm3600(data_dir).image_keys[3]
  os.remove(xm3600_data.image_path(data_dir, key))
  argv = ["--data_dir", str(data_dir), "--checkpoint",
          str(workdir / "checkpoints" / str(STEP)), "--output",
          str(tmp_path / "out"), "--lang", "en"]
  assert xm3600.main(argv) == 1
  assert capsys.readouterr().err == (
      f"error: 1 of 24 images are missing from {data_dir / 'images'}: "
      f"{key}.jpg (skip them with --skip_missing_images)\n")
  assert xm3600.main(argv + ["--skip_missing_images"]) == 0
  assert f"warning: 1 missing images skipped: {key}" in capsys.readouterr().err
  results = json.loads((tmp_path / "out" / xm3600.RESULTS_FILE).read_text())
  assert results["data"]["missing_images"] == [key]
  assert results["languages"]["en"]["num_images"] == 23
  assert results["languages"]["en"]["num_captions"] == 46


def test_a_non_image_file_is_named_with_what_is_wrong(run, xm3600_dir,
                                                     tmp_path, capsys):
  workdir, _, _ = run
  data_dir = shutil.copytree(xm3600_dir, tmp_path / "xm3600")
  path = xm3600_data.image_path(
      data_dir, xm3600_data.load_xm3600(data_dir).image_keys[5])
  files.write_bytes(path, b"<html>404 Not Found</html>")
  assert xm3600.main(["--data_dir", str(data_dir), "--checkpoint",
                      str(workdir), "--output", str(tmp_path / "out"),
                      "--lang", "en"]) == 1
  errors = [line for line in capsys.readouterr().err.splitlines()
            if line.startswith("error: ")]
  assert errors == [
      f"error: cannot read image {path}: not a recognised image format"]


def test_a_run_saved_elsewhere_finds_its_dataset_and_vocabulary(
    run, xm3600_dir, tmp_path, monkeypatch, capsys):
  # Trained from the directory holding the dataset, with a relative path;
  # evaluated from another directory.
  workdir, _, params = run
  root = workdir.parent
  monkeypatch.chdir(root)
  relative_run = save_run(tmp_path / "run", tiny_config(pathlib.Path(
      "dataset")), params, STEP)
  saved = json.loads((relative_run / checkpoints.CONFIG_FILE).read_text())
  assert saved["data"]["train_dir"] == str(root / "dataset")
  monkeypatch.chdir(tmp_path)
  argv = ["--data_dir", str(xm3600_dir), "--checkpoint", "run",
          "--output", "out", "--lang", "en"]
  assert xm3600.main(argv) == 0
  capsys.readouterr()
  results = json.loads((tmp_path / "out" / xm3600.RESULTS_FILE).read_text())
  assert results["checkpoint"]["path"] == str(relative_run)
  assert results["options"]["data_dir"] == str(xm3600_dir)
  assert results["vocabulary"]["path"] == str(root / "vocabs" / VOCAB_NAME)
  assert results["vocabulary"]["verified_against_manifest"] is True

  # A run saved with the path as given (as runs were before) names the
  # manifest it cannot find and how it looked for it.
  saved["data"]["train_dir"] = "dataset"
  (relative_run / checkpoints.CONFIG_FILE).write_text(json.dumps(saved))
  assert xm3600.main(argv) == 1
  manifest = f"dataset/{shards.MANIFEST}"
  missing = (f"the training dataset manifest {manifest} (config.data."
             f"train_dir, a relative path looked up from {tmp_path}) does "
             "not exist")
  assert capsys.readouterr().err == (
      f"error: {missing}: it names the vocabulary; pass --vocab DIR\n")
  vocab = str(root / "vocabs" / VOCAB_NAME)
  assert xm3600.main(argv + ["--vocab", vocab]) == 0
  assert (f"warning: --vocab {vocab} is not checked against the training "
          f"vocabulary: {missing}") in capsys.readouterr().err.splitlines()
  results = json.loads((tmp_path / "out" / xm3600.RESULTS_FILE).read_text())
  assert results["vocabulary"]["verified_against_manifest"] is False


@pytest.mark.parametrize("argv, message", [
    ([], "error: the following arguments are required: --data_dir, "
         "--checkpoint, --output"),
    (["--batch_size", "x"], "error: argument --batch_size: must be a "
                            "positive integer, got 'x'"),
    (["--batch_size", "0"], "error: argument --batch_size: must be a "
                            "positive integer, got '0'"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    xm3600.main(argv)
  assert exit_info.value.code == 2
  assert capsys.readouterr().err == message + "\n"


def test_bad_inputs_exit_1_with_one_line(run, xm3600_dir, tmp_path, capsys):
  workdir, _, _ = run
  common = ["--output", str(tmp_path / "out")]
  cases = [
      (["--data_dir", str(tmp_path), "--checkpoint", str(workdir)],
       "is not an XM3600 directory"),
      (["--data_dir", str(xm3600_dir), "--checkpoint", str(workdir),
        "--lang", "de,xx"], "not XM3600 languages: ['xx']"),
      (["--data_dir", str(xm3600_dir), "--checkpoint", str(tmp_path / "no")],
       "does not exist"),
      (["--data_dir", str(xm3600_dir), "--checkpoint", str(tmp_path)],
       "no checkpoint in"),
      (["--data_dir", str(xm3600_dir), "--checkpoint", str(workdir),
        "--config", "x.py"], "a config file is only for .npz checkpoints"),
      (["--data_dir", str(xm3600_dir), "--checkpoint", "m.npz"],
       "m.npz is a big_vision .npz checkpoint: its architecture needs a "
       "config file"),
  ]
  for argv, message in cases:
    assert xm3600.main(argv + common) == 1, argv
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, (argv, err)
    assert err.count("\n") == 1, err


def test_unfinished_or_damaged_checkpoints_are_refused_naming_them(
    run, xm3600_dir, tmp_path, capsys):
  for checkpoint, message in faults.refused_checkpoints(
      run[0], tmp_path / "workdir", STEP, faults.truncate_state_data):
    assert xm3600.main(["--data_dir", str(xm3600_dir), "--checkpoint",
                        str(checkpoint), "--output",
                        str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err
  assert not (tmp_path / "out").exists()


def test_model_without_image_tower_is_refused(xm3600_dir, multi_vocab_dir):
  config = tiny_config()
  config.model.image = None
  with pytest.raises(ValueError, match="no image tower"):
    xm3600.Xm3600Evaluator(
        xm3600_data.load_xm3600(xm3600_dir, ["de"]), config,
        vocabulary_lib.Vocabulary.load(multi_vocab_dir))


def test_evaluator_from_config(run, xm3600_dir):
  workdir, config, params = run
  assert xm3600.evaluator_from_config(config, workdir) is None
  config = ml_collections.ConfigDict(config.to_dict())
  config.evals.xm3600.data_dir = str(xm3600_dir)
  config.evals.xm3600.langs = ("sw", "en")
  with pytest.raises(ValueError, match="neither evals.xm3600.every nor "
                     "eval_every"):
    xm3600.evaluator_from_config(config, workdir)
  config.evals.xm3600.every = 7
  evaluator = xm3600.evaluator_from_config(config, workdir)
  assert (evaluator.name, evaluator.every) == ("xm3600", 7)
  assert list(evaluator.data.languages) == ["sw", "en"]
  assert evaluator.vocabulary.name == VOCAB_NAME
  metrics = evaluator.run(params)
  assert set(metrics) == {f"{d}_r{k}_{row}" for d in ("i2t", "t2i")
                          for k in (1, 5, 10) for row in ("sw", "en", "mean")}
  assert all(0 <= value <= 1 for value in metrics.values())


@pytest.mark.slow
def test_training_logs_periodic_evaluation(records_dataset, xm3600_dir,
                                           multi_vocab_dir, tmp_path):
  config = tiny_config(records_dataset)
  config.data.vocab_name = synthetic.VOCAB_NAME
  config.update(batch_size=16, total_steps=4, log_every=2,
                checkpoint_every=4, eval_every=0)
  config.evals.xm3600.update(data_dir=str(xm3600_dir), langs=("de", "th"),
                             every=2)
  # The synthetic dataset's manifest has no sha256 to check against.
  config.evals.xm3600.vocab = str(multi_vocab_dir)
  evaluator = xm3600.evaluator_from_config(config, tmp_path)
  with contextlib.redirect_stdout(io.StringIO()):
    train.train_and_evaluate(config, tmp_path, [evaluator])
  events = event_accumulator.EventAccumulator(str(tmp_path / train.TB_DIR))
  events.Reload()
  tags = {tag for tag in events.Tags()["scalars"] if tag.startswith("xm3600/")}
  assert tags == {f"xm3600/{d}_r{k}_{row}" for d in ("i2t", "t2i")
                  for k in (1, 5, 10) for row in ("de", "th", "mean")}
  assert [e.step for e in events.Scalars("xm3600/i2t_r1_mean")] == [2, 4]
  for event in events.Scalars("xm3600/t2i_r10_mean"):
    assert 0 <= event.value <= 1


def test_gcs_data_vocabulary_search_and_report_match_local(
    gcs, gcs_dir, run, cli_report, xm3600_dir, capsys):
  workdir, _, params = run
  root = workdir.parent
  remote_xm3600 = gcs.upload_dir(xm3600_dir, f"{gcs_dir}/xm3600")
  local_data = xm3600_data.load_xm3600(xm3600_dir)
  remote_data = xm3600_data.load_xm3600(remote_xm3600)
  assert remote_data.image_path("k") == f"{remote_xm3600}/images/k.jpg"
  assert remote_data.image_keys == local_data.image_keys
  assert {lang: c.texts for lang, c in remote_data.languages.items()} == {
      lang: c.texts for lang, c in local_data.languages.items()}

  # The training manifest and the vocabulary it names, both in the bucket:
  # the search follows the manifest there.
  gcs.upload_dir(root / "dataset", f"{gcs_dir}/run/dataset")
  gcs.upload_dir(root / "vocabs", f"{gcs_dir}/run/vocabs")
  remote_run = save_run(root / "gcs_run",
                        tiny_config(f"{gcs_dir}/run/dataset"), params, STEP)
  found = vocabulary_choice.choose_vocabulary(
      tiny_config(f"{gcs_dir}/run/dataset"))
  assert found.path == f"{gcs_dir}/run/vocabs/{VOCAB_NAME}"
  assert found.source == "manifest search"
  assert found.vocabulary.sha256 == vocabulary_choice.choose_vocabulary(
      tiny_config(root / "dataset"), workdir=workdir).vocabulary.sha256

  output = f"{gcs_dir}/report"
  assert xm3600.main(["--data_dir", remote_xm3600, "--checkpoint",
                      str(remote_run), "--output", output]) == 0
  local_output, local_stdout = cli_report
  assert capsys.readouterr().out == local_stdout
  for name in (xm3600.TABLE_FILE, xm3600.CHART_FILE):
    assert gcs.read(f"{output}/{name}") == (local_output / name).read_bytes()
  remote = json.loads(gcs.read(f"{output}/{xm3600.RESULTS_FILE}"))
  local = json.loads((local_output / xm3600.RESULTS_FILE).read_text())
  assert remote["options"]["data_dir"] == remote_xm3600
  assert remote["vocabulary"]["path"] == found.path
  for report_json in (remote, local):
    del report_json["options"]["data_dir"], report_json["vocabulary"]["path"]
    del report_json["checkpoint"]["path"]
  assert remote == local
