"""A frozen image tower under Beam's RunInference.

Finding the tower in a checkpoint (ours or a big_vision `.npz`) and reading
its parameters is `trainer.model_loader` (`TowerSpec`, `describe_tower`,
`load_tower_params`). The tower's output is what the two-tower model
L2-normalises (`two_towers.Model.image_features`): the ViT's pooled
features, through the image head when `model.out_dim` gives one. Embeddings
are kept before that normalisation, so that SigLiT may put a trainable head
on them (`TowerSpec.normalized` says so in the manifest).

`Embedder` is the loaded tower, built once per worker by
`JaxImageTowerHandler.load_model`.
"""

from collections.abc import Sequence
from typing import Any

from apache_beam.ml.inference.base import ModelHandler
from apache_beam.ml.inference.base import PredictionResult
import jax
import jax.numpy as jnp
import numpy as np

from trainer import model_loader

METRICS_NAMESPACE = "frozen_tower"


class Embedder:
  """The loaded tower: images [n, S, S, 3] in [-1, 1] -> float32 [n, D].

  One jitted program of a fixed batch shape: inputs are cut into batches of
  `batch_size` and the last one is padded, so it compiles once.
  """

  def __init__(self, spec: model_loader.TowerSpec, params: Any,
               batch_size: int):
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


def load_embedder(spec: model_loader.TowerSpec, batch_size: int) -> Embedder:
  """Loads the tower of `spec` onto this process's default device."""
  return Embedder(spec, model_loader.load_tower_params(spec), batch_size)


class JaxImageTowerHandler(ModelHandler[np.ndarray, np.ndarray, Embedder]):
  """RunInference model handler for a frozen image tower.

  Examples are preprocessed images [S, S, 3]; predictions their float32
  embeddings [D]. RunInference batches exactly `batch_size` examples where
  the bundle has them; the model is loaded once per worker process.
  """

  def __init__(self, spec: model_loader.TowerSpec, batch_size: int):
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
