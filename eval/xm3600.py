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
config.data.image_size in the training image mode ("resize",
"resize_bilinear" or "center_crop"; "random_crop" training evaluates with
"center_crop"). Token ids are padded or sticky-truncated to
config.data.text_len as in training.

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
tower's config.data.image_size and image mode, as `pipelines.embed` takes
them by default). The report records the tower.
"""

import argparse
from collections.abc import Callable, Mapping, Sequence
import concurrent.futures
import dataclasses
import functools
import os
import sys
from typing import Any

import ml_collections
import numpy as np

from dataformat import cli
from dataformat import files
from dataformat import manifest as manifest_lib
from dataformat import shards
from eval import encoding
from eval import report
from eval import retrieval_metrics
from eval import xm3600_data
from pipelines import embed
from vocabularies import vocabulary as vocabulary_lib
from trainer import checkpoints
from trainer import input_pipeline
from trainer import model_loader

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
# Vocabulary cards looked at when the vocabulary is found by its checksum.
_VOCAB_GLOBS = (f"*/{vocabulary_lib.VOCAB_JSON}",
                f"*/*/{vocabulary_lib.VOCAB_JSON}")


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
                       ) -> tuple[str, manifest_lib.Manifest] | None:
  """(path, manifest) of config.data.train_dir.

  Returns None when the config names no training dataset.

  Raises:
    MissingManifestError: naming the manifest path, if it is not there.
    ValueError: naming the manifest and the key, if one is missing.
  """
  train_dir = data_config.get("train_dir")
  if not train_dir:
    return None
  path = files.join(train_dir, shards.MANIFEST)
  if not files.exists(path):
    # Runs saved before config paths were stored resolved hold the path as
    # it was given, relative to wherever training was started.
    relative = ("" if files.is_uri(train_dir) or os.path.isabs(train_dir) else
                f", a relative path looked up from {os.getcwd()}")
    raise MissingManifestError(
        f"the training dataset manifest {path} (config.data.train_dir"
        f"{relative}) does not exist")
  return path, manifest_lib.read(path)


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
  entry = manifest.vocabulary(name)
  if entry is None:
    raise ValueError(f"the training dataset manifest {path} lists no "
                     f"vocabulary {name!r} (config.data.vocab_name)")
  return entry.sha256


def _search_roots(data_config: ml_collections.ConfigDict,
                  workdir: str | os.PathLike[str] | None) -> list[str]:
  """The folders holding the training dataset and the workdir."""
  roots = []
  train_dir = data_config.get("train_dir")
  if train_dir:
    roots.append(files.dirname(files.resolve(train_dir)))
  if workdir is not None:
    roots.append(files.dirname(files.resolve(workdir)))
  return list(dict.fromkeys(roots))


def _find_vocabulary(name: str, sha256: str,
                     roots: Sequence[str]) -> str | None:
  """The first vocabulary directory under `roots` with `name` and `sha256`."""
  for root in roots:
    for pattern in _VOCAB_GLOBS:
      for card_path in files.glob(files.join(root, pattern)):
        try:
          card = vocabulary_lib.VocabularyCard.from_json(
              files.read_text(card_path))
        except (OSError, ValueError):
          continue  # Not a vocabulary card after all.
        if card.name == name and card.sha256 == sha256:
          return files.dirname(card_path)
  return None


def choose_vocabulary(config: ml_collections.ConfigDict, *,
                      vocab_path: str | os.PathLike[str] | None = None,
                      workdir: str | os.PathLike[str] | None = None,
                      lowercase: vocabulary_lib.Lowercase | None = None,
                      progress: Callable[[str], None] | None = None
                      ) -> VocabularyChoice:
  """The vocabulary to tokenise captions with (the module's rule).

  Args:
    config: the training config (its `data` section).
    vocab_path: a vocabulary directory or `.model` file; None: search.
    workdir: the training workdir, a search root.
    lowercase: the lowercase mode to use (`vocabularies.vocabulary`); None:
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
        f"{roots}; pass --vocab DIR")
  vocabulary = vocabulary_lib.Vocabulary.load(found, lowercase=lowercase)
  return VocabularyChoice(vocabulary, found, "manifest search", expected)


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

  spec: model_loader.TowerSpec
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
                    ) -> tuple[str, model_loader.TowerSpec, str] | None:
  """(manifest path, tower, image mode) the LiT dataset names, or None.

  Raises:
    MissingManifestError: if the config's training dataset has no manifest.
  """
  found = _training_manifest(data_config)
  if found is None or found[1].tower is None:
    return None
  path, manifest = found
  try:
    return (path, *embed.manifest_tower(manifest))
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from e


