"""Tests for eval.xm3600 on SigLiT checkpoints (models without image tower)
and the image-tower rule of eval.model_choice.

The frozen tower and its LiT dataset are those of tests/test_embed.py: a tiny
SigLIP run, embedded by the real pipeline. A tiny SigLiT model (a text tower
and a linear image head on the tower's embeddings) is saved as a training run
on that dataset, with a copy of the multilingual vocabulary beside it.
"""

import contextlib
import io
import json
import pathlib
import shutil

import jax
import ml_collections
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from dataformat import files
from dataformat import records
from dataformat import shards
from eval import model_choice
from eval import xm3600
from eval import xm3600_data
from pipelines import embed
from tests import test_embed
from tests import test_xm3600
# Fixtures: the tower's config file and run, and the LiT dataset made with it.
from tests.test_embed import lit_dataset  # pylint: disable=unused-import
from tests.test_embed import tower_config_file  # pylint: disable=unused-import
from tests.test_embed import tower_workdir  # pylint: disable=unused-import
from vocabularies import vocabulary as vocabulary_lib
from trainer import checkpoints
from trainer import input_pipeline
from trainer import model_loader
from trainer import train
from trainer.models import load_big_vision
from trainer.models import two_towers

STEP = 2
EMBEDDING_DIM = test_embed.HEAD_DIM
LANGS = ("de", "en")


def siglit_config(train_dir: pathlib.Path | None, *,
                  head: bool = True) -> ml_collections.ConfigDict:
  """test_xm3600's tiny text tower on the tower's embeddings."""
  config = test_xm3600.tiny_config(train_dir)
  config.data.image_field = records.IMAGE_EMBEDDING
  config.model.image = None
  # Without an image head, the text embeddings take the tower's size.
  config.model.out_dim = ((test_xm3600.WIDTH, test_xm3600.WIDTH) if head
                          else (None, EMBEDDING_DIM))
  return config


def siglit_params(config: ml_collections.ConfigDict, seed: int = 4):
  """Random parameters, with a non-zero image head bias where there is one."""
  model = two_towers.build_model(config.model)
  abstract = jax.eval_shape(
      model.init, jax.random.key(0), np.zeros((1, EMBEDDING_DIM), np.float32),
      np.zeros((1, config.data.text_len), np.int32))["params"]
  params = test_embed.random_params(abstract, seed)
  if "img" in params:
    head = params["img"]["head"]
    head["bias"] = np.random.default_rng(seed).normal(
        size=head["bias"].shape).astype(np.float32)
  return params


def lit_manifest_copy(lit_dir: pathlib.Path, directory: pathlib.Path,
                      **tower_fields) -> pathlib.Path:
  """A dataset directory holding `lit_dir`'s manifest, its tower changed."""
  manifest = json.loads((lit_dir / shards.MANIFEST).read_text())
  manifest["tower"].update(tower_fields)
  directory.mkdir(parents=True)
  files.write_json(str(directory / shards.MANIFEST), manifest)
  return directory


def tower_manifest(lit_dir: pathlib.Path) -> dict:
  return json.loads((lit_dir / shards.MANIFEST).read_text())["tower"]


def run_cli(*argv) -> tuple[int, str]:
  """(exit status, stderr) of the command."""
  stderr = io.StringIO()
  with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(
      stderr):
    code = xm3600.main([str(a) for a in argv])
  return code, stderr.getvalue()


@pytest.fixture(scope="module")
def siglit_run(tmp_path_factory, lit_dataset, multi_vocab_dir):
  """(workdir, config, params): a SigLiT run on the LiT dataset."""
  root = tmp_path_factory.mktemp("siglit_run")
  shutil.copytree(multi_vocab_dir, root / "vocabs" / test_xm3600.VOCAB_NAME)
  config = siglit_config(lit_dataset)
  params = siglit_params(config)
  workdir = test_xm3600.save_run(root / "workdir", config, params, STEP)
  return workdir, config, params


@pytest.fixture(scope="module")
def cli_results(siglit_run, xm3600_dir, tmp_path_factory):
  """The report of the command on the SigLiT run, default tower."""
  workdir, _, _ = siglit_run
  output = tmp_path_factory.mktemp("siglit_report")
  code, stderr = run_cli("--data_dir", xm3600_dir, "--checkpoint", workdir,
                         "--output", output, "--lang", ",".join(LANGS))
  assert code == 0, stderr
  return json.loads((output / xm3600.RESULTS_FILE).read_text())


