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

Checkpoints, the vocabulary, image preprocessing and SigLiT image towers
follow `eval.model_choice`'s rules.
"""

import argparse
from collections.abc import Callable, Mapping, Sequence
import concurrent.futures
import functools
import os
import sys
from typing import Any

import ml_collections
import numpy as np

from dataformat import cli
from dataformat import files
from eval import encoding
from eval import model_choice
from eval import report
from eval import retrieval_metrics
from eval import xm3600_data
from vocabularies import vocabulary as vocabulary_lib
from trainer import input_pipeline

Params = Any
NAME = "xm3600"
RESULTS_FILE = "xm3600.json"
TABLE_FILE = "xm3600.md"
CHART_FILE = "xm3600_r1.png"
MEAN = "mean"
CHANCE_FORMULA = {
    retrieval_metrics.T2I: "min(k, N) / N for N images",
    retrieval_metrics.I2T: ("mean over images of 1 - C(M - m, k) / C(M, k) "
                            "for an image with m of the M captions "
                            "(about k * m / M)"),
}


# Evaluation ---------------------------------------------------------------


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
               image_tower: model_choice.ImageTower | None = None,
               batch_size: int = encoding.DEFAULT_BATCH_SIZE, every: int = 0,
               progress: Callable[[str], None] | None = None):
    """Prepares the evaluation.

    Args:
      data: the XM3600 images and captions.
      config: the training config (`model` and `data` sections).
      vocabulary: the tokenizer, lowercasing decided.
      image_tower: for a model without image tower (and only then): the
        frozen tower of its training embeddings.
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
    self.image_size, self.image_mode = model_choice.image_preprocessing(
        config, image_tower)
    self._encoder = model_choice.model_encoder(config, image_tower,
                                               batch_size, progress)
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
  steps when that is 0. The vocabulary and a SigLiT model's image tower
  follow `eval.model_choice`'s rules (config.evals.xm3600.vocab,
  image_tower, image_tower_config if set; `model_choice.periodic_choice`).

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
  vocabulary, image_tower = model_choice.periodic_choice(config, eval_config,
                                                        workdir)
  return Xm3600Evaluator(
      data, config, vocabulary, image_tower=image_tower,
      batch_size=eval_config.batch_size,
      every=eval_config.every)


# Command line -------------------------------------------------------------


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
  model_choice.add_model_arguments(parser)
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
                      default=encoding.DEFAULT_BATCH_SIZE, metavar="N",
                      help="images or captions per encoding step (default "
                      f"{encoding.DEFAULT_BATCH_SIZE}; rounded up to a "
                      "multiple of the device count)")
  parser.add_argument("--skip_missing_images", action="store_true",
                      help="evaluate without images whose file is missing "
                      "(listed in the report) instead of failing")
  return parser


def _report_json(results: Mapping[str, Any], model: model_choice.Model,
                 evaluator: Xm3600Evaluator, data: xm3600_data.Xm3600Data,
                 args: argparse.Namespace) -> dict[str, Any]:
  return {
      **model.to_json(),
      "options": {
          "data_dir": files.resolve(args.data_dir),
          "langs": list(data.languages),
          "batch_size": evaluator.batch_size,
          "skip_missing_images": args.skip_missing_images,
          "image_size": evaluator.image_size,
          "image_mode": evaluator.image_mode,
          "text_len": evaluator.text_len,
          "lowercase": model.vocabulary.vocabulary.lowercase,
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
  model = model_choice.load_model(args, progress)
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
  output = _report_json(results, model, evaluator, data, args)
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
