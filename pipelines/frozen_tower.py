"""A frozen image tower: finding it in a checkpoint, running it, RunInference.

Two kinds of checkpoint hold an image tower:

  ours        a `trainer.train` run: its workdir (the newest step) or a step
              directory `workdir/checkpoints/<step>`; architecture and image
              size come from the run's `config.json`
  big_vision  an `.npz` in the released layout (`params/img/...`, see
              `trainer.models.load_big_vision`); architecture and image size
              come from a training config file (`config.model.image`,
              `config.model.out_dim`, `config.data.image_size`)

The tower's output is what the two-tower model L2-normalises
(`two_towers.Model.image_features`): the ViT's pooled features, through the
image head when `model.out_dim` gives one. Embeddings are kept before that
normalisation, so that SigLiT may put a trainable head on them
(`TowerSpec.normalized` says so in the manifest).

`TowerSpec` is what a launcher learns about a tower (small, picklable, and
written to the manifest); `Embedder` is the loaded tower, built once per
worker by `JaxImageTowerHandler.load_model`.
"""

from collections.abc import Mapping, Sequence
import dataclasses
import hashlib
import pathlib
from typing import Any

from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import ModelHandler
from apache_beam.ml.inference.base import PredictionResult
from flax import traverse_util
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from pipelines import sinks
from trainer import checkpoints
from trainer import configs
from trainer.models import load_big_vision
from trainer.models import vit

OURS = "ours"
BIG_VISION = "big_vision"
CONFIG_JSON_SUFFIX = ".json"
EMBEDDING_DTYPE = "float32"
METRICS_NAMESPACE = "frozen_tower"
_IMAGE_SUBTREE = "img"


@dataclasses.dataclass(frozen=True)
class TowerSpec:
  """A frozen image tower: where it is, what it is, what it outputs.

  Attributes:
    kind: OURS or BIG_VISION.
    checkpoint: the checkpoint path as given (a workdir, step directory or
      `.npz` file).
    sha256: of the `.npz` file; for our checkpoints, a hash over the files of
      the step directory read and the run's config.json
      (`checkpoint_sha256`).
    step: the training step of our checkpoints; None for `.npz` files.
    image_tower: `trainer.models.vit.Model` fields.
    head_dim: output size of the image head; None without one.
    image_size: the side of the square images the tower sees.
    embedding_dim: the size of its output.
    dtype: of the stored embeddings.
    normalized: whether the embeddings are L2-normalised (never: they are
      the tower's raw output).
  """

  kind: str
  checkpoint: str
  sha256: str
  step: int | None
  image_tower: dict[str, Any]
  head_dim: int | None
  image_size: int
  embedding_dim: int
  dtype: str = EMBEDDING_DTYPE
  normalized: bool = False

  def module(self) -> vit.Model:
    """The tower as a Flax module."""
    return _tower_module(self.image_tower, self.head_dim)

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> "TowerSpec":
    """The spec `to_json` gave; other keys (a manifest's) are ignored.

    Raises:
      ValueError: if a field is missing.
    """
    names = [field.name for field in dataclasses.fields(cls)]
    try:
      return cls(**{name: data[name] for name in names if name in data})
    except TypeError as e:
      raise ValueError(f"not a tower description: {e}") from e


def checkpoint_kind(path: str) -> str:
  """BIG_VISION for an `.npz` file, else OURS."""
  return BIG_VISION if path.endswith(load_big_vision.NPZ_SUFFIX) else OURS


def load_config_file(path: str) -> ml_collections.ConfigDict:
  """A training config: a config file's `get_config()`, or a run's JSON.

  `path` is a Python config file (`trainer/configs/*.py`, or `FILE.py:ARG`
  such as `trainer/configs/released.py:so400m14_384`), or the `config.json`
  a training run saved (local or any FileSystems path).

  Raises:
    ValueError: if the file is missing or does not give a config.
  """
  if path.endswith(CONFIG_JSON_SUFFIX):
    try:
      return configs.with_defaults(sinks.read_json(path))
    except (OSError, ValueError) as e:
      raise ValueError(f"cannot load config file {path}: {e}") from e
  if FileSystems.get_scheme(path) is not None:
    raise ValueError(f"config file {path}: a Python config file must be "
                     "local; a run's config.json may be anywhere")
  return configs.load_python_config(path)


def files_sha256(root: pathlib.Path, files: Sequence[pathlib.Path]) -> str:
  """A hash over files: their paths relative to `root` and their contents.

  The files are taken in sorted order, so the hash depends only on the
  names and bytes, not on how they were listed.
  """
  digest = hashlib.sha256()
  for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
    digest.update(f"{path.relative_to(root).as_posix()}\0"
                  f"{sinks.file_sha256(str(path))}\n".encode())
  return digest.hexdigest()


def checkpoint_sha256(path: str) -> str:
  """The SHA-256 of a checkpoint: an `.npz` file, or our step directory.

  For our checkpoints it covers the files of the step that is read and the
  run's config.json, not the workdir's other steps or logs.
  """
  if checkpoint_kind(path) == BIG_VISION:
    return sinks.file_sha256(path)
  workdir, step_dir = checkpoints.find_checkpoint(path)
  files = [p for p in step_dir.rglob("*") if p.is_file()]
  return files_sha256(workdir, files + [workdir / checkpoints.CONFIG_FILE])


def _tower_module(image_tower: dict[str, Any], head_dim: int | None
                  ) -> vit.Model:
  return vit.Model(**image_tower, num_classes=head_dim)