def expected_image_embeddings(tower_dir: pathlib.Path, data, params):
  """l2_normalize(head(tower(image))), without the evaluator's code."""
  tower_config, tower_params, _ = model_loader.load(tower_dir)
  images = np.stack([
      input_pipeline.decode_image(files.read_bytes(data.image_path(key)),
                                  test_embed.IMAGE_SIZE)
      for key in data.image_keys])
  _, _, extras = jax.jit(two_towers.build_model(tower_config.model).apply)(
      {"params": tower_params}, images, None)
  features = np.asarray(extras["img/features"])
  if "img" in params:
    head = params["img"]["head"]
    features = features @ head["kernel"] + head["bias"]
  return features / (np.linalg.norm(features, axis=-1, keepdims=True) + 1e-8)


@pytest.mark.parametrize("head", [True, False], ids=["head", "no_head"])
def test_image_embeddings_are_the_head_on_the_frozen_tower(
    head, lit_dataset, tower_workdir, xm3600_dir, multi_vocab_dir):
  config = siglit_config(lit_dataset, head=head)
  params = siglit_params(config)
  data = xm3600_data.load_xm3600(xm3600_dir, list(LANGS))
  evaluator = xm3600.Xm3600Evaluator(
      data, config, vocabulary_lib.Vocabulary.load(multi_vocab_dir),
      image_tower=model_choice.choose_image_tower(config), batch_size=16)
  got = evaluator.image_embeddings(params)
  assert got.shape == (len(data.image_keys),
                       test_xm3600.WIDTH if head else EMBEDDING_DIM)
  np.testing.assert_allclose(
      got, expected_image_embeddings(tower_workdir, data, params), atol=1e-5)
  results = evaluator.evaluate(params)
  assert list(results["languages"]) == list(LANGS)

  if head:
    wrong = dict(params, img={"head": {
        "kernel": np.zeros((7, test_xm3600.WIDTH), np.float32),
        "bias": np.zeros(test_xm3600.WIDTH, np.float32)}})
    with pytest.raises(ValueError, match="the model's image head takes 7-d "
                       "embeddings, but the image tower .* gives 24-d ones"):
      evaluator.image_embeddings(wrong)


def test_default_tower_is_the_one_the_manifest_names(
    lit_dataset, tower_workdir, tmp_path):
  config = siglit_config(lit_dataset)
  tower = model_choice.choose_image_tower(config)
  recorded = tower_manifest(lit_dataset)
  assert tower.source == model_choice.TOWER_FROM_MANIFEST
  assert tower.spec.checkpoint == recorded["checkpoint"] == str(tower_workdir)
  assert tower.spec.sha256 == recorded["sha256"] == (
      model_loader.checkpoint_sha256(str(tower_workdir)))
  assert (tower.spec.image_size, tower.image_mode) == (
      recorded["image_size"], recorded["image_mode"])
  assert tower.to_json()["verified_against_manifest"] is True
  _, restored, _ = model_loader.load(tower_workdir)
  jax.tree.map(np.testing.assert_array_equal, tower.params, restored["img"])

  # The tower's run went on training: the step the manifest records is read.
  moved_on = shutil.copytree(tower_workdir, tmp_path / "tower")
  (moved_on / checkpoints.CHECKPOINTS_DIR / "9" / checkpoints.STATE).mkdir(
      parents=True)
  config.data.train_dir = str(lit_manifest_copy(
      lit_dataset, tmp_path / "lit", checkpoint=str(moved_on)))
  tower = model_choice.choose_image_tower(config)
  assert tower.spec.checkpoint == str(
      moved_on / checkpoints.CHECKPOINTS_DIR / str(test_embed.STEP))


def test_tower_of_other_embeddings_is_refused(lit_dataset, tmp_path):
  config = siglit_config(lit_manifest_copy(lit_dataset, tmp_path / "other",
                                           sha256="0" * 64))
  with pytest.raises(ValueError, match=r"says the training embeddings were "
                     r"made by one of sha256 000000000000\.\.\.: another "
                     "tower; pass the one that made them with --image_tower"):
    model_choice.choose_image_tower(config)

  config.data.train_dir = str(lit_manifest_copy(
      lit_dataset, tmp_path / "gone", checkpoint=str(tmp_path / "no_run")))
  with pytest.raises(ValueError, match="names: checkpoint path .* does not "
                     "exist; pass --image_tower"):
    model_choice.choose_image_tower(config)
  with pytest.raises(ValueError, match="no LiT dataset manifest .* pass it "
                     "with --image_tower"):
    model_choice.choose_image_tower(siglit_config(None))


