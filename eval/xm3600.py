r"""XM3600 image-text retrieval in 36 languages.

  python -m eval.xm3600 --data_dir xm3600/ --checkpoint workdir/ \
      --output reports/ [--lang de en ...] [--vocab DIR]
  python -m eval.xm3600 --data_dir xm3600/ --checkpoint siglit_workdir/ \
      --output reports/ [--image_tower PATH [--image_tower_config FILE]]

Encodes every image once and every caption of each language with the
model's own preprocessing and tokenizer, and reports image->text and
text->image recall@{1,5,10} per language and their plain mean over the
languages (the protocol and tie rule of `eval.retrieval_metrics`). Writes
`xm3600.json` (every number, the checkpoint, the vocabulary, the counts),
`xm3600.md` (a table, also printed) and `xm3600_r1.png` (R@1 per language,
both directions).

`Xm3600Evaluator` does the work; the trainer runs it periodically through
`evaluator_from_config` (config.evals.xm3600).

Checkpoints: a training workdir (its newest step) or one step directory
`workdir/checkpoints/<step>`, whose architecture and preprocessing come from
the run's `config.json`; or a big_vision `.npz` (`--config` then names a
training config file for them, and `--vocab` the vocabulary).

Vocabulary rule: `--vocab` (a vocabulary directory or a SentencePiece
`.model`) when given. Otherwise the training dataset's `manifest.json`
(config.data.train_dir) names the vocabulary (config.data.vocab_name) with
its sha256, and a vocabulary directory with that name and checksum is looked
for at `*/vocab.json` and `*/*/vocab.json` under the dataset's parent and the
workdir's parent directories. Whenever the manifest gives a checksum, the
vocabulary used must have it, so a checkpoint is never scored with tokens it
was not trained on. Captions are lowercased as `--lowercase MODE` says
("none", "ascii" or "unicode"; `--lowercase` alone: "unicode",
`--no-lowercase`: "none"), else as config.data.lowercase says when set
(the release presets say "ascii", as big_vision), else as the vocabulary's
card says (a bare `.model`: "unicode").

Images are preprocessed by `trainer.input_pipeline.decode_image` at
config.data.image_size in the training image mode ("resize" or
"center_crop"; "random_crop" training evaluates with "center_crop"). Token
ids are padded or sticky-truncated to config.data.text_len as in training.

SigLiT checkpoints (`config.model.image is None`) were trained on image
embeddings that `pipelines.embed` precomputed with a frozen tower. Their
images are encoded as in training: preprocessed as `pipelines.embed` did
(`trainer.input_pipeline.decode_image` at the image size and mode of those
embeddings), through that tower, then the model's own image head (if any)
and L2 normalisation. The tower is `--image_tower` (our workdir or step
directory, or a big_vision `.npz` with `--image_tower_config`), by default
the one the LiT dataset's manifest (config.data.train_dir) names: the step
it records, which must still have the recorded sha256. The image size and
mode come from that manifest whenever it names a tower (otherwise the
tower's config.data.image_size, "resize"). The report records the tower.
"""

import argparse
from collections.abc import Callable, Iterator, Mapping, Sequence
import concurrent.futures
import dataclasses
import functools
import json
import os
import pathlib
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dataformat import files
from eval import report
from eval import retrieval_metrics
from eval import xm3600_data
from pipelines import embed
from pipelines import frozen_tower
from pipelines import sinks
from tokenizers import vocabulary as vocabulary_lib
from trainer import checkpoints
from trainer import input_pipeline
from trainer import mesh as mesh_lib
from trainer.models import load_big_vision
from trainer.models import two_towers
from trainer.models import vit

Params = Any
NAME = "xm3600"
RESULTS_FILE = "xm3600.json"
TABLE_FILE = "xm3600.md"
CHART_FILE = "xm3600_r1.png"
DEFAULT_BATCH_SIZE = 64
MEAN = "mean"
CHANCE_FORMULA = {
    retrieval_metrics.T2I: "min(k, N) / N for N images",
    retrieval_metrics.I2T: ("mean over images of 1 - C(M - m, k) / C(M, k) "
                            "for an image with m of the M captions "
                            "(about k * m / M)"),
}
TOWER_FROM_MANIFEST = "manifest"
TOWER_FROM_FLAG = "--image_tower"
_IMAGE_HEAD_KERNEL = "img/head/kernel"
_TOWER_PARAMS = "tower"
# Vocabulary cards looked at when the vocabulary is found by its checksum.
_VOCAB_GLOBS = (f"*/{vocabulary_lib.VOCAB_JSON}",
                f"*/*/{vocabulary_lib.VOCAB_JSON}")