def _recorded_checkpoint(spec: model_loader.TowerSpec,
                         manifest_path: str) -> str:
  """The checkpoint path of the step the manifest records.

  A workdir's newest step may have moved on since the embeddings were made.

  Raises:
    ValueError: if the checkpoint is gone.
  """
  if spec.kind == model_loader.BIG_VISION:
    if not files.exists(spec.checkpoint):
      raise ValueError(f"the image tower {spec.checkpoint} that "
                       f"{manifest_path} names does not exist; pass "
                       "--image_tower")
    return spec.checkpoint
  try:
    workdir, step_dir = model_loader.find_step(spec.checkpoint)
    if spec.step is None or files.basename(step_dir) == str(spec.step):
      return spec.checkpoint
    step_dir = checkpoints.step_dir(workdir, spec.step)
    model_loader.find_step(step_dir)
  except ValueError as e:
    raise ValueError(f"the image tower that {manifest_path} names: {e}; "
                     "pass --image_tower") from e
  return step_dir


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
    sha256 = model_loader.checkpoint_sha256(spec.checkpoint)
    if sha256 != spec.sha256:
      raise ValueError(
          f"the image tower {spec.checkpoint} has sha256 {sha256[:12]}..., "
          f"but {manifest_path} says the training embeddings were made by "
          f"one of sha256 {spec.sha256[:12]}...: another tower; pass the "
          "one that made them with --image_tower")
    return ImageTower(spec, model_loader.load_tower_params(spec), image_mode,
                      TOWER_FROM_MANIFEST, spec.sha256)

  tower_path = os.fspath(tower_path)
  is_npz = model_loader.checkpoint_kind(tower_path) == model_loader.BIG_VISION
  if is_npz and tower_config_file is None:
    raise ValueError(f"--image_tower {tower_path} is a big_vision .npz: "
                     "give its architecture with --image_tower_config")
  if not is_npz and tower_config_file is not None:
    raise ValueError("--image_tower_config is for .npz towers; checkpoints "
                     "of our trainer carry their config")
  model_config = (model_loader.load_config_file(tower_config_file)
                  if tower_config_file else None)
  image_size, expected = None, ""
  image_mode = embed.tower_image_mode(tower_path, tower_config_file)
  if named is not None:
    _, named_spec, image_mode = named
    image_size, expected = named_spec.image_size, named_spec.sha256
  spec = model_loader.describe_tower(tower_path, model_config, image_size)
  if expected and spec.sha256 != expected and progress is not None:
    progress(f"warning: --image_tower {tower_path} has sha256 "
             f"{spec.sha256[:12]}..., not the {expected[:12]}... of the "
             f"tower that made the training embeddings ({named[0]})")
  return ImageTower(spec, model_loader.load_tower_params(spec), image_mode,
                    TOWER_FROM_FLAG, expected)


# Evaluation ---------------------------------------------------------------


def eval_image_mode(data_config: ml_collections.ConfigDict) -> str:
  """The deterministic image preprocessing matching the training mode."""
  return input_pipeline.deterministic_image_mode(data_config.image_mode)


def image_preprocessing(config: ml_collections.ConfigDict,
                        image_tower: ImageTower | None) -> tuple[int, str]:
  """(image size, mode) images are decoded at for the model.

  Those of training, or for a SigLiT model those its frozen tower's
  embeddings were made with.
  """
  if image_tower is None:
    return int(config.data.image_size), eval_image_mode(config.data)
  return image_tower.spec.image_size, image_tower.image_mode


