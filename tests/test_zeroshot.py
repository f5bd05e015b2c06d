"""Tests for eval/zeroshot.py: the command, its reports and the evaluator.

The model is test_xm3600's random tiny two-tower model saved as a training
run; the numbers are checked against `eval.zeroshot_metrics` applied to the
evaluator's own embeddings, and for being well-formed.
"""

import contextlib
import io
import json
import pathlib
import shutil

import ml_collections
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from dataformat import files
from eval import zeroshot
from eval import zeroshot_metrics
from tests import test_xm3600
from tests import test_zeroshot_data
from tests.fixtures import records as synthetic
from trainer import evaluators
from trainer import train

KEYS = test_zeroshot_data.KEYS


@pytest.fixture(scope="module")
def run(tmp_path_factory, multi_vocab_dir):
  """(workdir, config, params) of a random tiny model, as test_xm3600's."""
  root = tmp_path_factory.mktemp("zeroshot_run")
  card = json.loads((multi_vocab_dir / "vocab.json").read_text())
  test_xm3600.write_manifest(root / "dataset", card["sha256"])
  shutil.copytree(multi_vocab_dir, root / "vocabs" / test_xm3600.VOCAB_NAME)
  config = test_xm3600.tiny_config(root / "dataset")
  params = test_xm3600.init_params(config)
  return (test_xm3600.save_run(root / "workdir", config, params, 3), config,
          params)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> pathlib.Path:
  """Image folders and English and German class files (with synonyms)."""
  root = tmp_path_factory.mktemp("zeroshot_inputs")
  test_zeroshot_data.write_folders(root / "images")
  (root / "classes").mkdir()
  (root / "classes" / "en.txt").write_text(
      "circle | round shape\nsquare\nstar\n", encoding="utf-8")
  (root / "classes" / "de.txt").write_text(
      "circle\tKreis\nsquare\tQuadrat | Viereck\nstar\tStern\n",
      encoding="utf-8")
  (root / "templates").mkdir()
  (root / "templates" / "en.txt").write_text("a {}\n{}\n", encoding="utf-8")
  (root / "templates" / "de.txt").write_text("ein {}\n", encoding="utf-8")
  return root


def run_cli(args: list[str]) -> tuple[int, str, str]:
  stdout, stderr = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
    code = zeroshot.main(args)
  return code, stdout.getvalue(), stderr.getvalue()


def test_command_reports_every_language(run, inputs, tmp_path):
  workdir, config, params = run
  code, stdout, stderr = run_cli([
      "--data_dir", str(inputs / "images"),
      "--classes", str(inputs / "classes" / "{lang}.txt"),
      "--templates", str(inputs / "templates" / "{lang}.txt"),
      "--lang", "en,de", "--checkpoint", str(workdir),
      "--output", str(tmp_path)])
  assert code == 0, stderr
  results = json.loads((tmp_path / zeroshot.RESULTS_FILE).read_text())
  assert list(results["languages"]) == ["en", "de"]
  assert results["classes"] == list(KEYS)
  assert results["num_images"] == 9 and results["num_classes"] == 3
  assert results["chance"] == {"top1": pytest.approx(1 / 3), "top5": 1.0}
  assert results["options"]["layout"] == "folder"
  # Prompts: (2 + 1 + 1) names x 2 templates in English, 4 x 1 in German.
  assert [results["languages"][lang]["num_prompts"]
          for lang in ("en", "de")] == [8, 4]
  for row in results["languages"].values():
    assert 0 <= row["top1"] <= row["top5"] == 1.0
    assert sum(c["num_images"] for c in row["per_class"].values()) == 9
  assert results["mean"]["top1"] == pytest.approx(np.mean(
      [results["languages"][lang]["top1"] for lang in ("en", "de")]))
  table = (tmp_path / zeroshot.TABLE_FILE).read_text()
  assert table == stdout
  assert "| **mean (2)** |" in table and "| chance | 33.3 | 100.0 |" in table
  assert (tmp_path / zeroshot.CHART_FILE).read_bytes()[:8] == (
      b"\x89PNG\r\n\x1a\n")

  # The same numbers from the evaluator's own embeddings.
  images, classes, templates = zeroshot.load_inputs(
      str(inputs / "images"), str(inputs / "classes" / "{lang}.txt"),
      str(inputs / "templates" / "{lang}.txt"), ["en", "de"])
  evaluator = zeroshot.ZeroShotEvaluator(
      images, classes, templates, config,
      test_xm3600.vocabulary_lib.Vocabulary.load(
          workdir.parent / "vocabs" / test_xm3600.VOCAB_NAME))
  image_embeddings = evaluator.image_embeddings(params)
  for lang, embeddings in evaluator.class_embeddings(params).items():
    expected = zeroshot_metrics.classification_metrics(
        image_embeddings @ embeddings.T, np.asarray(images.labels), KEYS)
    assert results["languages"][lang]["top1"] == pytest.approx(
        expected["top1"])