def _image_head_dim(out_dim: Any) -> int | None:
  # `model.out_dim` is one size for both towers or an (image, text) pair.
  if isinstance(out_dim, (tuple, list)):
    return out_dim[0]
  return out_dim


def _abstract_output(module: vit.Model, image_size: int):
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
  kind = checkpoint_kind(checkpoint)
  step = None
  if kind == BIG_VISION:
    if model_config is None:
      raise ValueError(f"{checkpoint} is a big_vision .npz checkpoint: give "
                       "its architecture with --model_config")
    if not FileSystems.exists(checkpoint):
      raise ValueError(f"checkpoint {checkpoint} does not exist")
    config = model_config
  else:
    if model_config is not None:
      raise ValueError("--model_config is for .npz checkpoints; checkpoints "
                       "of our trainer carry their config")
    workdir, step_dir = checkpoints.find_checkpoint(checkpoint)
    config = checkpoints.load_config(workdir)
    step = int(step_dir.name)
  if config.model.image is None:
    raise ValueError(f"the model of {checkpoint} has no image tower (its "
                     "images are precomputed embeddings)")
  image_tower = config.model.image.to_dict()
  head_dim = _image_head_dim(config.model.out_dim)
  size = image_size or config.data.image_size
  if size < 1:
    raise ValueError(f"--image_size must be positive, got {size}")
  _, output = _abstract_output(_tower_module(image_tower, head_dim), size)
  return TowerSpec(
      kind=kind, checkpoint=checkpoint, sha256=checkpoint_sha256(checkpoint),
      step=step, image_tower=image_tower, head_dim=head_dim, image_size=size,
      embedding_dim=int(output.shape[-1]))


def load_tower_params(spec: TowerSpec) -> Any:
  """The image tower's parameters (NumPy), fitted to `spec.image_size`.

  Raises:
    ValueError: if the checkpoint's parameters do not fit the tower.
  """
  abstract, _ = _abstract_output(spec.module(), spec.image_size)
  target = {_IMAGE_SUBTREE: abstract}
  if spec.kind == BIG_VISION:
    params = load_big_vision.load_params(spec.checkpoint, target,
                                         (_IMAGE_SUBTREE,))
  else:
    _, restored = checkpoints.restore_for_inference(spec.checkpoint)
    flat = traverse_util.flatten_dict(
        {_IMAGE_SUBTREE: restored[_IMAGE_SUBTREE]}, sep="/")
    try:
      params = load_big_vision.to_params(flat, target, (_IMAGE_SUBTREE,))
    except ValueError as e:
      raise ValueError(f"{spec.checkpoint}: {e}") from e
  return params[_IMAGE_SUBTREE]


class Embedder:
  """The loaded tower: images [n, S, S, 3] in [-1, 1] -> float32 [n, D].

  One jitted program of a fixed batch shape: inputs are cut into batches of
  `batch_size` and the last one is padded, so it compiles once.
  """

  def __init__(self, spec: TowerSpec, params: Any, batch_size: int):
    if batch_size < 1:
      raise ValueError(f"batch size must be positive, got {batch_size}")
    self.spec = spec
    self.batch_size = batch_size
    self.traces = 0  # How often the tower was traced (and compiled).
    module = spec.module()

    def apply(params, images):
      self.traces += 1
      return module.apply({"params": params}, images).astype(jnp.float32)

    self._params = jax.device_put(params)
    self._apply = jax.jit(apply)

  def __call__(self, images: np.ndarray) -> np.ndarray:
    n = len(images)
    shape = (self.spec.image_size, self.spec.image_size, 3)
    if tuple(images.shape[1:]) != shape:
      raise ValueError(f"images must be [n, {shape[0]}, {shape[1]}, 3], got "
                       f"{list(images.shape)}")
    if n == 0:
      return np.zeros((0, self.spec.embedding_dim), np.float32)
    padded = -(-n // self.batch_size) * self.batch_size
    batches = np.asarray(images, np.float32)
    if padded != n:
      batches = np.concatenate(
          [batches, np.zeros((padded - n, *shape), np.float32)])
    outputs = [
        self._apply(self._params, batches[start:start + self.batch_size])
        for start in range(0, padded, self.batch_size)]
    return np.concatenate(jax.device_get(outputs))[:n]


def load_embedder(spec: TowerSpec, batch_size: int) -> Embedder:
  """Loads the tower of `spec` onto this process's default device."""
  return Embedder(spec, load_tower_params(spec), batch_size)


class JaxImageTowerHandler(ModelHandler[np.ndarray, np.ndarray, Embedder]):
  """RunInference model handler for a frozen image tower.

  Examples are preprocessed images [S, S, 3]; predictions their float32
  embeddings [D]. RunInference batches exactly `batch_size` examples where
  the bundle has them; the model is loaded once per worker process.
  """

  def __init__(self, spec: TowerSpec, batch_size: int):
    if batch_size < 1:
      raise ValueError(f"--batch_size must be positive, got {batch_size}")
    super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)
    self._spec = spec
    self._batch_size = batch_size

  def load_model(self) -> Embedder:
    return load_embedder(self._spec, self._batch_size)

  def run_inference(
      self, batch: Sequence[np.ndarray], model: Embedder,
      inference_args: dict[str, Any] | None = None,
  ) -> list[PredictionResult]:
    del inference_args
    embeddings = model(np.stack(batch))
    return [PredictionResult(example, embedding)
            for example, embedding in zip(batch, embeddings)]

  def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
    # The default pickles the whole batch just to measure it.
    return sum(example.nbytes for example in batch)

  def get_metrics_namespace(self) -> str:
    return METRICS_NAMESPACE
