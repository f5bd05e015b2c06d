"""Checkpoints of a training run: the train state and the input iterator.

A workdir holds `config.json` (the run's config) and `checkpoints/<step>/`,
each step with two items: "state" (the train state pytree, orbax standard
format) and "data_iter" (each process's Grain iterator state, JSON). Saving
both together makes a resumed run read the same batches as an uninterrupted
one.
"""

import json
import pathlib
from typing import Any, NamedTuple

import grain
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from trainer import configs

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
_CHECKPOINT_ERRORS = (OSError, ValueError)


def _reason(error: Exception) -> str:
  """An error's first line, without the spec tensorstore appends to it."""
  lines = str(error).strip().splitlines() or [type(error).__name__]
  return lines[0].split(" [tensorstore_spec=")[0]


class Restored(NamedTuple):
  """A restored step: its number, the state, and the steps set aside."""

  step: int
  state: Any
  damaged: list[str]


def save_config(config: ml_collections.ConfigDict,
                workdir: str | pathlib.Path) -> pathlib.Path:
  """Writes `config` as `workdir/config.json` and returns the path.

  Its paths are stored resolved (`configs.with_resolved_paths`), so that the
  run's dataset and vocabulary are found from any directory.
  """
  path = pathlib.Path(workdir) / CONFIG_FILE
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(configs.with_resolved_paths(config).to_json_best_effort(
      indent=2, sort_keys=True) + "\n")
  return path


def load_config(workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
  """The config saved by `save_config` in `workdir`, completed with defaults.

  Keys added to `configs.base_config` since the run was saved read as their
  defaults.
  """
  path = pathlib.Path(workdir) / CONFIG_FILE
  if not path.exists():
    raise ValueError(f"no {CONFIG_FILE} in {str(workdir)!r}")
  return configs.with_defaults(json.loads(path.read_text()))


class Checkpointer:
  """Saves and restores (train state, data iterator) under a workdir.

  Keeps the newest `max_to_keep` steps. Saving is asynchronous: the state is
  copied off the devices before `save` returns and written in the background;
  `wait` blocks until the last save is on disk. A save that fails (e.g. on a
  full disk) raises OSError from the next `save` or `wait`; orbax renames a
  step directory to its number only once it is complete, so the failed step
  never looks saved.
  """

  def __init__(self, workdir: str | pathlib.Path, max_to_keep: int):
    if max_to_keep < 1:
      raise ValueError(f"keep_checkpoints must be positive, got {max_to_keep}")
    self.directory = pathlib.Path(workdir).absolute() / CHECKPOINTS_DIR
    self._manager = ocp.CheckpointManager(
        self.directory,
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
    except _CHECKPOINT_ERRORS as e:
      raise self._write_error(step, e) from e
    self._saving = step

  def _write_error(self, step: int | None, error: Exception) -> OSError:
    return OSError(f"writing checkpoint step {step} in {self.directory} "
                   f"failed: {_reason(error)}")

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
      except _CHECKPOINT_ERRORS as e:
        failures.append((step, e))
        continue
      damaged = [self._set_aside(bad, error) for bad, error in failures]
      if damaged:
        if jax.process_count() > 1:  # The renames are done on every host.
          multihost_utils.sync_global_devices("checkpoints set aside")
        self._manager.reload()
      return Restored(step, state, damaged)
    if not failures:
      raise ValueError(f"no checkpoint in {self.directory}")
    step, error = failures[0]
    raise ValueError(f"cannot restore checkpoint {self.directory / str(step)}: "
                     f"{_reason(error)}")

  def _set_aside(self, step: int, error: Exception) -> str:
    """Renames damaged step `step`; returns the message saying so."""
    path = self.directory / str(step)
    target = path.with_name(f"{step}{DAMAGED_SUFFIX}")
    copies = 0
    while target.exists():
      copies += 1
      target = path.with_name(f"{step}{DAMAGED_SUFFIX}.{copies}")
    if jax.process_index() == 0:
      path.rename(target)
    return (f"checkpoint step {step} cannot be restored ({_reason(error)}); "
            f"moved it to {target}")

  def wait(self) -> None:
    """Blocks until every started save is complete on disk.

    Raises:
      OSError: if the last save failed; its step is not on disk.
    """
    try:
      self._manager.wait_until_finished()
    except _CHECKPOINT_ERRORS as e:
      raise self._write_error(self._saving, e) from e
    finally:
      self._saving = None

  def close(self) -> None:
    self._manager.close()


def find_checkpoint(
    path: str | pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
  """(workdir, step directory) of a workdir (newest step) or a step dir.

  Raises:
    ValueError: if `path` does not exist or holds no checkpoint, or is a step
      directory whose save did not finish.
  """
  path = pathlib.Path(path).absolute()
  if not path.is_dir():
    raise ValueError(f"checkpoint path {str(path)!r} does not exist")
  if (path / STATE).is_dir() or path.parent.name == CHECKPOINTS_DIR:
    if not path.name.isdigit():
      raise ValueError(
          f"checkpoint {str(path)!r} is not a complete step: orbax writes a "
          "step under a temporary name and renames it to the step number when "
          "the save is complete (damaged steps are renamed <step>"
          f"{DAMAGED_SUFFIX})")
    if not (path / STATE).is_dir():
      raise ValueError(f"checkpoint {str(path)!r} has no {STATE}/")
    return path.parent.parent, path
  # Finished saves are renamed to the bare step number; unfinished ones carry
  # a temporary suffix.
  steps = [int(p.name) for p in (path / CHECKPOINTS_DIR).glob("*")
           if p.name.isdigit() and (p / STATE).is_dir()]
  if not steps:
    raise ValueError(f"no checkpoint in {str(path)!r}")
  return path, path / CHECKPOINTS_DIR / str(max(steps))


def restore_for_inference(
    path: str | pathlib.Path) -> tuple[ml_collections.ConfigDict, Any]:
  """(config, params) of a training run, for evaluation or export.

  `path` is a workdir (its newest checkpoint is read) or one step directory
  `workdir/checkpoints/<step>`. The parameters come back as numpy arrays,
  whatever devices they were trained on.
  """
  workdir, step_dir = find_checkpoint(path)
  config = load_config(workdir)
  handler = ocp.PyTreeCheckpointHandler()
  try:
    params_metadata = handler.metadata(step_dir / STATE).tree[PARAMS]
    restored = handler.restore(
        step_dir / STATE,
        args=ocp.args.PyTreeRestore(
            item={PARAMS: params_metadata},
            restore_args={PARAMS: jax.tree.map(
                lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                params_metadata)},
            partial_restore=True))
  except _CHECKPOINT_ERRORS as e:
    raise ValueError(f"checkpoint {step_dir} is damaged or incomplete: "
                     f"{_reason(e)}") from None
  finally:
    handler.close()
  return config, restored[PARAMS]
