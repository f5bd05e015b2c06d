"""Checkpoints of a training run: the train state and the input iterator.

A workdir (local or gs://) holds `config.json` (the run's config) and
`checkpoints/<step>/`, each step with two items: "state" (the train state
pytree, orbax standard format) and "data_iter" (each process's Grain iterator
state, JSON). Saving both together makes a resumed run read the same batches
as an uninterrupted one.
"""

import os
from typing import Any, NamedTuple

from etils import epath
from etils.epath import backend as epath_backend
import grain
import jax
from jax.experimental import multihost_utils
import ml_collections
import orbax.checkpoint as ocp

from dataformat import files
from trainer import configs

# orbax reaches gs:// through etils.epath, which picks TensorFlow's gfile
# when TensorFlow is installed, once per process at its first path. gs://
# goes through gcsfs here as everywhere else (dataformat.files), and
# TensorFlow is no run-time dependency; EPATH_USE_TF=true still chooses it.
os.environ.setdefault("EPATH_USE_TF", "false")

CHECKPOINTS_DIR = "checkpoints"
CONFIG_FILE = "config.json"
STATE = "state"
DATA_ITER = "data_iter"
PARAMS = "params"
# A step that cannot be restored is renamed `<step>.damaged` when an older one
# can, so that training goes on from the older step and saves this one again.
DAMAGED_SUFFIX = ".damaged"
# What orbax (and tensorstore, and Grain's iterator handler) raise for a step
# whose files are missing, truncated or changed, or for a full disk.
CHECKPOINT_ERRORS = (OSError, ValueError)


def reason(error: Exception) -> str:
  """An error's first line, without the spec tensorstore appends to it."""
  lines = str(error).strip().splitlines() or [type(error).__name__]
  return lines[0].split(" [tensorstore_spec=")[0]


class Restored(NamedTuple):
  """A restored step: its number, the state, and the steps set aside."""

  step: int
  state: Any
  damaged: list[str]


