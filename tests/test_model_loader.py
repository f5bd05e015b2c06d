"""Tests for trainer.model_loader: our runs and .npz files, local and gs://."""

import hashlib
import shutil

import jax
import numpy as np
import pytest

from tests import test_xm3600
from tests.fixtures import faults
from trainer import checkpoints
from trainer import model_loader
from trainer.models import load_big_vision

STEP = 3
IMAGE_SIZE = 16
CONFIG_FILE = '''
from trainer import configs


def get_config():
  config = configs.base_config()
  config.data.image_size = 16
  config.data.text_len = 8
  config.model.image = configs.image_tower(
      patch_size=8, width=16, depth=1, mlp_dim={mlp_dim}, num_heads=2,
      pool_type="gap", posemb="learn")
  config.model.text = configs.text_tower(
      width=16, depth=1, mlp_dim=32, num_heads=2, vocab_size=100)
  config.model.out_dim = (None, 16)
  return config
'''


def _write_config(directory, mlp_dim: int = 32) -> str:
  path = directory / f"tiny_{mlp_dim}.py"
  path.write_text(CONFIG_FILE.format(mlp_dim=mlp_dim))
  return str(path)


def _json(config) -> str:
  return config.to_json_best_effort(sort_keys=True)


def _assert_same(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
  """(config file, config, params): a tiny two-tower model, numbered leaves."""
  directory = tmp_path_factory.mktemp("loader_model")
  config_file = _write_config(directory)
  config = model_loader.load_config_file(config_file)
  abstract = model_loader.abstract_params(config, embedding_dim=1)
  leaves, tree = jax.tree.flatten(abstract)
  params = jax.tree.unflatten(tree, [
      np.arange(np.prod(leaf.shape), dtype=leaf.dtype).reshape(leaf.shape) + i
      for i, leaf in enumerate(leaves)])
  return config_file, config, params


def _save_run(workdir, config, params):
  """Saves `params` as step STEP of a training run in `workdir`."""
  return test_xm3600.save_run(workdir, config, params, STEP)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, model):
  """A training run of `model` with one complete step."""
  return _save_run(tmp_path_factory.mktemp("loader_run"), *model[1:])


@pytest.fixture(scope="module")
def remote_run(gcs, model):
  """The same run saved on gs://."""
  return _save_run(gcs.uri("loader_run"), *model[1:])


@pytest.fixture(scope="module")
def npz(tmp_path_factory, model):
  path = tmp_path_factory.mktemp("loader_npz") / "model.npz"
  load_big_vision.save_npz(model[2], str(path))
  return path


def test_load_our_run_from_its_workdir_or_step(model, workdir):
  _, config, params = model
  step_dir = workdir / checkpoints.CHECKPOINTS_DIR / str(STEP)
  for path in (workdir, step_dir):
    loaded_config, loaded, provenance = model_loader.load(path)
    assert _json(loaded_config) == _json(config)
    _assert_same(loaded, params)
    assert (provenance.kind, provenance.path, provenance.step,
            provenance.workdir) == (model_loader.OURS, str(path), STEP,
                                    str(workdir))
    assert provenance.sha256 == model_loader.checkpoint_sha256(str(workdir))


def test_load_a_big_vision_npz_with_its_config(model, npz):
  config_file, config, params = model
  loaded_config, loaded, provenance = model_loader.load(npz, config_file)
  assert _json(loaded_config) == _json(config)
  _assert_same(loaded, params)
  assert (provenance.kind, provenance.path, provenance.step,
          provenance.workdir) == (model_loader.BIG_VISION, str(npz), None,
                                  None)
  assert provenance.sha256 == hashlib.sha256(npz.read_bytes()).hexdigest()


def test_load_subtrees_fits_parts_of_either_kind(model, workdir, npz):
  _, _, params = model
  target = jax.tree.map(np.zeros_like, params)
  for path in (workdir, npz):
    loaded = model_loader.load_subtrees(path, target, ("txt", "t"))
    assert set(loaded) == {"txt", "t"}
    _assert_same(loaded["txt"], params["txt"])


def test_the_image_tower_alone(model, workdir, npz):
  config_file, config, params = model
  for path, tower_config in ((workdir, None), (npz, config)):
    spec = model_loader.describe_tower(str(path), tower_config)
    assert (spec.image_size, spec.embedding_dim, spec.head_dim) == (
        IMAGE_SIZE, 16, None)
    assert spec.sha256 == model_loader.checkpoint_sha256(str(path))
    _assert_same(model_loader.load_tower_params(spec), params["img"])
  del config_file


def _error(call, *args) -> str:
  with pytest.raises(ValueError) as raised:
    call(*args)
  message = str(raised.value)
  assert "\n" not in message
  return message


