"""Batched embeddings of evaluation images and texts for one model.

`Encoder` turns decoded images and token ids into the model's L2-normalised
embeddings: fixed-size batches (the last one padded, so each encoder is
compiled once), split over all devices, jit-compiled once per process for
equal models. A SigLiT model (no image tower) sees its images through the
frozen tower of its training embeddings, then its own image head.
"""

from collections.abc import Callable, Iterator, Sequence
import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vocabularies import vocabulary as vocabulary_lib
from trainer import mesh as mesh_lib
from trainer.models import two_towers
from trainer.models import vit

Params = Any
# Images or texts per encoding step of the evaluation commands and the
# periodic evaluators (config.evals.*.batch_size) unless they are told.
DEFAULT_BATCH_SIZE = 64
_TOWER_PARAMS = "tower"


def encode_tower_images(tower: vit.Model, model: two_towers.Model,
                        params: Params, images: jax.Array) -> jax.Array:
  """SigLiT image embeddings: the frozen tower, the model's head, L2 norm.

  `params` holds the tower's parameters under "tower" and the model's image
  head (if any) under "img".
  """
  # As stored by `pipelines.embed`: the tower's output in float32.
  embeddings = tower.apply({"params": params[_TOWER_PARAMS]},
                           images).astype(jnp.float32)
  return two_towers.encode_images(model, params, embeddings)


def batches(count: int, batch_size: int) -> Iterator[tuple[int, int]]:
  """(start, stop) of consecutive batches covering `count` items."""
  for start in range(0, count, batch_size):
    yield start, min(start + batch_size, count)


def _padded(rows: np.ndarray, batch_size: int) -> np.ndarray:
  """`rows` with zero rows appended up to `batch_size` (one compiled shape)."""
  pad = batch_size - len(rows)
  return np.pad(rows, [(0, pad)] + [(0, 0)] * (rows.ndim - 1))


@functools.cache
def _jitted(encode: Callable[..., jax.Array], modules: tuple[Any, ...],
            out_sharding: jax.sharding.Sharding
            ) -> Callable[[Params, jax.Array], jax.Array]:
  """`encode` for `modules`, compiled once per process for equal modules."""
  return jax.jit(functools.partial(encode, *modules),
                 out_shardings=out_sharding)


class Encoder:
  """Embeds images and token ids with the parameters of one architecture.

  Attributes:
    batch_size: inputs per encoding step, a multiple of the device count.
    text_len: token ids per text (padded or sticky-truncated to it).
  """

  def __init__(self, config: ml_collections.ConfigDict, *,
               tower: vit.Model | None = None,
               tower_params: Params | None = None,
               tower_embedding_dim: int = 0,
               tower_name: str = "",
               batch_size: int,
               progress: Callable[[str], None] | None = None):
    """Compiles the encoders.

    Args:
      config: the training config (`model` and `data.text_len`).
      tower: for a model without image tower (and only then): the frozen
        tower of its training embeddings, with `tower_params`, the size of
        its embeddings, `tower_embedding_dim`, and its path for messages,
        `tower_name`.
      batch_size: inputs per step, rounded up to a multiple of the device
        count.
      progress: called with a line of progress now and then.

    Raises:
      ValueError: for a model without image tower and no `tower` (or the
        reverse), or a bad batch size.
    """
    if config.model.image is None and tower is None:
      raise ValueError("the model has no image tower (it was trained on "
                       "precomputed image embeddings): give the frozen "
                       "tower that made them")
    if config.model.image is not None and tower is not None:
      raise ValueError("the model has its own image tower; a frozen image "
                       "tower is for models trained on its embeddings")
    if batch_size < 1:
      raise ValueError(f"batch_size must be positive, got {batch_size}")
    devices = jax.device_count()
    self.batch_size = -(-batch_size // devices) * devices
    self.text_len = int(config.data.text_len)
    self._progress = progress or (lambda line: None)
    self._tower_embedding_dim = tower_embedding_dim
    self._tower_name = tower_name

    mesh = mesh_lib.make_mesh()
    self._replicated = mesh_lib.replicated(mesh)
    self._batch_sharding = mesh_lib.batch_sharding(mesh)
    model = two_towers.build_model(config.model)
    self._has_tower = tower is not None
    if tower is None:
      self._encode_images = _jitted(two_towers.encode_images, (model,),
                                    self._replicated)
    else:
      self._encode_images = _jitted(encode_tower_images, (tower, model),
                                    self._replicated)
      self._tower_params = jax.device_put(tower_params, self._replicated)
    self._encode_texts = _jitted(two_towers.encode_texts, (model,),
                                 self._replicated)

  def tokenize(self, vocabulary: vocabulary_lib.Vocabulary,
               texts: Sequence[str]) -> np.ndarray:
    """[len(texts), text_len] int32 token ids, as in training."""
    return np.asarray(
        [vocabulary_lib.pad_or_truncate(ids, self.text_len,
                                        vocabulary.eos_id, vocabulary.pad_id)
         for ids in vocabulary.encode_batch(texts)],
        np.int32).reshape(len(texts), self.text_len)

  def _encode(self, encode: Callable[[Params, jax.Array], jax.Array],
              params: Params, count: int,
              rows: Callable[[int, int], np.ndarray], what: str) -> np.ndarray:
    """Embeddings of `count` inputs, `rows(start, stop)` giving a batch."""
    outputs = []
    began = time.perf_counter()
    num_batches = -(-count // self.batch_size)
    report_every = max(1, num_batches // 10)
    for index, (start, stop) in enumerate(batches(count, self.batch_size)):
      batch = _padded(rows(start, stop), self.batch_size)
      batch = jax.make_array_from_callback(
          batch.shape, self._batch_sharding, lambda i, b=batch: b[i])
      # Fetched before the next batch goes out: with many multi-device
      # programs queued at once, XLA's in-process CPU collectives (the
      # replicating all-gather) can stall until XLA aborts the process.
      # Replicated outputs: every process holds the whole batch locally.
      outputs.append(
          np.asarray(encode(params, batch).addressable_data(0))[:stop - start])
      if (index + 1) % report_every == 0 or stop == count:
        self._progress(f"{what}: {stop}/{count} "
                       f"({time.perf_counter() - began:.1f} s)")
    return np.concatenate(outputs)

  def image_embeddings(self, params: Params, count: int,
                       rows: Callable[[int, int], np.ndarray]) -> np.ndarray:
    """[count, dim] L2-normalised embeddings of preprocessed images.

    `rows(start, stop)` gives images start..stop-1 as float32 [n, size,
    size, 3] arrays in [-1, 1] (`trainer.input_pipeline.decode_image`).

    Raises:
      ValueError: if the model's image head does not fit the frozen tower.
    """
    if self._has_tower:
      head = params.get("img", {}).get("head")
      if (head is not None and
          head["kernel"].shape[0] != self._tower_embedding_dim):
        raise ValueError(
            f"the model's image head takes {head['kernel'].shape[0]}-d "
            f"embeddings, but the image tower {self._tower_name} gives "
            f"{self._tower_embedding_dim}-d ones")
      params = {_TOWER_PARAMS: self._tower_params,
                "img": params.get("img", {})}
    params = jax.device_put(params, self._replicated)
    return self._encode(self._encode_images, params, count, rows, "images")

  def text_embeddings(self, params: Params, tokens: np.ndarray,
                      what: str = "texts") -> np.ndarray:
    """[len(tokens), dim] L2-normalised embeddings of token id rows."""
    params = jax.device_put(params, self._replicated)
    return self._encode(self._encode_texts, params, len(tokens),
                        lambda start, stop: tokens[start:stop], what)
