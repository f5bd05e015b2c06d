"""Checkpoints of a training run: the train state and the input iterator.

A workdir holds `config.json` (the run's config) and `checkpoints/<step>/`,
each step with two items: "state" (the train state pytree, orbax standard
format) and "data_iter" (each process's Grain iterator state, JSON). Saving
both together makes a resumed run read the same batches as an uninterrupted
one.
"""

import json
import pathlib
from typing import Any

import grain
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from trainer import configs

CHECKPOINTS_DIR = "checkpoints"
CONFIG_FILE = "config.json"
STATE = "state"
DATA_ITER = "data_iter"
PARAMS = "params"


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
  `wait` blocks until the last save is on disk.
  """

  def __init__(self, workdir: str | pathlib.Path, max_to_keep: int):
    if max_to_keep < 1:
      raise ValueError(f"keep_checkpoints must be positive, got {max_to_keep}")
    self.directory = pathlib.Path(workdir).absolute() / CHECKPOINTS_DIR
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                             create=True),
        item_names=(STATE, DATA_ITER))

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
    self._manager.save(step, args=ocp.args.Composite(**{
        STATE: ocp.args.StandardSave(host_state),
        DATA_ITER: grain.checkpoint.CheckpointSave(data_iter),
    }), force=True)

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

  def wait(self) -> None:
    """Blocks until every started save is complete on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def find_checkpoint(
    path: str | pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
  """(workdir, step directory) of a workdir (newest step) or a step dir.

  Raises:
    ValueError: if `path` does not exist or holds no checkpoint.
  """
  path = pathlib.Path(path).absolute()
  if not path.is_dir():
    raise ValueError(f"checkpoint path {str(path)!r} does not exist")
  if (path / STATE).is_dir():
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
  params_metadata = handler.metadata(step_dir / STATE).tree[PARAMS]
  restored = handler.restore(
      step_dir / STATE,
      args=ocp.args.PyTreeRestore(
          item={PARAMS: params_metadata},
          restore_args={PARAMS: jax.tree.map(
              lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
              params_metadata)},
          partial_restore=True))
  handler.close()
  return config, restored[PARAMS]