def test_errors_name_what_is_wrong(model, workdir, npz, tmp_path):
  config_file, config, _ = model
  missing = tmp_path / "missing"
  assert _error(model_loader.load, missing) == (
      f"checkpoint path {missing} does not exist")
  assert _error(model_loader.load, tmp_path / "m.npz", config_file) == (
      f"checkpoint {tmp_path / 'm.npz'} does not exist")
  (tmp_path / "empty").mkdir()
  assert _error(model_loader.load, tmp_path / "empty") == (
      f"no checkpoint in {tmp_path / 'empty'}")
  assert _error(model_loader.load, npz) == (
      f"{npz} is a big_vision .npz checkpoint: its architecture needs a "
      "config file (a training config or a run's config.json)")
  assert _error(model_loader.load, workdir, config_file) == (
      f"checkpoint {workdir} is a run of our trainer, which carries its "
      "config: a config file is only for .npz checkpoints")
  assert _error(model_loader.load, npz, str(tmp_path / "none.py")) == (
      f"config file {tmp_path / 'none.py'} does not exist")
  assert _error(model_loader.load_config_file, "gs://b/config.py") == (
      "config file gs://b/config.py: a Python config file must be local; a "
      "run's config.json may be anywhere")
  siglit = config.copy_and_resolve_references()
  siglit.model.image = None
  assert _error(model_loader.describe_tower, str(npz), siglit) == (
      f"the model of {npz} has no image tower (its images are precomputed "
      "embeddings)")
  wider = _write_config(tmp_path, mlp_dim=48)
  message = _error(model_loader.load, npz, wider)
  assert message.startswith(f"{npz}: checkpoint does not fit the model: "
                            "shapes differ: img/")
  assert ("MlpBlock_0/Dense_0/kernel (16, 32) in the checkpoint, (16, 48) "
          "in the model") in message


def test_unfinished_and_damaged_steps_are_refused(workdir, tmp_path):
  copy = shutil.copytree(workdir, tmp_path / "run")
  step_dir = copy / checkpoints.CHECKPOINTS_DIR / str(STEP)
  unfinished = faults.interrupt_save(
      shutil.copytree(step_dir, step_dir.with_name(str(STEP + 1))))
  assert _error(model_loader.load, unfinished).startswith(
      f"checkpoint {unfinished} is not a complete step: ")
  faults.truncate_state_data(step_dir)
  for path in (copy, step_dir):
    assert _error(model_loader.load, path).startswith(
        f"checkpoint {step_dir} is damaged or incomplete: ")


def test_gcs_checkpoints_load_as_local_ones(gcs, gcs_dir, model, workdir,
                                           remote_run, npz, tmp_path):
  config_file, _, params = model
  remote_npz = f"{gcs_dir}/model.npz"
  gcs.write(remote_npz, npz.read_bytes())
  config, loaded, provenance = model_loader.load(remote_run)
  _assert_same(loaded, params)
  assert _json(config) == _json(model_loader.load(workdir)[0])
  assert (provenance.path, provenance.step, provenance.workdir) == (
      remote_run, STEP, remote_run)
  # The hash covers the names relative to the run and the contents: a copy
  # of the run's files hashes the same.
  copy = tmp_path / "copy"
  for name, data in gcs.read_dir(remote_run).items():
    (copy / name).parent.mkdir(parents=True, exist_ok=True)
    (copy / name).write_bytes(data)
  assert provenance.sha256 == model_loader.checkpoint_sha256(copy)
  _, loaded, provenance = model_loader.load(remote_npz, config_file)
  _assert_same(loaded, params)
  assert provenance.sha256 == hashlib.sha256(npz.read_bytes()).hexdigest()
  spec = model_loader.describe_tower(remote_run)
  _assert_same(model_loader.load_tower_params(spec), params["img"])
  target = jax.tree.map(np.zeros_like, params)
  _assert_same(model_loader.load_subtrees(remote_run, target, ("txt",)),
               {"txt": params["txt"]})


def test_a_gcs_step_without_its_commit_marker_is_unfinished(gcs, gcs_dir,
                                                            remote_run):
  # On gs:// orbax writes a step under its final name and adds
  # commit_success.txt last: a run killed during the save leaves it out.
  run = f"{gcs_dir}/run"
  for name, data in gcs.read_dir(remote_run).items():
    gcs.write(f"{run}/{name}", data)
  step_dir = f"{run}/{checkpoints.CHECKPOINTS_DIR}/{STEP}"
  assert model_loader.find_step(run) == (run, step_dir)
  gcs.client.bucket(gcs.bucket).blob(
      f"{step_dir}/commit_success.txt".split("/", 3)[3]).delete()
  assert _error(model_loader.load, step_dir).startswith(
      f"checkpoint {step_dir} is not a complete step: ")
  assert _error(model_loader.load, run) == f"no checkpoint in {run}"
