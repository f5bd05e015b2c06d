"""Tests for trainer.checkpoints."""

import errno
import os
import re

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tests.fixtures import faults
from tests.fixtures import records as synthetic
from trainer import checkpoints
from trainer import configs
from trainer import input_pipeline
from trainer import mesh as mesh_lib
from trainer import model_loader


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
  assert path == str(tmp_path / checkpoints.CONFIG_FILE)
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


def test_load_reads_params_of_the_newest_or_given_step(
    tmp_path, records_dataset):
  config = ml_collections.ConfigDict(dict(total_steps=7))
  checkpoints.save_config(config, tmp_path)
  checkpointer = checkpoints.Checkpointer(tmp_path, max_to_keep=3)
  iterator = data_iterator(records_dataset)
  for step in (2, 5):
    checkpointer.save(step, replicated_state(step), iterator)
  checkpointer.wait()
  checkpointer.close()

  loaded_config, params, _ = model_loader.load(tmp_path)
  assert loaded_config.total_steps == 7
  assert set(params) == {"img", "t"}
  assert isinstance(params["t"], np.ndarray)
  np.testing.assert_array_equal(params["img"]["kernel"], np.full((3, 2), 5.0))
  _, params, _ = model_loader.load(
      tmp_path / checkpoints.CHECKPOINTS_DIR / "2")
  np.testing.assert_array_equal(params["t"], [2.0])


def test_load_refuses_paths_without_checkpoints(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    model_loader.load(tmp_path / "missing")
  with pytest.raises(ValueError, match="no checkpoint"):
    model_loader.load(tmp_path)


def test_keep_checkpoints_must_be_positive(tmp_path):
  with pytest.raises(ValueError, match="keep_checkpoints"):
    checkpoints.Checkpointer(tmp_path, max_to_keep=0)


def saved_steps(workdir, steps, records_dataset, max_to_keep=3):
  """Saves replicated_state(step) for each step; returns the iterator."""
  checkpoints.save_config(ml_collections.ConfigDict(dict(total_steps=9)),
                          workdir)
  checkpointer = checkpoints.Checkpointer(workdir, max_to_keep=max_to_keep)
  iterator = data_iterator(records_dataset)
  for step in steps:
    next(iterator)
    checkpointer.save(step, replicated_state(step), iterator)
  checkpointer.wait()
  checkpointer.close()
  return iterator


def abstract_state(state):
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      state)


@pytest.mark.parametrize("damage", [
    faults.truncate_state_data, faults.flip_state_data,
    faults.remove_iterator_state, faults.truncate_metadata])
def test_resume_sets_damaged_steps_aside_and_takes_the_newest_good_one(
    tmp_path, records_dataset, damage):
  saved_steps(tmp_path, (2, 4, 6), records_dataset)
  step_dirs = tmp_path / checkpoints.CHECKPOINTS_DIR
  damage(step_dirs / "6")
  expected_iterator = data_iterator(records_dataset)
  for _ in range(2):  # Step 4 was saved after the second batch.
    next(expected_iterator)
  checkpointer = checkpoints.Checkpointer(tmp_path, max_to_keep=3)
  iterator = data_iterator(records_dataset)
  restored = checkpointer.restore_latest(
      abstract_state(replicated_state(0)), iterator)
  assert restored.step == 4
  jax.tree.map(np.testing.assert_array_equal, restored.state,
               replicated_state(4))
  assert batch_keys(iterator, 3) == batch_keys(expected_iterator, 3)
  [message] = restored.damaged
  assert message.startswith("checkpoint step 6 cannot be restored (")
  assert message.endswith(f"); moved it to {step_dirs / '6.damaged'}")
  assert "\n" not in message
  assert sorted(p.name for p in step_dirs.iterdir()) == ["2", "4", "6.damaged"]
  assert checkpointer.all_steps() == [2, 4]
  # Training goes on and saves step 6 again.
  checkpointer.save(6, replicated_state(6), iterator)
  checkpointer.wait()
  assert checkpointer.latest_step() == 6
  checkpointer.close()


def test_resume_renames_nothing_when_no_step_restores(tmp_path,
                                                      records_dataset):
  saved_steps(tmp_path, (2, 4), records_dataset)
  checkpointer = checkpoints.Checkpointer(tmp_path, max_to_keep=3)
  other_model = abstract_state(
      {**replicated_state(0), "params": {"other": jnp.zeros((5,))}})
  with pytest.raises(ValueError) as raised:
    checkpointer.restore_latest(other_model, data_iterator(records_dataset))
  message = str(raised.value)
  assert message.startswith(
      f"cannot restore checkpoint {checkpointer.directory}/4: ")
  assert "\n" not in message
  assert checkpointer.all_steps() == [2, 4]
  checkpointer.close()