def save_config(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Writes `config` as `workdir/config.json` and returns the path.

  Its paths are stored resolved (`configs.with_resolved_paths`), so that the
  run's dataset and vocabulary are found from any directory.
  """
  path = files.join(workdir, CONFIG_FILE)
  files.write_text(path, configs.with_resolved_paths(
      config).to_json_best_effort(indent=2, sort_keys=True) + "\n")
  return path


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config saved by `save_config` in `workdir`, completed with defaults.

  Keys added to `configs.base_config` since the run was saved read as their
  defaults.
  """
  path = files.join(workdir, CONFIG_FILE)
  if not files.exists(path):
    raise ValueError(f"no {CONFIG_FILE} in {str(workdir)!r}")
  return configs.with_defaults(files.read_json(path))


def epath_of(path: str) -> epath.Path:
  """`path` (local or gs://) as orbax takes it."""
  return epath.Path(path)


def step_dir(workdir: str, step: int) -> str:
  """The directory of checkpoint `step` of the run in `workdir`."""
  return files.join(workdir, CHECKPOINTS_DIR, str(step))


def is_complete(path: str) -> bool:
  """Whether the step directory `path` holds a finished save.

  orbax writes a local step under a temporary name and renames it to the
  step number when it is done; on gs:// it writes under the final name and
  adds a commit marker last. Damaged steps are renamed `<step>.damaged`.
  """
  return (files.basename(path).isdigit() and
          files.exists(files.join(path, STATE)) and
          ocp.step.is_checkpoint_finalized(epath_of(path)))


def complete_steps(directory: str) -> list[int]:
  """The sorted steps saved completely in a `checkpoints/` directory."""
  if not files.exists(directory):
    return []
  return sorted(int(name) for name in files.listdir(directory)
                if is_complete(files.join(directory, name)))


class Checkpointer:
  """Saves and restores (train state, data iterator) under a workdir.

  Keeps the newest `max_to_keep` steps. Saving is asynchronous: the state is
  copied off the devices before `save` returns and written in the background;
  `wait` blocks until the last save is on disk. A save that fails (e.g. on a
  full disk) raises OSError from the next `save` or `wait`; orbax renames a
  step directory to its number only once it is complete, so the failed step
  never looks saved.
  """

  def __init__(self, workdir: str, max_to_keep: int):
    if max_to_keep < 1:
      raise ValueError(f"keep_checkpoints must be positive, got {max_to_keep}")
    self.directory = files.join(files.resolve(workdir), CHECKPOINTS_DIR)
    self._manager = ocp.CheckpointManager(
        epath_of(self.directory),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True,
            # Unfinished saves of a killed run or a full disk.
            cleanup_tmp_directories=True),
        item_names=(STATE, DATA_ITER))
    self._saving = None  # The step being written in the background.

  def latest_step(self) -> int | None:
    """The newest complete step on disk, or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any,
           data_iter: grain.DatasetIterator) -> None:
    """Saves `state` and `data_iter`'s position as checkpoint `step`.

    The state must be replicated (data-parallel training): it is copied to
    host memory first, which also frees its device buffers for donation to
    the next step while the write goes on.
    """
    # Saving device arrays would make orbax slice every replicated array
    # across devices, compiling one slicing program per shape: seconds per
    # run on CPU. Host copies are written by the primary process only.
    host_state = jax.device_get(state)
    self.wait()
    try:
      self._manager.save(step, args=ocp.args.Composite(**{
          STATE: ocp.args.StandardSave(host_state),
          DATA_ITER: grain.checkpoint.CheckpointSave(data_iter),
      }), force=True)
    except CHECKPOINT_ERRORS as e:
      raise self._write_error(step, e) from e
    self._saving = step

  def _write_error(self, step: int | None, error: Exception) -> OSError:
    return OSError(f"writing checkpoint step {step} in {self.directory} "
                   f"failed: {reason(error)}")

  def restore(self, step: int, abstract_state: Any,
              data_iter: grain.DatasetIterator) -> Any:
    """Checkpoint `step`: returns its state and moves `data_iter` to it.

    `abstract_state` gives the structure, shapes, dtypes and shardings
    (`jax.ShapeDtypeStruct`s) the state is restored to.
    """
    restored = self._manager.restore(step, args=ocp.args.Composite(**{
        STATE: ocp.args.StandardRestore(abstract_state),
        DATA_ITER: grain.checkpoint.CheckpointRestore(data_iter),
    }))
    return restored[STATE]

  def restore_latest(self, abstract_state: Any,
                     data_iter: grain.DatasetIterator) -> Restored:
    """The newest step that restores; moves `data_iter` to it.

    Steps that fail to restore while an older one restores are damaged (a
    file lost, truncated or changed after the save): each is renamed to
    `<step>.damaged` and named in `Restored.damaged`. When no step restores
    (as with a config that does not fit the checkpoints) nothing is renamed.

    Raises:
      ValueError: if no step restores, naming the newest and its error.
    """
    failures = []
    for step in reversed(self.all_steps()):
      try:
        state = self.restore(step, abstract_state, data_iter)
      except CHECKPOINT_ERRORS as e:
        failures.append((step, e))
        continue
      damaged = [self._set_aside(bad, error) for bad, error in failures]
      if damaged:
        if jax.process_count() > 1:  # The renames are done on every host.
          multihost_utils.sync_global_devices("checkpoints set aside")
        if files.is_uri(self.directory):
          # orbax lists steps through etils.epath's own gcsfs instance, whose
          # listing cache has not seen the renames.
          epath_backend.fsspec_backend.fs(self.directory).invalidate_cache()
        self._manager.reload()
      return Restored(step, state, damaged)
    if not failures:
      raise ValueError(f"no checkpoint in {self.directory}")
    step, error = failures[0]
    raise ValueError(f"cannot restore checkpoint "
                     f"{files.join(self.directory, str(step))}: "
                     f"{reason(error)}")

  def _set_aside(self, step: int, error: Exception) -> str:
    """Renames damaged step `step`; returns the message saying so."""
    path = files.join(self.directory, str(step))
    target = f"{path}{DAMAGED_SUFFIX}"
    copies = 0
    while files.exists(target):
      copies += 1
      target = f"{path}{DAMAGED_SUFFIX}.{copies}"
    if jax.process_index() == 0:
      files.rename(path, target)
    return (f"checkpoint step {step} cannot be restored ({reason(error)}); "
            f"moved it to {target}")

  def wait(self) -> None:
    """Blocks until every started save is complete on disk.

    Raises:
      OSError: if the last save failed; its step is not on disk.
    """
    try:
      self._manager.wait_until_finished()
    except CHECKPOINT_ERRORS as e:
      raise self._write_error(self._saving, e) from e
    finally:
      self._saving = None

  def close(self) -> None:
    self._manager.close()
