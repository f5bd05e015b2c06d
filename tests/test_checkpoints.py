"""Tests for trainer.checkpoints."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tests.fixtures import records as synthetic
from trainer import checkpoints
from trainer import configs
from trainer import input_pipeline
from trainer import mesh as mesh_lib


def data_iterator(train_dir):
  config = configs.base_config().data
  config.update(dict(train_dir=str(train_dir),
                     vocab_name=synthetic.VOCAB_NAME, text_len=6,
                     image_size=8))
  return input_pipeline.make_train_iterator(config, 4, seed=0)


def replicated_state(step: int):
  """A train-state-shaped pytree whose values depend on `step`."""
  sharding = mesh_lib.replicated(mesh_lib.make_mesh())
  state = {
      "step": jnp.asarray(step, jnp.int32),
      "params": {"img": {"kernel": jnp.full((3, 2), step, jnp.float32)},
                 "t": jnp.asarray([float(step)])},
      "opt_state": [jnp.arange(4.0) * step],
  }
  return jax.device_put(state, sharding)


def batch_keys(iterator, n):
  return [synthetic.index_of_tokens(t) for _ in range(n)
          for t in next(iterator)[input_pipeline.TEXT]]


def test_config_round_trips_through_the_workdir(tmp_path):
  config = ml_collections.ConfigDict(dict(
      seed=3, data=dict(train_dir="/x", lang_weights={"en": 0.5}),
      model=dict(out_dim=(None, 8))))
  path = checkpoints.save_config(config, tmp_path)
  assert path == tmp_path / checkpoints.CONFIG_FILE
  loaded = checkpoints.load_config(tmp_path)
  assert loaded.seed == 3
  assert loaded.data.lang_weights.to_dict() == {"en": 0.5}
  assert list(loaded.model.out_dim) == [None, 8]
  # Keys the saved config predates read as their defaults.
  assert loaded.data.image_mode == input_pipeline.RESIZE
  assert loaded.evals.xm3600.vocab is None


def test_saved_config_holds_resolved_paths(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  config = configs.base_config()
  config.data.train_dir = "demo_out/dataset"
  config.evals.xm3600.data_dir = "../xm3600/"
  config.evals.xm3600.vocab = "gs://bucket/vocab"
  config.init.checkpoint = str(tmp_path / "run")
  checkpoints.save_config(config, "workdir")
  saved = checkpoints.load_config(tmp_path / "workdir")
  assert saved.data.train_dir == str(tmp_path / "demo_out" / "dataset")
  assert saved.evals.xm3600.data_dir == str(tmp_path.parent / "xm3600")
  assert saved.evals.xm3600.vocab == "gs://bucket/vocab"
  assert saved.init.checkpoint == str(tmp_path / "run")
  assert saved.evals.xm3600.image_tower is None
  # The config itself is left as given.
  assert config.data.train_dir == "demo_out/dataset"


def test_restore_returns_the_state_and_the_data_position(tmp_path,
                                                         records_dataset):
  checkpointer = checkpoints.Checkpointer(tmp_path, max_to_keep=2)
  iterator = data_iterator(records_dataset)
  for step in range(1, 5):
    next(iterator)
    checkpointer.save(step, replicated_state(step), iterator)
  expected_keys = batch_keys(iterator, 3)
  checkpointer.wait()
  assert checkpointer.all_steps() == [3, 4]
  assert checkpointer.latest_step() == 4
  checkpointer.close()

  resumed = checkpoints.Checkpointer(tmp_path, max_to_keep=2)
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      replicated_state(0))
  fresh_iterator = data_iterator(records_dataset)
  state = resumed.restore(4, abstract, fresh_iterator)
  resumed.close()
  expected = replicated_state(4)
  for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(expected)):
    assert isinstance(got, jax.Array) and got.sharding == want.sharding
    np.testing.assert_array_equal(got, want)
  assert batch_keys(fresh_iterator, 3) == expected_keys


def test_restore_for_inference_reads_params_of_the_newest_or_given_step(
    tmp_path, records_dataset):
  config = ml_collections.ConfigDict(dict(total_steps=7))
  checkpoints.save_config(config, tmp_path)
  checkpointer = checkpoints.Checkpointer(tmp_path, max_to_keep=3)
  iterator = data_iterator(records_dataset)
  for step in (2, 5):
    checkpointer.save(step, replicated_state(step), iterator)
  checkpointer.wait()
  checkpointer.close()

  loaded_config, params = checkpoints.restore_for_inference(tmp_path)
  assert loaded_config.total_steps == 7
  assert set(params) == {"img", "t"}
  assert isinstance(params["t"], np.ndarray)
  np.testing.assert_array_equal(params["img"]["kernel"], np.full((3, 2), 5.0))
  _, params = checkpoints.restore_for_inference(
      tmp_path / checkpoints.CHECKPOINTS_DIR / "2")
  np.testing.assert_array_equal(params["t"], [2.0])


def test_restore_for_inference_refuses_paths_without_checkpoints(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    checkpoints.restore_for_inference(tmp_path / "missing")
  with pytest.raises(ValueError, match="no checkpoint"):
    checkpoints.restore_for_inference(tmp_path)


def test_keep_checkpoints_must_be_positive(tmp_path):
  with pytest.raises(ValueError, match="keep_checkpoints"):
    checkpoints.Checkpointer(tmp_path, max_to_keep=0)