def test_inference_refuses_a_damaged_step_naming_it(tmp_path, records_dataset):
  saved_steps(tmp_path, (2, 4), records_dataset)
  step_dir = tmp_path / checkpoints.CHECKPOINTS_DIR / "4"
  faults.truncate_state_data(step_dir)
  for path in (tmp_path, step_dir):
    with pytest.raises(ValueError) as raised:
      model_loader.load(path)
    message = str(raised.value)
    assert message.startswith(
        f"checkpoint {step_dir} is damaged or incomplete: ")
    assert "\n" not in message and "tensorstore_spec" not in message
  (step_dir / checkpoints.STATE / "_METADATA").unlink()
  with pytest.raises(ValueError, match=f"^checkpoint {step_dir} is damaged "
                     "or incomplete: Metadata file"):
    model_loader.load(step_dir)
  # An older step is still there to read.
  _, params, _ = model_loader.load(step_dir.with_name("2"))
  np.testing.assert_array_equal(params["t"], [2.0])


def test_an_unfinished_save_is_never_read(tmp_path, records_dataset):
  saved_steps(tmp_path, (2, 4), records_dataset)
  step_dirs = tmp_path / checkpoints.CHECKPOINTS_DIR
  unfinished = faults.interrupt_save(step_dirs / "4")
  with pytest.raises(ValueError) as raised:
    model_loader.load(unfinished)
  assert str(raised.value).startswith(
      f"checkpoint {unfinished} is not a complete step: ")
  assert model_loader.find_step(tmp_path) == (str(tmp_path),
                                              str(step_dirs / "2"))
  checkpointer = checkpoints.Checkpointer(tmp_path, max_to_keep=3)
  iterator = data_iterator(records_dataset)
  restored = checkpointer.restore_latest(
      abstract_state(replicated_state(0)), iterator)
  assert (restored.step, restored.damaged) == (2, [])
  # The resumed run saves step 4 in its place.
  checkpointer.save(4, replicated_state(4), iterator)
  checkpointer.wait()
  checkpointer.close()
  assert sorted(p.name for p in step_dirs.iterdir()) == ["2", "4"]


def _full_disk_message(checkpointer, step):
  return (f"^writing checkpoint step {step} in "
          f"{re.escape(str(checkpointer.directory))} failed: .*"
          "No space left on device")


def test_a_save_on_a_full_disk_fails_and_leaves_no_step(tmp_path,
                                                        records_dataset,
                                                        monkeypatch):
  # Disk full when the data iterator's state is written.
  def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  monkeypatch.setattr(grain.checkpoint.CheckpointHandler, "save", full_disk)
  checkpointer = checkpoints.Checkpointer(tmp_path, max_to_keep=3)
  with pytest.raises(OSError, match=_full_disk_message(checkpointer, 1)):
    checkpointer.save(1, replicated_state(1), data_iterator(records_dataset))
    checkpointer.wait()
  assert checkpointer.all_steps() == []
  assert not os.path.exists(f"{checkpointer.directory}/1")
  checkpointer.close()


def test_a_save_on_a_full_tmpfs_fails_and_leaves_no_step(tmp_path,
                                                         records_dataset):
  # Random values do not compress: 1 MB of state on a 256 KiB disk.
  sharding = mesh_lib.replicated(mesh_lib.make_mesh())
  state = jax.device_put(
      {"step": jnp.asarray(1, jnp.int32),
       "params": {"w": jax.random.normal(jax.random.key(0), (256, 1024))}},
      sharding)
  with faults.small_tmpfs(tmp_path / checkpoints.CHECKPOINTS_DIR, 256 << 10):
    checkpointer = checkpoints.Checkpointer(tmp_path, max_to_keep=3)
    iterator = data_iterator(records_dataset)
    with pytest.raises(OSError, match=_full_disk_message(checkpointer, 1)):
      checkpointer.save(1, state, iterator)
      checkpointer.wait()
    assert checkpointer.all_steps() == []
    assert checkpointer.latest_step() is None
    assert not os.path.exists(f"{checkpointer.directory}/1")
    with pytest.raises(ValueError, match="no checkpoint in"):
      model_loader.find_step(tmp_path)
    checkpointer.close()
