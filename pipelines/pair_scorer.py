"""A frozen two-tower model scoring image-text pairs, under RunInference.

The score of a pair is the cosine similarity of the model's L2-normalised
image and text embeddings, in [-1, 1] (DataComp's "CLIP score"; the sigmoid
loss's logit is t * score + b, a monotone map of it, so any cut-off on one is
a cut-off on the other). The model is one of the checkpoints
`trainer.model_loader` reads:

  ours        a `trainer.train` run: its workdir (the newest step) or a step
              directory; architecture, preprocessing and vocabulary name
              come from the run's `config.json`
  big_vision  an `.npz` in the released layout with a training config file
              or a run's config.json giving the architecture

Captions are tokenised with the model's vocabulary (config.data.vocab_name)
and padded or sticky-truncated to config.data.text_len as in training;
images are decoded from the record's stored JPEG by the trainer's own
`decode_image` at config.data.image_size, in its deterministic mode.

`ScorerSpec` is what the launcher learns (small, picklable, written to the
manifest without the config); `PairScorer` is the loaded model, built once
per worker by `PairScorerHandler.load_model`.
"""

from collections.abc import Sequence
import dataclasses
from typing import Any

from apache_beam.ml.inference.base import ModelHandler
from apache_beam.ml.inference.base import PredictionResult
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vocabularies import vocabulary as vocabulary_lib
from trainer import input_pipeline
from trainer import model_loader
from trainer.models import two_towers

METRICS_NAMESPACE = "pair_scorer"

Params = Any
# A preprocessed pair: image [S, S, 3] float32 in [-1, 1], token ids [L].
Pair = tuple[np.ndarray, np.ndarray]


@dataclasses.dataclass(frozen=True)
class ScorerSpec:
  """A frozen two-tower model: where it is, what it reads.

  Attributes:
    kind: model_loader.OURS or model_loader.BIG_VISION.
    checkpoint: the checkpoint path (resolved).
    sha256: as `model_loader.checkpoint_sha256` computes it.
    step: the training step of our checkpoints; None for `.npz` files.
    config: the training config (`model` and `data` sections).
    config_file: the config file of an `.npz`; None for ours.
    vocabulary: the captions' tokenizer.
    lowercase: how captions are lowercased first, in the stored form of
      `vocabulary.lowercase_setting` (config.data.lowercase if set, else the
      vocabulary's card).
  """

  kind: str
  checkpoint: str
  sha256: str
  step: int | None
  config: ml_collections.ConfigDict
  config_file: str | None
  vocabulary: vocabulary_lib.Vocabulary
  lowercase: vocabulary_lib.Lowercase

  @property
  def image_size(self) -> int:
    return int(self.config.data.image_size)

  @property
  def image_mode(self) -> str:
    return input_pipeline.deterministic_image_mode(self.config.data.image_mode)

  @property
  def text_len(self) -> int:
    return int(self.config.data.text_len)

  def to_json(self) -> dict[str, Any]:
    v = self.vocabulary
    return {"kind": self.kind, "checkpoint": self.checkpoint,
            "sha256": self.sha256, "step": self.step,
            "config_file": self.config_file, "image_size": self.image_size,
            "image_mode": self.image_mode, "text_len": self.text_len,
            "vocabulary": {"name": v.name, "sha256": v.sha256,
                           "lowercase": self.lowercase}}


def choose_vocabulary(config: ml_collections.ConfigDict,
                      candidates: Sequence[vocabulary_lib.Vocabulary],
                      vocab_path: str | None) -> vocabulary_lib.Vocabulary:
  """The model's vocabulary: `vocab_path`, else the candidate of its name.

  Raises:
    ValueError: if neither gives a vocabulary.
  """
  if vocab_path is not None:
    return vocabulary_lib.Vocabulary.load(vocab_path)
  name = config.data.vocab_name
  for candidate in candidates:
    if candidate.name == name:
      return candidate
  raise ValueError(
      f"the score model reads vocabulary {name!r} (config.data.vocab_name), "
      f"which no --vocab gives ({[c.name for c in candidates]}): pass it with "
      "--score_vocab")


def describe_scorer(checkpoint: str, config_file: str | None,
                    vocabularies: Sequence[vocabulary_lib.Vocabulary],
                    vocab_path: str | None = None) -> ScorerSpec:
  """The spec of the two-tower model in `checkpoint`.

  Args:
    checkpoint: our workdir or step directory, or a big_vision `.npz`.
    config_file: for an `.npz`, a training config file or a run's
      config.json; refused for ours (they carry their config).
    vocabularies: the build's vocabularies, one of which may be the model's.
    vocab_path: the model's vocabulary, when not one of `vocabularies`.

  Raises:
    ValueError: if the checkpoint, config or vocabulary is missing, or the
      model has no image tower.
  """
  config, provenance = model_loader.describe(checkpoint, config_file)
  if config.model.image is None:
    raise ValueError(f"the model of {checkpoint} has no image tower (it was "
                     "trained on precomputed embeddings): it cannot score "
                     "images")
  vocabulary = choose_vocabulary(config, vocabularies, vocab_path)
  return ScorerSpec(
      kind=provenance.kind, checkpoint=provenance.path,
      sha256=provenance.sha256, step=provenance.step,
      config=config, config_file=config_file, vocabulary=vocabulary,
      lowercase=_lowercase(config, vocabulary))