# Checkpoint ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Checkpoint:
  """Parameters to evaluate and where they come from.

  Attributes:
    path: the checkpoint as given.
    kind: "ours" (a training run) or "big_vision" (an `.npz`).
    step: the training step, None where unknown.
    config: the training config (architecture, preprocessing, dataset).
    params: the parameter tree (`trainer.models.two_towers` layout).
    workdir: the training workdir, None for other sources.
  """

  path: str
  kind: str
  step: int | None
  config: ml_collections.ConfigDict
  params: Params
  workdir: pathlib.Path | None


def _abstract_params(config: ml_collections.ConfigDict,
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


def load_checkpoint(path: str | os.PathLike[str],
                    config_file: str | None = None) -> Checkpoint:
  """Reads our training checkpoint or a big_vision `.npz`.

  Args:
    path: a training workdir (its newest step), one of its step directories
      `workdir/checkpoints/<step>`, or a big_vision `.npz` file.
    config_file: a training config file (`get_config()`) giving the
      architecture and preprocessing of a `.npz`; refused for our
      checkpoints, which carry their config.

  Raises:
    ValueError: if the checkpoint or config is missing or they do not fit.
  """
  path = os.fspath(path)
  if frozen_tower.checkpoint_kind(path) == frozen_tower.BIG_VISION:
    if config_file is None:
      raise ValueError(f"{path} is a big_vision .npz checkpoint: give its "
                       "architecture with --config")
    if not files.exists(path):
      raise ValueError(f"checkpoint {path} does not exist")
    config = frozen_tower.load_config_file(config_file)
    flat = load_big_vision.load_npz(path)
    # Only the image head's kernel, if any, records the embedding size of a
    # SigLiT model; without a head any size fits its (absent) image params.
    kernel = next((value for key, value in flat.items()
                   if key.removeprefix(load_big_vision.PREFIX) ==
                   _IMAGE_HEAD_KERNEL), None)
    abstract = _abstract_params(config,
                                1 if kernel is None else kernel.shape[0])
    try:
      params = load_big_vision.to_params(flat, abstract, tuple(abstract))
    except ValueError as e:
      raise ValueError(f"{path}: {e}") from e
    return Checkpoint(path=path, kind=frozen_tower.BIG_VISION, step=None,
                      config=config, params=params, workdir=None)
  if config_file is not None:
    raise ValueError("--config is for .npz checkpoints; checkpoints of our "
                     "trainer carry their config")
  workdir, step_dir = checkpoints.find_checkpoint(path)
  config, params = checkpoints.restore_for_inference(step_dir)
  return Checkpoint(path=path, kind=frozen_tower.OURS,
                    step=int(step_dir.name), config=config, params=params,
                    workdir=workdir)


# Vocabulary ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VocabularyChoice:
  """The vocabulary captions are tokenised with, and why that one.

  Attributes:
    vocabulary: the loaded vocabulary (with the lowercasing decided).
    path: where it was loaded from.
    source: "--vocab" or "manifest search".
    expected_sha256: the training manifest's checksum for it, "" when no
      manifest gives one (then nothing was verified).
  """

  vocabulary: vocabulary_lib.Vocabulary
  path: str
  source: str
  expected_sha256: str

  def to_json(self) -> dict[str, Any]:
    v = self.vocabulary
    return {"name": v.name, "sha256": v.sha256, "size": v.size,
            "lowercase": v.lowercase, "path": files.resolve(self.path),
            "source": self.source,
            "verified_against_manifest": bool(self.expected_sha256)}


class MissingManifestError(ValueError):
  """The training dataset the config names has no manifest (any more)."""


def _training_manifest(data_config: ml_collections.ConfigDict
                       ) -> tuple[str, dict[str, Any]] | None:
  """(path, contents) of config.data.train_dir's manifest.

  Returns None when the config names no training dataset.

  Raises:
    MissingManifestError: naming the manifest path, if it is not there.
  """
  train_dir = data_config.get("train_dir")
  if not train_dir:
    return None
  path = files.join(train_dir, sinks.MANIFEST)
  if not files.exists(path):
    # Runs saved before config paths were stored resolved hold the path as
    # it was given, relative to wherever training was started.
    relative = ("" if files.is_uri(train_dir) or os.path.isabs(train_dir) else
                f", a relative path looked up from {os.getcwd()}")
    raise MissingManifestError(
        f"the training dataset manifest {path} (config.data.train_dir"
        f"{relative}) does not exist")
  return path, sinks.read_json(path)


def _manifest_sha256(data_config: ml_collections.ConfigDict) -> str:
  """The training manifest's sha256 of config.data.vocab_name, or "".

  Raises:
    MissingManifestError: if the config's training dataset has no manifest.
  """
  found = _training_manifest(data_config)
  if found is None:
    return ""
  path, manifest = found
  name = data_config.vocab_name
  for entry in manifest.get("vocabularies", []):
    if entry.get("name") == name:
      return entry.get("sha256", "")
  raise ValueError(f"the training dataset manifest {path} lists no "
                   f"vocabulary {name!r} (config.data.vocab_name)")


def _search_roots(data_config: ml_collections.ConfigDict,
                  workdir: pathlib.Path | None) -> list[pathlib.Path]:
  roots = []
  train_dir = data_config.get("train_dir")
  if train_dir and not files.is_uri(train_dir):
    roots.append(pathlib.Path(train_dir).absolute().parent)
  if workdir is not None:
    roots.append(pathlib.Path(workdir).absolute().parent)
  return list(dict.fromkeys(roots))


def _find_vocabulary(name: str, sha256: str,
                     roots: Sequence[pathlib.Path]) -> pathlib.Path | None:
  """The first vocabulary directory under `roots` with `name` and `sha256`."""
  for root in roots:
    for pattern in _VOCAB_GLOBS:
      for card_path in sorted(root.glob(pattern)):
        try:
          card = vocabulary_lib.VocabularyCard.from_json(
              card_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
          continue  # Not a vocabulary card after all.
        if card.name == name and card.sha256 == sha256:
          return card_path.parent
  return None


def choose_vocabulary(config: ml_collections.ConfigDict, *,
                      vocab_path: str | os.PathLike[str] | None = None,
                      workdir: pathlib.Path | None = None,
                      lowercase: vocabulary_lib.Lowercase | None = None,
                      progress: Callable[[str], None] | None = None
                      ) -> VocabularyChoice:
  """The vocabulary to tokenise captions with (the module's rule).

  Args:
    config: the training config (its `data` section).
    vocab_path: a vocabulary directory or `.model` file; None: search.
    workdir: the training workdir, a search root.
    lowercase: the lowercase mode to use (`tokenizers.vocabulary`); None:
      config.data.lowercase if set, else the vocabulary card's.
    progress: warned when `vocab_path` cannot be checked because the
      training dataset's manifest is gone.

  Raises:
    ValueError: if no vocabulary is given or found, or the one given is not
      the one the training manifest names.
  """
  try:
    expected = _manifest_sha256(config.data)
  except MissingManifestError as e:
    if vocab_path is None:
      raise ValueError(f"{e}: it names the vocabulary; pass --vocab DIR"
                       ) from None
    expected = ""
    if progress is not None:
      progress(f"warning: --vocab {os.fspath(vocab_path)} is not checked "
               f"against the training vocabulary: {e}")
  name = config.data.vocab_name
  if lowercase is None and config.data.get("lowercase"):
    # Runs saved before the modes existed hold False (the card's) or True.
    lowercase = config.data.lowercase
  if vocab_path is not None:
    vocabulary = vocabulary_lib.Vocabulary.load(vocab_path,
                                                lowercase=lowercase)
    if expected and vocabulary.sha256 != expected:
      raise ValueError(
          f"--vocab {os.fspath(vocab_path)} has sha256 "
          f"{vocabulary.sha256[:12]}..., but the model was trained with "
          f"vocabulary {name!r} of sha256 {expected[:12]}... (training "
          "dataset manifest)")
    return VocabularyChoice(vocabulary, os.fspath(vocab_path), "--vocab",
                            expected)
  if not expected:
    raise ValueError(f"--vocab is required: no training dataset manifest "
                     f"(config.data.train_dir) gives the sha256 of "
                     f"vocabulary {name!r}")
  roots = _search_roots(config.data, workdir)
  found = _find_vocabulary(name, expected, roots)
  if found is None:
    raise ValueError(
        f"vocabulary {name!r} (sha256 {expected[:12]}...) not found under "
        f"{[str(root) for root in roots]}; pass --vocab DIR")
  vocabulary = vocabulary_lib.Vocabulary.load(found, lowercase=lowercase)
  return VocabularyChoice(vocabulary, str(found), "manifest search", expected)


# Image tower of SigLiT models ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImageTower:
  """The frozen tower whose embeddings a SigLiT model was trained on.

  Attributes:
    spec: the tower; `spec.checkpoint` is the path read.
    params: its parameters, fitted to `spec.image_size`.
    image_mode: the preprocessing the training embeddings were made with.
    source: TOWER_FROM_MANIFEST or TOWER_FROM_FLAG.
    expected_sha256: the checkpoint's sha256 in the LiT dataset's manifest,
      "" when no manifest gives one.
  """

  spec: frozen_tower.TowerSpec
  params: Params
  image_mode: str
  source: str
  expected_sha256: str

  def to_json(self) -> dict[str, Any]:
    spec = self.spec
    return {"kind": spec.kind,
            "checkpoint": files.resolve(spec.checkpoint),
            "sha256": spec.sha256, "step": spec.step,
            "image_size": spec.image_size, "image_mode": self.image_mode,
            "embedding_dim": spec.embedding_dim, "source": self.source,
            "verified_against_manifest": spec.sha256 == self.expected_sha256}


def _manifest_tower(data_config: ml_collections.ConfigDict
                    ) -> tuple[str, frozen_tower.TowerSpec, str] | None:
  """(manifest path, tower, image mode) the LiT dataset names, or None.

  Raises:
    MissingManifestError: if the config's training dataset has no manifest.
  """
  found = _training_manifest(data_config)
  if found is None or embed.TOWER not in found[1]:
    return None
  path, manifest = found
  try:
    return (path, *embed.manifest_tower(manifest))
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from e


def _recorded_checkpoint(spec: frozen_tower.TowerSpec,
                         manifest_path: str) -> str:
  """The checkpoint path of the step the manifest records.

  A workdir's newest step may have moved on since the embeddings were made.

  Raises:
    ValueError: if the checkpoint is gone.
  """
  if spec.kind == frozen_tower.BIG_VISION:
    if not files.exists(spec.checkpoint):
      raise ValueError(f"the image tower {spec.checkpoint} that "
                       f"{manifest_path} names does not exist; pass "
                       "--image_tower")
    return spec.checkpoint
  try:
    workdir, step_dir = checkpoints.find_checkpoint(spec.checkpoint)
    if spec.step is None or step_dir.name == str(spec.step):
      return spec.checkpoint
    step_dir = workdir / checkpoints.CHECKPOINTS_DIR / str(spec.step)
    checkpoints.find_checkpoint(step_dir)
  except ValueError as e:
    raise ValueError(f"the image tower that {manifest_path} names: {e}; "
                     "pass --image_tower") from e
  return str(step_dir)


def choose_image_tower(config: ml_collections.ConfigDict, *,
                       tower_path: str | os.PathLike[str] | None = None,
                       tower_config_file: str | None = None,
                       progress: Callable[[str], None] | None = None
                       ) -> ImageTower:
  """The frozen tower a model without image tower is evaluated with.

  Args:
    config: the model's training config; config.data.train_dir is the LiT
      dataset, whose manifest names the tower and the image preprocessing.
    tower_path: our workdir or step directory, or a big_vision `.npz`;
      None: the checkpoint (and step) the manifest names.
    tower_config_file: the architecture of an `.npz` tower: a training
      config file or a run's config.json.
    progress: warned when `tower_path` is not the checkpoint the manifest
      names, or the manifest is gone.

  Raises:
    ValueError: if no tower is given or named, it cannot be loaded, or the
      one the manifest names no longer has the sha256 recorded there.
  """
  try:
    named = _manifest_tower(config.data)
  except MissingManifestError as e:
    if tower_path is None:
      raise ValueError(f"{e}: it names the model's frozen image tower; pass "
                       "--image_tower") from None
    named = None
    if progress is not None:
      progress(f"warning: --image_tower {os.fspath(tower_path)} is not "
               f"checked against the training embeddings: {e}")
  if tower_path is None:
    if tower_config_file is not None:
      raise ValueError("--image_tower_config describes an .npz "
                       "--image_tower; give both")
    if named is None:
      raise ValueError(
          "the model has no image tower and no LiT dataset manifest "
          "(config.data.train_dir) names the tower of its embeddings: pass "
          "it with --image_tower")
    manifest_path, spec, image_mode = named
    spec = dataclasses.replace(
        spec, checkpoint=_recorded_checkpoint(spec, manifest_path))
    sha256 = frozen_tower.checkpoint_sha256(spec.checkpoint)
    if sha256 != spec.sha256:
      raise ValueError(
          f"the image tower {spec.checkpoint} has sha256 {sha256[:12]}..., "
          f"but {manifest_path} says the training embeddings were made by "
          f"one of sha256 {spec.sha256[:12]}...: another tower; pass the "
          "one that made them with --image_tower")
    return ImageTower(spec, frozen_tower.load_tower_params(spec), image_mode,
                      TOWER_FROM_MANIFEST, spec.sha256)

  tower_path = os.fspath(tower_path)
  is_npz = frozen_tower.checkpoint_kind(tower_path) == frozen_tower.BIG_VISION
  if is_npz and tower_config_file is None:
    raise ValueError(f"--image_tower {tower_path} is a big_vision .npz: "
                     "give its architecture with --image_tower_config")
  if not is_npz and tower_config_file is not None:
    raise ValueError("--image_tower_config is for .npz towers; checkpoints "
                     "of our trainer carry their config")
  model_config = (frozen_tower.load_config_file(tower_config_file)
                  if tower_config_file else None)
  image_size, image_mode, expected = None, embed.DEFAULT_IMAGE_MODE, ""
  if named is not None:
    _, named_spec, image_mode = named
    image_size, expected = named_spec.image_size, named_spec.sha256
  spec = frozen_tower.describe_tower(tower_path, model_config, image_size)
  if expected and spec.sha256 != expected and progress is not None:
    progress(f"warning: --image_tower {tower_path} has sha256 "
             f"{spec.sha256[:12]}..., not the {expected[:12]}... of the "
             f"tower that made the training embeddings ({named[0]})")
  return ImageTower(spec, frozen_tower.load_tower_params(spec), image_mode,
                    TOWER_FROM_FLAG, expected)


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


# Evaluation ---------------------------------------------------------------


def eval_image_mode(data_config: ml_collections.ConfigDict) -> str:
  """The deterministic image preprocessing matching the training mode."""
  mode = data_config.image_mode
  return (input_pipeline.CENTER_CROP if mode == input_pipeline.RANDOM_CROP
          else mode)


def _batches(count: int, batch_size: int) -> Iterator[tuple[int, int]]:
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


class Xm3600Evaluator:
  """Recall@k on XM3600 for parameters of one model architecture.

  The captions are tokenised once, here; `evaluate` decodes the images and
  encodes everything with the given parameters (batched, jit-compiled, the
  batches split over all devices). A model without image tower (SigLiT)
  sees its images through `image_tower`, as in its training data.
  """

  name = NAME

  def __init__(self, data: xm3600_data.Xm3600Data,
               config: ml_collections.ConfigDict,
               vocabulary: vocabulary_lib.Vocabulary, *,
               image_tower: ImageTower | None = None,
               batch_size: int = DEFAULT_BATCH_SIZE, every: int = 0,
               progress: Callable[[str], None] | None = None):
    """Prepares the evaluation.

    Args:
      data: the XM3600 images and captions.
      config: the training config (`model` and `data` sections).
      vocabulary: the tokenizer, lowercasing decided.
      image_tower: for a model without image tower (and only then): the
        frozen tower of its training embeddings (`choose_image_tower`).
      batch_size: images or captions per encoding step, rounded up to a
        multiple of the device count.
      every: the trainer runs it every this many steps; 0: every
        config.eval_every steps.
      progress: called with a line of progress now and then.

    Raises:
      ValueError: for a model without image tower and no `image_tower`
        (or the reverse), or a bad batch size.
    """
    if config.model.image is None and image_tower is None:
      raise ValueError("the model has no image tower (it was trained on "
                       "precomputed image embeddings): give the frozen "
                       "tower that made them")
    if config.model.image is not None and image_tower is not None:
      raise ValueError("the model has its own image tower; a frozen image "
                       "tower is for models trained on its embeddings")
    if batch_size < 1:
      raise ValueError(f"batch_size must be positive, got {batch_size}")
    self.data = data
    self.vocabulary = vocabulary
    self.every = every
    self.image_tower = image_tower
    if image_tower is None:
      self.image_size = int(config.data.image_size)
      self.image_mode = eval_image_mode(config.data)
    else:
      self.image_size = image_tower.spec.image_size
      self.image_mode = image_tower.image_mode
    self.text_len = int(config.data.text_len)
    devices = jax.device_count()
    self.batch_size = -(-batch_size // devices) * devices
    self._progress = progress or (lambda line: None)

    mesh = mesh_lib.make_mesh()
    self._replicated = mesh_lib.replicated(mesh)
    self._batch_sharding = mesh_lib.batch_sharding(mesh)
    model = two_towers.build_model(config.model)
    if image_tower is None:
      self._encode_images = _jitted(two_towers.encode_images, (model,),
                                    self._replicated)
    else:
      self._encode_images = _jitted(
          encode_tower_images, (image_tower.spec.module(), model),
          self._replicated)
      self._tower_params = jax.device_put(image_tower.params,
                                          self._replicated)
    self._encode_texts = _jitted(two_towers.encode_texts, (model,),
                                 self._replicated)

    texts = [text for lang in data.languages.values() for text in lang.texts]
    self._tokens = np.asarray(
        [vocabulary_lib.pad_or_truncate(ids, self.text_len,
                                        vocabulary.eos_id, vocabulary.pad_id)
         for ids in vocabulary.encode_batch(texts)], np.int32)
    sizes = [len(lang.texts) for lang in data.languages.values()]
    self._text_offsets = np.cumsum([0] + sizes)

  def _encode(self, encode: Callable[[Params, jax.Array], jax.Array],
              params: Params, count: int,
              rows: Callable[[int, int], np.ndarray], what: str) -> np.ndarray:
    """Embeddings of `count` inputs, `rows(start, stop)` giving a batch."""
    outputs = []
    began = time.perf_counter()
    num_batches = -(-count // self.batch_size)
    report_every = max(1, num_batches // 10)
    for index, (start, stop) in enumerate(_batches(count, self.batch_size)):
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

  def _image_rows(self, pool: concurrent.futures.Executor, start: int,
                  stop: int) -> np.ndarray:
    keys = self.data.image_keys[start:stop]
    return np.stack(list(pool.map(self._load_image, keys)))

  def _load_image(self, key: str) -> np.ndarray:
    path = self.data.image_path(key)
    try:
      return input_pipeline.decode_image(path.read_bytes(), self.image_size,
                                         self.image_mode)
    except (OSError, ValueError) as e:
      raise ValueError(f"cannot read image {path}: {e}") from None

  def image_embeddings(self, params: Params) -> np.ndarray:
    """L2-normalised embeddings of the images, in `data.image_keys` order.

    Raises:
      ValueError: if the model's image head does not fit the frozen tower.
    """
    if self.image_tower is not None:
      head = params.get("img", {}).get("head")
      spec = self.image_tower.spec
      if head is not None and head["kernel"].shape[0] != spec.embedding_dim:
        raise ValueError(
            f"the model's image head takes {head['kernel'].shape[0]}-d "
            f"embeddings, but the image tower {spec.checkpoint} gives "
            f"{spec.embedding_dim}-d ones")
      params = {_TOWER_PARAMS: self._tower_params,
                "img": params.get("img", {})}
    params = jax.device_put(params, self._replicated)
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
      return self._encode(
          self._encode_images, params, len(self.data.image_keys),
          functools.partial(self._image_rows, pool), "images")

  def text_embeddings(self, params: Params) -> np.ndarray:
    """L2-normalised embeddings of all captions, language after language."""
    params = jax.device_put(params, self._replicated)
    return self._encode(
        self._encode_texts, params, len(self._tokens),
        lambda start, stop: self._tokens[start:stop], "captions")

  def embeddings(self, params: Params
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The embeddings `evaluate` scores: (images, {lang: captions}).

    Images in `data.image_keys` order, each language's captions in the order
    of its `texts`; all L2-normalised.

    Raises:
      ValueError: if image and text embeddings differ in size, or the
        model's image head does not fit the frozen tower.
    """
    image_embeddings = self.image_embeddings(params)
    text_embeddings = self.text_embeddings(params)
    if image_embeddings.shape[1] != text_embeddings.shape[1]:
      raise ValueError(f"image embeddings have {image_embeddings.shape[1]} "
                       f"dims but text embeddings {text_embeddings.shape[1]}")
    offsets = self._text_offsets
    return image_embeddings, {
        lang: text_embeddings[start:stop]
        for lang, start, stop in zip(self.data.languages, offsets[:-1],
                                     offsets[1:])}

  def evaluate(self, params: Params) -> dict[str, Any]:
    """Per-language and mean recalls, with counts and chance levels.

    Returns:
      {"languages": {lang: {"i2t": {"r1", "r5", "r10"}, "t2i": {...},
      "num_images", "num_captions", "images_without_captions", "chance":
      {"i2t": {...}, "t2i": {...}}}}, "mean": {"i2t": {...}, "t2i": {...},
      "chance": {...}, "num_languages"}}, recalls as fractions in [0, 1].
    """
    image_embeddings, text_embeddings = self.embeddings(params)
    per_language = {}
    num_images = len(self.data.image_keys)
    for lang, captions in self.data.languages.items():
      similarity = image_embeddings @ text_embeddings[lang].T
      per_language[lang] = {
          **retrieval_metrics.retrieval_recalls(similarity,
                                                captions.caption_image),
          "num_images": num_images,
          "num_captions": len(captions.texts),
          "images_without_captions": list(captions.images_without_captions),
          "chance": retrieval_metrics.chance_recalls(num_images,
                                                     captions.caption_image),
      }
    mean = retrieval_metrics.mean_recalls(per_language)
    mean["chance"] = retrieval_metrics.mean_recalls(
        {lang: r["chance"] for lang, r in per_language.items()})
    mean["num_languages"] = len(per_language)
    return {"languages": per_language, MEAN: mean}

  def run(self, params: Params) -> dict[str, float]:
    """Flat metrics for TensorBoard: "i2t_r1_mean", "t2i_r5_de", ..."""
    return flat_metrics(self.evaluate(params))


def flat_metrics(results: Mapping[str, Any]) -> dict[str, float]:
  """`Xm3600Evaluator.evaluate` results as "<direction>_<rk>_<lang|mean>"."""
  rows = {**results["languages"], MEAN: results[MEAN]}
  return {f"{direction}_{key}_{row}": value
          for row, recalls in rows.items()
          for direction in retrieval_metrics.DIRECTIONS
          for key, value in recalls[direction].items()}


def evaluator_from_config(config: ml_collections.ConfigDict,
                          workdir: str | os.PathLike[str]
                          ) -> Xm3600Evaluator | None:
  """The trainer's periodic evaluator (config.evals.xm3600), if configured.

  Runs every config.evals.xm3600.every steps, or every config.eval_every
  steps when that is 0. The vocabulary follows the module's rule
  (config.evals.xm3600.vocab if set, else the
  manifest search); so does a SigLiT model's image tower
  (config.evals.xm3600.image_tower and image_tower_config if set, else the
  one the training dataset's manifest names).

  Raises:
    ValueError: for a bad XM3600 directory or languages, no vocabulary or
      image tower, or a data_dir without a period to evaluate at.
  """
  eval_config = config.evals.xm3600
  if not eval_config.data_dir:
    return None
  if not (eval_config.every or config.eval_every):
    raise ValueError("config.evals.xm3600.data_dir is set, but neither "
                     "evals.xm3600.every nor eval_every says when to "
                     "evaluate")
  data = xm3600_data.load_xm3600(eval_config.data_dir, list(eval_config.langs))
  choice = choose_vocabulary(config, vocab_path=eval_config.vocab,
                             workdir=pathlib.Path(workdir), progress=print)
  image_tower = None
  if config.model.image is None:
    image_tower = choose_image_tower(
        config, tower_path=eval_config.image_tower,
        tower_config_file=eval_config.image_tower_config,
        progress=print)
  return Xm3600Evaluator(
      data, config, choice.vocabulary, image_tower=image_tower,
      batch_size=eval_config.batch_size,
      every=eval_config.every)


# Command line -------------------------------------------------------------


class _ArgumentParser(argparse.ArgumentParser):
  """Reports bad arguments as one line, `error: ...`, and exit status 2."""

  def error(self, message: str):
    self.exit(2, f"error: {message}\n")


def _positive_int(value: str) -> int:
  try:
    number = int(value)
  except ValueError:
    number = 0
  if number < 1:
    raise argparse.ArgumentTypeError(
        f"must be a positive integer, got {value!r}")
  return number


def build_parser() -> argparse.ArgumentParser:
  parser = _ArgumentParser(
      prog="python -m eval.xm3600",
      description=("XM3600 image-text retrieval: image->text and "
                   "text->image recall@1/5/10 per language and their mean; "
                   f"writes {RESULTS_FILE}, {TABLE_FILE} and {CHART_FILE}."))
  parser.add_argument("--data_dir", required=True, type=pathlib.Path,
                      metavar="DIR",
                      help="the XM3600 directory: captions.jsonl and "
                      "images/<image/key>.jpg (the official layout)")
  parser.add_argument("--checkpoint", required=True, metavar="PATH",
                      help="a training workdir (its newest checkpoint is "
                      "used), a step directory WORKDIR/checkpoints/STEP, or "
                      "a big_vision .npz (then give --config and --vocab); "
                      "SigLiT checkpoints (no image tower) also need the "
                      "frozen tower of their training embeddings: see "
                      "--image_tower")
  parser.add_argument("--config", metavar="FILE",
                      help="with a big_vision .npz checkpoint: a training "
                      "config file giving its architecture, image size, "
                      "text length and vocabulary name; a released "
                      "checkpoint's preset is trainer/configs/released.py:"
                      "NAME (e.g. released.py:so400m16_i18n_256)")
  parser.add_argument("--image_tower", metavar="PATH",
                      help="for a SigLiT checkpoint only: the frozen image "
                      "tower whose precomputed embeddings it was trained "
                      "on, as a training workdir, step directory or "
                      "big_vision .npz (then also --image_tower_config); "
                      "images go through it, then the checkpoint's image "
                      "head. Default: the tower (and step) named in "
                      "manifest.json of the training dataset "
                      "(config.data.train_dir), which must still have the "
                      "sha256 recorded there. Images are preprocessed at "
                      "that manifest's image size and mode, as "
                      "python -m pipelines.embed did")
  parser.add_argument("--image_tower_config", metavar="FILE",
                      help="with an .npz --image_tower: a training config "
                      "file or a run's config.json whose model.image, "
                      "model.out_dim and data.image_size describe the "
                      "tower (as pipelines.embed --model_config)")
  parser.add_argument("--output", required=True, type=pathlib.Path,
                      metavar="DIR",
                      help="directory for the report files (created; "
                      "existing report files are replaced)")
  parser.add_argument("--lang", action="extend", nargs="+", default=[],
                      metavar="LANG",
                      help="languages to evaluate, in report order, space- "
                      "or comma-separated, repeatable (--lang de en, --lang "
                      "de,en); default: all 36, in the official order")
  parser.add_argument("--vocab", metavar="PATH",
                      help="the vocabulary: a directory with vocab.json or "
                      "a SentencePiece .model file (a release's c4_en or "
                      "mc4 model); default: found by name "
                      "and sha256 from the training dataset manifest near "
                      "the dataset and the workdir")
  parser.add_argument("--lowercase", nargs="?", metavar="MODE",
                      const=vocabulary_lib.LOWERCASE_UNICODE,
                      choices=vocabulary_lib.LOWERCASE_MODES,
                      help="lowercase captions before tokenising: none, "
                      "ascii (A-Z only, as big_vision's tokenize) or "
                      "unicode (the default MODE); default: "
                      "config.data.lowercase if set, else as the "
                      "vocabulary's card says")
  parser.add_argument("--no-lowercase", dest="lowercase",
                      action="store_const",
                      const=vocabulary_lib.LOWERCASE_NONE,
                      help="same as --lowercase none")
  parser.add_argument("--batch_size", type=_positive_int,
                      default=DEFAULT_BATCH_SIZE,
                      metavar="N",
                      help="images or captions per encoding step (default "
                      f"{DEFAULT_BATCH_SIZE}; rounded up to a multiple of "
                      "the device count)")
  parser.add_argument("--skip_missing_images", action="store_true",
                      help="evaluate without images whose file is missing "
                      "(listed in the report) instead of failing")
  return parser


def _report_json(results: Mapping[str, Any], checkpoint: Checkpoint,
                 choice: VocabularyChoice, evaluator: Xm3600Evaluator,
                 data: xm3600_data.Xm3600Data,
                 args: argparse.Namespace) -> dict[str, Any]:
  return {
      "checkpoint": {"path": files.resolve(checkpoint.path),
                     "kind": checkpoint.kind,
                     "step": checkpoint.step},
      **({} if evaluator.image_tower is None else
         {"image_tower": evaluator.image_tower.to_json()}),
      "vocabulary": choice.to_json(),
      "options": {
          "data_dir": files.resolve(args.data_dir),
          "langs": list(data.languages),
          "batch_size": evaluator.batch_size,
          "skip_missing_images": args.skip_missing_images,
          "image_size": evaluator.image_size,
          "image_mode": evaluator.image_mode,
          "text_len": evaluator.text_len,
          "lowercase": choice.vocabulary.lowercase,
      },
      "protocol": {
          "ks": list(retrieval_metrics.KS),
          "ties": "against the query (a wrong candidate scoring equal to "
                  "the best right one ranks before it)",
          "mean": "plain mean over the evaluated languages",
          "chance": CHANCE_FORMULA,
      },
      "data": {
          "num_images": len(data.image_keys),
          "missing_images": list(data.missing_images),
          "languages_without_captions": list(
              data.languages_without_captions),
          "other_languages": list(data.other_languages),
      },
      **results,
  }


def evaluate_checkpoint(args: argparse.Namespace) -> dict[str, Any]:
  """Runs the command: evaluates, writes the report files, returns the JSON."""
  progress = functools.partial(print, file=sys.stderr, flush=True)
  langs = [lang for value in args.lang for lang in value.split(",") if lang]
  data = xm3600_data.load_xm3600(args.data_dir, langs,
                                 skip_missing_images=args.skip_missing_images)
  for what, keys in (("missing images skipped", data.missing_images),
                     ("languages without captions",
                      data.languages_without_captions)):
    if keys:
      progress(f"warning: {len(keys)} {what}: {' '.join(keys[:10])}"
               f"{' ...' if len(keys) > 10 else ''}")
  checkpoint = load_checkpoint(args.checkpoint, args.config)
  choice = choose_vocabulary(checkpoint.config, vocab_path=args.vocab,
                             workdir=checkpoint.workdir,
                             lowercase=args.lowercase, progress=progress)
  image_tower = None
  if checkpoint.config.model.image is None:
    image_tower = choose_image_tower(
        checkpoint.config, tower_path=args.image_tower,
        tower_config_file=args.image_tower_config, progress=progress)
  elif args.image_tower or args.image_tower_config:
    raise ValueError("--image_tower and --image_tower_config are for "
                     f"SigLiT checkpoints; {checkpoint.path} has its own "
                     "image tower")
  step = ("" if checkpoint.step is None else
          f" step {checkpoint.step}")
  tower = ("" if image_tower is None else
           f", image tower {image_tower.spec.checkpoint} (from "
           f"{image_tower.source})")
  progress(f"{len(data.image_keys)} images, {len(data.languages)} "
           f"languages, checkpoint {checkpoint.path}{step}{tower}, "
           f"vocabulary {choice.vocabulary.name} ({choice.path})")
  evaluator = Xm3600Evaluator(data, checkpoint.config, choice.vocabulary,
                              image_tower=image_tower,
                              batch_size=args.batch_size, progress=progress)
  results = evaluator.evaluate(checkpoint.params)
  output = _report_json(results, checkpoint, choice, evaluator, data, args)
  args.output.mkdir(parents=True, exist_ok=True)
  (args.output / RESULTS_FILE).write_text(
      json.dumps(output, indent=2, ensure_ascii=False) + "\n",
      encoding="utf-8")
  table = report.markdown_table(output)
  (args.output / TABLE_FILE).write_text(table, encoding="utf-8")
  report.write_recall_chart(output, args.output / CHART_FILE)
  print(table, end="")
  progress(f"wrote {args.output / RESULTS_FILE}, {TABLE_FILE}, {CHART_FILE}")
  return output


def main(argv: Sequence[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  try:
    evaluate_checkpoint(args)
  except (ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
