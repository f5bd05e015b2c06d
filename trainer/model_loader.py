"""Loading a model: its config, its parameters and where they came from.

Two kinds of checkpoint, local or `gs://`:

  ours        a `trainer.train` run: its workdir (the newest step) or a step
              directory `workdir/checkpoints/<step>`; the config is the
              run's `config.json`
  big_vision  an `.npz` in the released layout (`params/img/...`, see
              `trainer.models.load_big_vision`); the config comes from a
              training config file (`trainer/configs/*.py`, local) or a
              run's `config.json` (anywhere)

`load` gives (config, params, provenance) for evaluation and export;
`load_subtrees` fits parts of a checkpoint into a model's parameter tree
(the trainer's `--config.init.checkpoint`); `describe_tower` and
`load_tower_params` read only the image tower (`pipelines.embed`, SigLiT
evaluation). Every command gets the same errors from here.
"""

from collections.abc import Collection, Sequence
import dataclasses
import functools
import hashlib
import os
from typing import Any

from flax import traverse_util
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from dataformat import files
from dataformat import manifest as manifest_lib
from trainer import checkpoints
from trainer import configs
from trainer.models import load_big_vision
from trainer.models import two_towers
from trainer.models import vit

Params = Any
OURS = "ours"
BIG_VISION = "big_vision"
CONFIG_JSON_SUFFIX = ".json"
EMBEDDING_DTYPE = "float32"
IMAGE_SUBTREE = "img"
_IMAGE_HEAD_KERNEL = "img/head/kernel"


def checkpoint_kind(path: str | os.PathLike[str]) -> str:
  """BIG_VISION for an `.npz` file, else OURS."""
  is_npz = os.fspath(path).endswith(load_big_vision.NPZ_SUFFIX)
  return BIG_VISION if is_npz else OURS


@dataclasses.dataclass(frozen=True)
class Provenance:
  """Where loaded parameters come from.

  Attributes:
    kind: OURS or BIG_VISION.
    path: the checkpoint as given, resolved (absolute, or a URI).
    step: the training step of our checkpoints; None for `.npz` files.
    workdir: the training run of our checkpoints; None for `.npz` files.
  """

  kind: str
  path: str
  step: int | None
  workdir: str | None

  @functools.cached_property
  def sha256(self) -> str:
    """Of the `.npz` file; of the step read and config.json for ours.

    Computed when first asked for: it reads the whole checkpoint again.
    """
    if self.kind == BIG_VISION:
      return files.sha256(self.path)
    return _run_sha256(self.workdir, self.step)


def load_config_file(path: str) -> ml_collections.ConfigDict:
  """A training config: a config file's `get_config()`, or a run's JSON.

  `path` is a Python config file (`trainer/configs/*.py`, or `FILE.py:ARG`
  such as `trainer/configs/released.py:so400m14_384`; local), or the
  `config.json` a training run saved (local or `gs://`).

  Raises:
    ValueError: if the file is missing or does not give a config.
  """
  if path.endswith(CONFIG_JSON_SUFFIX):
    if not files.exists(path):
      raise ValueError(f"config file {path} does not exist")
    try:
      return configs.with_defaults(files.read_json(path))
    except (OSError, ValueError) as e:
      raise ValueError(f"cannot load config file {path}: {e}") from e
  if files.is_uri(path):
    raise ValueError(f"config file {path}: a Python config file must be "
                     "local; a run's config.json may be anywhere")
  return configs.load_python_config(path)


def find_step(path: str | os.PathLike[str]) -> tuple[str, str]:
  """(workdir, step directory) of a workdir (newest step) or a step dir.

  Raises:
    ValueError: if `path` does not exist or holds no checkpoint, or is a step
      directory whose save did not finish.
  """
  path = files.resolve(path).rstrip("/")
  if files.basename(files.dirname(path)) == checkpoints.CHECKPOINTS_DIR:
    if not files.exists(path):
      raise ValueError(f"checkpoint path {path} does not exist")
    if not checkpoints.is_complete(path):
      raise ValueError(
          f"checkpoint {path} is not a complete step: orbax writes a step "
          "under a temporary name (on gs://, without its commit marker) and "
          "completes it when the save is done (damaged steps are renamed "
          f"<step>{checkpoints.DAMAGED_SUFFIX})")
    return files.dirname(files.dirname(path)), path
  if not files.exists(path):
    raise ValueError(f"checkpoint path {path} does not exist")
  steps = checkpoints.complete_steps(files.join(path,
                                                checkpoints.CHECKPOINTS_DIR))
  if not steps:
    raise ValueError(f"no checkpoint in {path}")
  return path, checkpoints.step_dir(path, steps[-1])


def files_sha256(root: str, paths: Sequence[str]) -> str:
  """A hash over files: their paths relative to `root` and their contents.

  The files are taken in sorted order, so the hash depends only on the
  names and bytes, not on how they were listed.
  """
  prefix = root.rstrip("/") + "/"
  relative = sorted((path[len(prefix):].replace("\\", "/"), path)
                    for path in paths)
  digest = hashlib.sha256()
  for name, path in relative:
    digest.update(f"{name}\0{files.sha256(path)}\n".encode())
  return digest.hexdigest()