def test_a_missing_lit_manifest_is_named(tower_workdir, tmp_path):
  config = siglit_config(tmp_path / "moved")
  manifest = tmp_path / "moved" / shards.MANIFEST
  missing = (f"the training dataset manifest {manifest} "
             "(config.data.train_dir) does not exist")
  with pytest.raises(ValueError) as raised:
    model_choice.choose_image_tower(config)
  assert str(raised.value) == (f"{missing}: it names the model's frozen "
                               "image tower; pass --image_tower")
  warnings = []
  tower = model_choice.choose_image_tower(config, tower_path=tower_workdir,
                                          progress=warnings.append)
  assert warnings == [f"warning: --image_tower {tower_workdir} is not "
                      f"checked against the training embeddings: {missing}"]
  assert tower.to_json()["verified_against_manifest"] is False


def test_given_tower_without_manifest_uses_its_own_image_size_and_mode(
    tower_workdir, tmp_path):
  tower = model_choice.choose_image_tower(siglit_config(None),
                                          tower_path=tower_workdir)
  assert tower.source == model_choice.TOWER_FROM_FLAG
  assert (tower.spec.image_size, tower.image_mode) == (
      test_embed.IMAGE_SIZE, input_pipeline.RESIZE)
  assert tower.to_json()["verified_against_manifest"] is False
  # As pipelines.embed would have embedded with it: a tower trained on
  # random crops sees central ones.
  cropped = tmp_path / "cropped"
  shutil.copytree(tower_workdir, cropped)
  config = cropped / checkpoints.CONFIG_FILE
  config.write_text(config.read_text().replace(
      '"image_mode": "resize"', '"image_mode": "random_crop"'))
  tower = model_choice.choose_image_tower(siglit_config(None),
                                          tower_path=cropped)
  assert tower.image_mode == embed.tower_image_mode(str(cropped)) == (
      input_pipeline.CENTER_CROP)


def test_report_records_the_tower(cli_results, siglit_run, lit_dataset,
                                  tower_workdir):
  assert cli_results["image_tower"] == {
      "kind": model_loader.OURS, "checkpoint": str(tower_workdir),
      "sha256": tower_manifest(lit_dataset)["sha256"],
      "step": test_embed.STEP, "image_size": test_embed.IMAGE_SIZE,
      "image_mode": input_pipeline.RESIZE, "embedding_dim": EMBEDDING_DIM,
      "source": model_choice.TOWER_FROM_MANIFEST,
      "verified_against_manifest": True}
  assert cli_results["checkpoint"] == {
      "path": str(siglit_run[0]), "kind": model_loader.OURS, "step": STEP}
  assert cli_results["vocabulary"]["source"] == "manifest search"
  assert cli_results["options"]["image_size"] == test_embed.IMAGE_SIZE
  assert list(cli_results["languages"]) == list(LANGS)
  for row in cli_results["languages"].values():
    assert 0 <= row["i2t"]["r1"] <= row["i2t"]["r10"] <= 1


def test_npz_tower_and_npz_checkpoint_give_the_same_numbers(
    cli_results, siglit_run, tower_workdir, xm3600_dir, multi_vocab_dir,
    tmp_path):
  workdir, _, params = siglit_run
  tower_npz = tmp_path / "tower.npz"
  load_big_vision.save_npz(
      model_loader.load(tower_workdir)[1], str(tower_npz))
  siglit_npz = tmp_path / "siglit.npz"
  load_big_vision.save_npz(params, str(siglit_npz))
  output = tmp_path / "report"
  code, stderr = run_cli(
      "--data_dir", xm3600_dir, "--checkpoint", siglit_npz, "--config",
      workdir / checkpoints.CONFIG_FILE, "--image_tower", tower_npz,
      "--image_tower_config", tower_workdir / checkpoints.CONFIG_FILE,
      "--vocab", multi_vocab_dir, "--output", output, "--lang",
      ",".join(LANGS))
  assert code == 0, stderr
  assert f"warning: --image_tower {tower_npz} has sha256" in stderr
  results = json.loads((output / xm3600.RESULTS_FILE).read_text())
  tower = results["image_tower"]
  assert (tower["kind"], tower["checkpoint"], tower["step"]) == (
      model_loader.BIG_VISION, str(tower_npz), None)
  assert tower["sha256"] == files.sha256(str(tower_npz))
  assert (tower["source"], tower["verified_against_manifest"]) == (
      model_choice.TOWER_FROM_FLAG, False)
  assert results["checkpoint"]["kind"] == model_loader.BIG_VISION
  assert results["languages"] == cli_results["languages"]