def model_encoder(config: ml_collections.ConfigDict,
                  image_tower: ImageTower | None, batch_size: int,
                  progress: Callable[[str], None] | None = None
                  ) -> encoding.Encoder:
  """The encoder of the model `config` describes.

  A SigLiT model (no image tower) needs `image_tower`, the frozen tower of
  its training embeddings (`choose_image_tower`); other models none.

  Raises:
    ValueError: for a missing or superfluous tower, or a bad batch size.
  """
  if image_tower is None:
    return encoding.Encoder(config, batch_size=batch_size, progress=progress)
  return encoding.Encoder(
      config, tower=image_tower.spec.module(), tower_params=image_tower.params,
      tower_embedding_dim=image_tower.spec.embedding_dim,
      tower_name=image_tower.spec.checkpoint, batch_size=batch_size,
      progress=progress)


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
    self.data = data
    self.vocabulary = vocabulary
    self.every = every
    self.image_tower = image_tower
    self.image_size, self.image_mode = image_preprocessing(config,
                                                           image_tower)
    self._encoder = model_encoder(config, image_tower, batch_size, progress)
    self.text_len = self._encoder.text_len
    self.batch_size = self._encoder.batch_size
    texts = [text for lang in data.languages.values() for text in lang.texts]
    self._tokens = self._encoder.tokenize(vocabulary, texts)
    sizes = [len(lang.texts) for lang in data.languages.values()]
    self._text_offsets = np.cumsum([0] + sizes)

  def _image_rows(self, pool: concurrent.futures.Executor, start: int,
                  stop: int) -> np.ndarray:
    keys = self.data.image_keys[start:stop]
    return np.stack(list(pool.map(self._load_image, keys)))

  def _load_image(self, key: str) -> np.ndarray:
    path = self.data.image_path(key)
    try:
      return input_pipeline.decode_image(files.read_bytes(path),
                                         self.image_size, self.image_mode)
    except (OSError, ValueError) as e:
      raise ValueError(f"cannot read image {path}: {e}") from None

  def image_embeddings(self, params: Params) -> np.ndarray:
    """L2-normalised embeddings of the images, in `data.image_keys` order.

    Raises:
      ValueError: if the model's image head does not fit the frozen tower.
    """
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
      return self._encoder.image_embeddings(
          params, len(self.data.image_keys),
          functools.partial(self._image_rows, pool))

  def text_embeddings(self, params: Params) -> np.ndarray:
    """L2-normalised embeddings of all captions, language after language."""
    return self._encoder.text_embeddings(params, self._tokens, "captions")

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
                             workdir=workdir, progress=print)
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


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
  """The flags that choose the model, its vocabulary and a SigLiT tower
  (read by `load_model`)."""
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
  parser.add_argument("--vocab", metavar="PATH",
                      help="the vocabulary: a directory with vocab.json or "
                      "a SentencePiece .model file (a release's c4_en or "
                      "mc4 model); default: found by name "
                      "and sha256 from the training dataset manifest near "
                      "the dataset and the workdir")
  parser.add_argument("--lowercase", nargs="?", metavar="MODE",
                      const=vocabulary_lib.LOWERCASE_UNICODE,
                      choices=vocabulary_lib.LOWERCASE_MODES,
                      help="lowercase texts (captions, prompts) before "
                      "tokenising: none, ascii (A-Z only, as big_vision's "
                      "tokenize) or unicode (the default MODE); default: "
                      "config.data.lowercase if set, else as the "
                      "vocabulary's card says")
  parser.add_argument("--no-lowercase", dest="lowercase",
                      action="store_const",
                      const=vocabulary_lib.LOWERCASE_NONE,
                      help="same as --lowercase none")


def build_parser() -> argparse.ArgumentParser:
  parser = cli.ArgumentParser(
      prog="python -m eval.xm3600",
      description=("XM3600 image-text retrieval: image->text and "
                   "text->image recall@1/5/10 per language and their mean; "
                   f"writes {RESULTS_FILE}, {TABLE_FILE} and {CHART_FILE}."))
  parser.add_argument("--data_dir", required=True,
                      metavar="DIR",
                      help="the XM3600 directory: captions.jsonl and "
                      "images/<image/key>.jpg (the official layout)")
  add_model_arguments(parser)
  parser.add_argument("--output", required=True,
                      metavar="DIR",
                      help="directory for the report files (created; "
                      "existing report files are replaced)")
  parser.add_argument("--lang", action="extend", nargs="+", default=[],
                      metavar="LANG",
                      help="languages to evaluate, in report order, space- "
                      "or comma-separated, repeatable (--lang de en, --lang "
                      "de,en); default: all 36, in the official order")
  parser.add_argument("--batch_size", type=cli.positive_int,
                      default=DEFAULT_BATCH_SIZE,
                      metavar="N",
                      help="images or captions per encoding step (default "
                      f"{DEFAULT_BATCH_SIZE}; rounded up to a multiple of "
                      "the device count)")
  parser.add_argument("--skip_missing_images", action="store_true",
                      help="evaluate without images whose file is missing "
                      "(listed in the report) instead of failing")
  return parser