def _lowercase(config: ml_collections.ConfigDict,
               vocabulary: vocabulary_lib.Vocabulary
               ) -> vocabulary_lib.Lowercase:
  # As training and eval.vocabulary_choice: config.data.lowercase if set,
  # else the card's (runs saved before the modes existed hold False for the
  # card's).
  if config.data.get("lowercase"):
    return vocabulary_lib.lowercase_setting(config.data.lowercase)
  return vocabulary.lowercase


def load_params(spec: ScorerSpec) -> Params:
  """The model's parameters (NumPy), `img`, `txt`, `t` and `b`.

  Raises:
    ValueError: if the checkpoint does not fit the model.
  """
  _, params, _ = model_loader.load(spec.checkpoint, spec.config_file)
  return params


def preprocess(spec: ScorerSpec, image: bytes, text: str) -> Pair:
  """A stored pair as the model reads it.

  Raises:
    ValueError: if the image cannot be decoded.
  """
  try:
    pixels = input_pipeline.decode_image(image, spec.image_size,
                                         spec.image_mode)
  except OSError as e:
    raise ValueError(f"cannot decode the image: {e}") from None
  vocabulary = spec.vocabulary
  [ids] = vocabulary.encode_batch(
      [vocabulary_lib.prepare_text(text, spec.lowercase)])
  tokens = vocabulary_lib.pad_or_truncate(ids, spec.text_len,
                                          vocabulary.eos_id, vocabulary.pad_id)
  return pixels, np.asarray(tokens, np.int32)


def pair_scores(model: two_towers.Model, params: Params, images: jax.Array,
                texts: jax.Array) -> jax.Array:
  """Cosine similarity of each image with its own text, float32 [n]."""
  image_embeddings = two_towers.encode_images(model, params, images)
  text_embeddings = two_towers.encode_texts(model, params, texts)
  return jnp.sum(image_embeddings * text_embeddings, axis=-1)


class PairScorer:
  """The loaded model: pairs -> float32 scores [n].

  One jitted program of a fixed batch shape: inputs are cut into batches of
  `batch_size` and the last one is padded, so it compiles once, and a pair's
  score does not depend on the other pairs of its batch.
  """

  def __init__(self, spec: ScorerSpec, params: Params, batch_size: int):
    if batch_size < 1:
      raise ValueError(f"batch size must be positive, got {batch_size}")
    self.spec = spec
    self.batch_size = batch_size
    model = two_towers.build_model(spec.config.model)
    self._params = jax.device_put(params)
    self._apply = jax.jit(lambda p, x, y: pair_scores(model, p, x, y))

  def __call__(self, images: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    n = len(images)
    if n == 0:
      return np.zeros((0,), np.float32)
    padded = -(-n // self.batch_size) * self.batch_size
    images = np.asarray(images, np.float32)
    tokens = np.asarray(tokens, np.int32)
    if padded != n:
      images = np.concatenate(
          [images, np.zeros((padded - n, *images.shape[1:]), np.float32)])
      tokens = np.concatenate(
          [tokens, np.zeros((padded - n, *tokens.shape[1:]), np.int32)])
    outputs = [
        self._apply(self._params, images[start:start + self.batch_size],
                    tokens[start:start + self.batch_size])
        for start in range(0, padded, self.batch_size)]
    return np.concatenate(jax.device_get(outputs))[:n].astype(np.float32)


def load_scorer(spec: ScorerSpec, batch_size: int) -> PairScorer:
  """Loads the model of `spec` onto this process's default device."""
  return PairScorer(spec, load_params(spec), batch_size)


class PairScorerHandler(ModelHandler[Pair, float, PairScorer]):
  """RunInference model handler for a frozen two-tower model.

  Examples are preprocessed pairs (`preprocess`); predictions their scores.
  The model is loaded once per worker process.
  """

  def __init__(self, spec: ScorerSpec, batch_size: int):
    if batch_size < 1:
      raise ValueError(f"--score_batch_size must be positive, got "
                       f"{batch_size}")
    super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)
    self._spec = spec
    self._batch_size = batch_size

  def load_model(self) -> PairScorer:
    return load_scorer(self._spec, self._batch_size)

  def run_inference(
      self, batch: Sequence[Pair], model: PairScorer,
      inference_args: dict[str, Any] | None = None,
  ) -> list[PredictionResult]:
    del inference_args
    scores = model(np.stack([image for image, _ in batch]),
                   np.stack([tokens for _, tokens in batch]))
    return [PredictionResult(example, float(score))
            for example, score in zip(batch, scores)]

  def get_num_bytes(self, batch: Sequence[Pair]) -> int:
    # The default pickles the whole batch just to measure it.
    return sum(image.nbytes + tokens.nbytes for image, tokens in batch)

  def get_metrics_namespace(self) -> str:
    return METRICS_NAMESPACE