def test_evaluator_from_config_finds_the_tower(siglit_run, xm3600_dir):
  workdir, config, params = siglit_run
  config = ml_collections.ConfigDict(config.to_dict())
  config.evals.xm3600.update(data_dir=str(xm3600_dir), langs=LANGS, every=3)
  evaluator = xm3600.evaluator_from_config(config, workdir)
  assert evaluator.image_tower.source == model_choice.TOWER_FROM_MANIFEST
  assert evaluator.image_size == test_embed.IMAGE_SIZE
  metrics = evaluator.run(params)
  assert set(metrics) == {f"{d}_r{k}_{row}" for d in ("i2t", "t2i")
                          for k in (1, 5, 10) for row in (*LANGS, "mean")}


@pytest.mark.slow
def test_siglit_training_logs_periodic_evaluation(siglit_run, xm3600_dir,
                                                  tmp_path):
  _, config, _ = siglit_run
  config = ml_collections.ConfigDict(config.to_dict())
  config.update(batch_size=16, total_steps=2, log_every=1,
                checkpoint_every=2, eval_every=2)
  config.evals.xm3600.update(data_dir=str(xm3600_dir), langs=("th",))
  evaluator = xm3600.evaluator_from_config(config, tmp_path)
  with contextlib.redirect_stdout(io.StringIO()):
    train.train_and_evaluate(config, tmp_path, [evaluator])
  events = event_accumulator.EventAccumulator(str(tmp_path / train.TB_DIR))
  events.Reload()
  assert [e.step for e in events.Scalars("xm3600/i2t_r1_th")] == [2]


def test_bad_tower_inputs_exit_1_with_one_line(
    siglit_run, lit_dataset, tower_workdir, xm3600_dir, multi_vocab_dir,
    tmp_path):
  workdir, config, params = siglit_run
  config = ml_collections.ConfigDict(config.to_dict())
  config.data.train_dir = str(lit_manifest_copy(
      lit_dataset, tmp_path / "other", sha256="f" * 64))
  other_run = test_xm3600.save_run(tmp_path / "other_run", config, params,
                                   STEP)
  cases = [
      ([other_run, "--vocab", multi_vocab_dir],
       "made by one of sha256 ffffffffffff...: another tower"),
      ([workdir, "--image_tower_config", "tower.py"],
       "--image_tower_config describes an .npz --image_tower; give both"),
      ([workdir, "--image_tower", tmp_path / "tower.npz"],
       "is a big_vision .npz: give its architecture with "
       "--image_tower_config"),
      ([workdir, "--image_tower", tower_workdir, "--image_tower_config",
        "tower.py"], "--image_tower_config is for .npz towers"),
      ([tower_workdir, "--vocab", multi_vocab_dir, "--image_tower",
        tower_workdir], "are for SigLiT checkpoints; "),
  ]
  for (checkpoint, *flags), message in cases:
    code, err = run_cli("--data_dir", xm3600_dir, "--checkpoint", checkpoint,
                        "--output", tmp_path / "out", *flags)
    assert code == 1, message
    assert err.startswith("error: ") and message in err, (message, err)
    assert err.count("\n") == 1, err


def test_evaluator_refuses_a_tower_for_a_model_with_one(
    lit_dataset, xm3600_dir, multi_vocab_dir):
  with pytest.raises(ValueError, match="has its own image tower"):
    xm3600.Xm3600Evaluator(
        xm3600_data.load_xm3600(xm3600_dir, ["de"]),
        test_xm3600.tiny_config(),
        vocabulary_lib.Vocabulary.load(multi_vocab_dir),
        image_tower=model_choice.choose_image_tower(
            siglit_config(lit_dataset)))


def test_help_explains_the_tower_flags(capsys):
  with pytest.raises(SystemExit):
    xm3600.main(["--help"])
  out = capsys.readouterr().out
  assert "--image_tower PATH" in out and "--image_tower_config FILE" in out
  assert "manifest.json" in out