def test_command_on_gcs_gives_the_local_numbers(gcs, run, inputs, tmp_path):
  workdir = run[0]
  remote = gcs.upload_dir(inputs, gcs.uri("zeroshot_inputs"))
  reports = {}
  for name, root, output in (("local", str(inputs), str(tmp_path)),
                             ("gcs", remote, gcs.uri("zeroshot_report"))):
    code, _, stderr = run_cli([
        "--data_dir", f"{root}/images",
        "--classes", f"{root}/classes/{{lang}}.txt",
        "--templates", f"{root}/templates/{{lang}}.txt",
        "--checkpoint", str(workdir), "--output", output])
    assert code == 0, stderr
    reports[name] = json.loads(
        files.read_text(files.join(output, zeroshot.RESULTS_FILE)))
  assert list(reports["gcs"]["languages"]) == ["de", "en"]
  # The same program on the same bytes: equal numbers.
  assert reports["gcs"]["languages"] == reports["local"]["languages"]
  assert reports["gcs"]["options"]["classes"]["de"] == (
      f"{remote}/classes/de.txt")
  assert gcs.read(gcs.uri("zeroshot_report", zeroshot.CHART_FILE))[:4] == (
      b"\x89PNG")


@pytest.mark.parametrize("change, message", [
    ({"--classes": "missing.txt"},
     "error: class-name file {root}/missing.txt does not exist"),
    ({"--templates": "fancy"}, "error: unknown template set 'fancy': expected "
     "one of clip, short, name or a template file"),
    ({"--classes": "four.txt"}, "error: class 'moon' has no images: no "
     ".jpg|.jpeg|.png|.webp file in {root}/images/moon"),
    ({"--classes": "two.txt"}, "error: folder 'star' under {root}/images is "
     "not a class of {root}/two.txt"),
    ({"--data_dir": "records"}, "error: label 7 of {root}/records/"
     "shapes-test.tfrecord-00001-of-00002:1 is outside the 3 classes of "
     "{root}/classes/en.txt (0..2)"),
])
def test_command_errors_are_one_line(inputs, change, message):
  root = inputs
  (root / "four.txt").write_text("circle\nsquare\nstar\nmoon\n")
  (root / "two.txt").write_text("circle\nsquare\n")
  if not (root / "records").exists():
    images = [(0, b"a"), (1, b"b"), (2, b"c")]
    test_zeroshot_data.write_tfrecords(root / "records", labels=[0, 2, 7],
                                       images=images)
  args = {"--data_dir": "images", "--classes": "classes/en.txt",
          "--checkpoint": "never_read", "--output": "out", **change}
  code, _, stderr = run_cli([part for flag, value in args.items()
                             for part in (flag, str(root / value)
                                          if flag != "--templates"
                                          else value)])
  assert code == 1
  assert stderr == message.format(root=root) + "\n"


def test_evaluator_from_config(run, inputs):
  workdir, config, params = run
  assert zeroshot.evaluator_from_config(config, workdir) is None
  config = ml_collections.ConfigDict(config.to_dict())
  config.evals.zeroshot.update(data_dir=str(inputs / "images"),
                               classes=str(inputs / "classes" / "{lang}.txt"),
                               templates="name", langs=("de",))
  with pytest.raises(ValueError, match="neither evals.zeroshot.every nor "
                     "eval_every"):
    zeroshot.evaluator_from_config(config, workdir)
  config.evals.zeroshot.every = 5
  evaluator = zeroshot.evaluator_from_config(config, workdir)
  assert (evaluator.name, evaluator.every) == ("zeroshot", 5)
  assert evaluator.templates == {"de": ("{}",)}
  metrics = evaluator.run(params)
  assert set(metrics) == {f"top{k}_{row}" for k in (1, 5)
                          for row in ("de", "mean")}


@pytest.mark.slow
def test_training_runs_the_evaluator_named_in_its_config(
    records_dataset, inputs, multi_vocab_dir, tmp_path):
  config = test_xm3600.tiny_config(records_dataset)
  config.data.vocab_name = synthetic.VOCAB_NAME
  config.update(batch_size=16, total_steps=4, log_every=2,
                checkpoint_every=4, eval_every=0)
  config.evals.zeroshot.update(
      data_dir=str(inputs / "images"),
      classes=str(inputs / "classes" / "en.txt"), templates="short", every=2,
      # The synthetic dataset's manifest has no sha256 to check against.
      vocab=str(multi_vocab_dir))
  found = evaluators.from_config(config, tmp_path)
  assert [e.name for e in found] == ["zeroshot"]
  with contextlib.redirect_stdout(io.StringIO()):
    train.train_and_evaluate(config, tmp_path, found)
  events = event_accumulator.EventAccumulator(str(tmp_path / train.TB_DIR))
  events.Reload()
  tags = {tag for tag in events.Tags()["scalars"]
          if tag.startswith("zeroshot/")}
  assert tags == {f"zeroshot/top{k}_{row}" for k in (1, 5)
                  for row in ("en", "mean")}
  assert [e.step for e in events.Scalars("zeroshot/top1_en")] == [2, 4]