def _run_sha256(workdir: str, step: int) -> str:
  step_dir = checkpoints.step_dir(workdir, step)
  return files_sha256(workdir, files.find(step_dir) + [
      files.join(workdir, checkpoints.CONFIG_FILE)])


def checkpoint_sha256(path: str | os.PathLike[str]) -> str:
  """The SHA-256 of a checkpoint: an `.npz` file, or our step directory.

  For our checkpoints it covers the files of the step that is read and the
  run's config.json, not the workdir's other steps or logs.
  """
  path = files.resolve(path)
  if checkpoint_kind(path) == BIG_VISION:
    return files.sha256(path)
  workdir, step_dir = find_step(path)
  return _run_sha256(workdir, int(files.basename(step_dir)))


def restore_params(step_dir: str,
                   subtrees: Collection[str] | None = None) -> Params:
  """The parameters of a step directory as NumPy arrays (only `subtrees`).

  Raises:
    ValueError: if the step is damaged or incomplete, or lacks a subtree.
  """
  handler = ocp.PyTreeCheckpointHandler()
  state_dir = checkpoints.epath_of(files.join(step_dir, checkpoints.STATE))
  try:
    metadata = handler.metadata(state_dir).tree[checkpoints.PARAMS]
    if subtrees is not None:
      if missing := sorted(set(subtrees) - set(metadata)):
        raise ValueError(f"checkpoint {step_dir} has no parameters "
                         f"{', '.join(missing)}")
      metadata = {name: metadata[name] for name in subtrees}
    restored = handler.restore(
        state_dir,
        args=ocp.args.PyTreeRestore(
            item={checkpoints.PARAMS: metadata},
            restore_args={checkpoints.PARAMS: jax.tree.map(
                lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                metadata)},
            partial_restore=True))
  except checkpoints.CHECKPOINT_ERRORS as e:
    raise ValueError(f"checkpoint {step_dir} is damaged or incomplete: "
                     f"{checkpoints.reason(e)}") from None
  finally:
    handler.close()
  return restored[checkpoints.PARAMS]


def _locate(path: str | os.PathLike[str],
            config: ml_collections.ConfigDict | None = None,
            config_file: str | None = None
            ) -> tuple[ml_collections.ConfigDict, Provenance, str | None]:
  """(config, provenance, step directory or None) of a checkpoint.

  An `.npz` takes its config as `config` or from `config_file`.
  """
  path = files.resolve(path)
  given = config is not None or bool(config_file)
  if checkpoint_kind(path) == BIG_VISION:
    if not given:
      raise ValueError(f"{path} is a big_vision .npz checkpoint: its "
                       "architecture needs a config file (a training "
                       "config or a run's config.json)")
    if not files.isfile(path):
      raise ValueError(f"checkpoint {path} does not exist")
    if config is None:
      config = load_config_file(config_file)
    return config, Provenance(BIG_VISION, path, None, None), None
  if given:
    raise ValueError(f"checkpoint {path} is a run of our trainer, which "
                     "carries its config: a config file is only for .npz "
                     "checkpoints")
  workdir, step_dir = find_step(path)
  return (checkpoints.load_config(workdir),
          Provenance(OURS, path, int(files.basename(step_dir)), workdir),
          step_dir)


def describe(path: str | os.PathLike[str], config_file: str | None = None
             ) -> tuple[ml_collections.ConfigDict, Provenance]:
  """(config, provenance) of a checkpoint, without reading its parameters.

  Takes the arguments of `load`, and raises as it does for a missing
  checkpoint or config.
  """
  config, provenance, _ = _locate(path, config_file=config_file)
  return config, provenance


def abstract_params(config: ml_collections.ConfigDict,
                    embedding_dim: int) -> Params:
  """The shapes and dtypes of the parameters of `config.model`.

  `embedding_dim` is the size of the image embeddings a model without
  image tower takes.
  """
  model = two_towers.build_model(config.model)
  size, text_len = config.data.image_size, config.data.text_len
  images = jax.ShapeDtypeStruct(
      (1, size, size, 3) if config.model.image is not None
      else (1, embedding_dim), np.float32)
  texts = jax.ShapeDtypeStruct((1, text_len), np.int32)
  return jax.eval_shape(
      lambda x, y: model.init(jax.random.key(0), x, y), images, texts)[
          "params"]