@dataclasses.dataclass(frozen=True)
class Model:
  """A model to evaluate, with the vocabulary and tower it needs.

  Attributes:
    config: the training config (architecture, preprocessing, dataset).
    params: the parameter tree (`trainer.models.two_towers` layout).
    checkpoint: where `params` come from.
    vocabulary: the vocabulary captions and prompts are tokenised with.
    image_tower: the frozen tower of a SigLiT model; None for others.
  """

  config: ml_collections.ConfigDict
  params: Params
  checkpoint: model_loader.Provenance
  vocabulary: VocabularyChoice
  image_tower: ImageTower | None


def load_model(args: argparse.Namespace,
               progress: Callable[[str], None] | None = None) -> Model:
  """The model, vocabulary and SigLiT image tower the flags of
  `add_model_arguments` choose.

  Raises:
    ValueError: for a bad checkpoint, vocabulary or tower, or a tower given
      for a model with its own image tower.
  """
  config, params, checkpoint = model_loader.load(args.checkpoint,
                                                 args.config)
  choice = choose_vocabulary(config, vocab_path=args.vocab,
                             workdir=checkpoint.workdir,
                             lowercase=args.lowercase, progress=progress)
  image_tower = None
  if config.model.image is None:
    image_tower = choose_image_tower(
        config, tower_path=args.image_tower,
        tower_config_file=args.image_tower_config, progress=progress)
  elif args.image_tower or args.image_tower_config:
    raise ValueError("--image_tower and --image_tower_config are for "
                     f"SigLiT checkpoints; {checkpoint.path} has its own "
                     "image tower")
  return Model(config, params, checkpoint, choice, image_tower)


def _report_json(results: Mapping[str, Any],
                 checkpoint: model_loader.Provenance,
                 choice: VocabularyChoice, evaluator: Xm3600Evaluator,
                 data: xm3600_data.Xm3600Data,
                 args: argparse.Namespace) -> dict[str, Any]:
  return {
      "checkpoint": {"path": checkpoint.path,
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
  model = load_model(args, progress)
  checkpoint, choice, image_tower = (model.checkpoint, model.vocabulary,
                                     model.image_tower)
  step = ("" if checkpoint.step is None else
          f" step {checkpoint.step}")
  tower = ("" if image_tower is None else
           f", image tower {image_tower.spec.checkpoint} (from "
           f"{image_tower.source})")
  progress(f"{len(data.image_keys)} images, {len(data.languages)} "
           f"languages, checkpoint {checkpoint.path}{step}{tower}, "
           f"vocabulary {choice.vocabulary.name} ({choice.path})")
  evaluator = Xm3600Evaluator(data, model.config, choice.vocabulary,
                              image_tower=image_tower,
                              batch_size=args.batch_size, progress=progress)
  results = evaluator.evaluate(model.params)
  output = _report_json(results, checkpoint, choice, evaluator, data, args)
  results_path = files.join(args.output, RESULTS_FILE)
  files.write_json(results_path, output)
  table = report.markdown_table(output)
  files.write_text(files.join(args.output, TABLE_FILE), table)
  report.write_recall_chart(output, files.join(args.output, CHART_FILE))
  print(table, end="")
  progress(f"wrote {results_path}, {TABLE_FILE}, {CHART_FILE}")
  return output


def main(argv: Sequence[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  try:
    evaluate_checkpoint(args)
  except (ValueError, OSError) as e:
    return cli.fail(e)
  return 0


if __name__ == "__main__":
  sys.exit(main())