def load(path: str | os.PathLike[str], config_file: str | None = None
         ) -> tuple[ml_collections.ConfigDict, Params, Provenance]:
  """(config, parameters, provenance) of our checkpoint or a big_vision `.npz`.

  Args:
    path: a training workdir (its newest step), one of its step directories
      `workdir/checkpoints/<step>`, or a big_vision `.npz` file.
    config_file: the architecture and preprocessing of a `.npz` (see
      `load_config_file`); refused for our checkpoints, which carry their
      config.

  Raises:
    ValueError: if the checkpoint or config is missing, the step incomplete,
      or the parameters do not fit the config (naming them).
  """
  config, provenance, step_dir = _locate(path, config_file=config_file)
  if step_dir is not None:
    return config, restore_params(step_dir), provenance
  flat = load_big_vision.load_npz(provenance.path)
  # Only the image head's kernel, if any, records the embedding size of a
  # SigLiT model; without a head any size fits its (absent) image params.
  kernel = next((value for key, value in flat.items()
                 if key.removeprefix(load_big_vision.PREFIX) ==
                 _IMAGE_HEAD_KERNEL), None)
  target = abstract_params(config, 1 if kernel is None else kernel.shape[0])
  try:
    params = load_big_vision.to_params(flat, target, tuple(target))
  except ValueError as e:
    raise ValueError(f"{provenance.path}: {e}") from e
  return config, params, provenance


def load_subtrees(path: str | os.PathLike[str], target: Params,
                  subtrees: Collection[str] | None = None) -> Params:
  """The top-level `subtrees` of a model's parameters from a checkpoint.

  `target` is the model's parameter tree (shapes and dtypes are used);
  `subtrees` defaults to all of a two-tower model's. The
  loaded subtrees must match it, except a ViT position embedding for another
  resolution, which is resampled (`load_big_vision.to_params`).

  Raises:
    ValueError: if the checkpoint is missing or incomplete, or a parameter
      is missing, unexpected or of another shape (each named).
  """
  path = files.resolve(path)
  subtrees = load_big_vision.SUBTREES if subtrees is None else subtrees
  if checkpoint_kind(path) == BIG_VISION:
    if not files.isfile(path):
      raise ValueError(f"checkpoint {path} does not exist")
    return load_big_vision.load_params(path, target, subtrees)
  _, step_dir = find_step(path)
  flat = traverse_util.flatten_dict(restore_params(step_dir, subtrees),
                                    sep="/")
  try:
    return load_big_vision.to_params(flat, target, subtrees)
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from e


# The image tower alone -----------------------------------------------------


def _tower_module(image_tower: dict[str, Any], head_dim: int | None
                  ) -> vit.Model:
  return vit.Model(**image_tower, num_classes=head_dim)


@dataclasses.dataclass(frozen=True)
class TowerSpec(manifest_lib.TowerDescription):
  """A frozen image tower's description, and the tower it describes.

  `kind` is OURS or BIG_VISION; `sha256` is `checkpoint_sha256`'s.
  """

  def module(self) -> vit.Model:
    """The tower as a Flax module."""
    return _tower_module(self.image_tower, self.head_dim)


def _image_head_dim(out_dim: Any) -> int | None:
  # `model.out_dim` is one size for both towers or an (image, text) pair.
  if isinstance(out_dim, (tuple, list)):
    return out_dim[0]
  return out_dim


def _abstract_tower(module: vit.Model, image_size: int):
  """(abstract params, abstract output) of the tower on one image."""
  images = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
  output, variables = jax.eval_shape(
      lambda x: module.init_with_output(jax.random.key(0), x), images)
  return variables["params"], output


def describe_tower(checkpoint: str,
                   model_config: ml_collections.ConfigDict | None = None,
                   image_size: int | None = None) -> TowerSpec:
  """The spec of the image tower in `checkpoint`.

  Args:
    checkpoint: our workdir or step directory, or a big_vision `.npz`.
    model_config: a training config (`model` and `data` keys) giving the
      architecture; required for `.npz` files, refused for ours (they carry
      their config).
    image_size: overrides the config's `data.image_size`; learned position
      embeddings are then resampled to the new patch grid.

  Raises:
    ValueError: if the checkpoint or config is missing, or the config has
      no image tower.
  """
  config, provenance, _ = _locate(checkpoint, model_config)
  if config.model.image is None:
    raise ValueError(f"the model of {checkpoint} has no image tower (its "
                     "images are precomputed embeddings)")
  image_tower = config.model.image.to_dict()
  head_dim = _image_head_dim(config.model.out_dim)
  size = image_size or config.data.image_size
  if size < 1:
    raise ValueError(f"--image_size must be positive, got {size}")
  _, output = _abstract_tower(_tower_module(image_tower, head_dim), size)
  return TowerSpec(
      kind=provenance.kind, checkpoint=checkpoint, sha256=provenance.sha256,
      step=provenance.step, image_tower=image_tower, head_dim=head_dim,
      image_size=size, embedding_dim=int(output.shape[-1]),
      dtype=EMBEDDING_DTYPE, normalized=False)


def load_tower_params(spec: TowerSpec) -> Params:
  """The image tower's parameters (NumPy), fitted to `spec.image_size`.

  Only the image subtree is read from the checkpoint.

  Raises:
    ValueError: if the checkpoint's parameters do not fit the tower.
  """
  abstract, _ = _abstract_tower(spec.module(), spec.image_size)
  return load_subtrees(spec.checkpoint, {IMAGE_SUBTREE: abstract},
                       (IMAGE_SUBTREE,))[IMAGE_SUBTREE]
