r"""Zero-shot image classification, per language.

  python -m eval.zeroshot --data_dir imagenet/val --classes classes.txt \
      --checkpoint workdir/ --output reports/ [--templates clip|short|name|FILE]
  python -m eval.zeroshot --data_dir demo_out/zeroshot/images \
      --classes 'demo_out/zeroshot/classes/{lang}.txt' --templates name \
      [--lang en de ja] --checkpoint workdir/ --output reports/

Each class's embedding is the L2-normalised mean of the L2-normalised text
embeddings of its prompts (every template with every synonym of its name);
each image is classified by its most similar class embedding. Reports
top-1 / top-5 accuracy, per-class accuracy and the most confused class pairs
for every language, and their plain mean over the languages (the math and
tie rule of `eval.zeroshot_metrics`; inputs as in `eval.zeroshot_data`).
Writes `zeroshot.json` (every number, the checkpoint, the vocabulary, the
options), `zeroshot.md` (tables, also printed) and `zeroshot_top1.png`.

`ZeroShotEvaluator` does the work; the trainer runs it periodically through
`evaluator_from_config` (config.evals.zeroshot).

Checkpoints, the vocabulary, image preprocessing and SigLiT image towers
follow `eval.model_choice`'s rules.
"""

import argparse
from collections.abc import Callable, Iterator, Mapping, Sequence
import concurrent.futures
import functools
import itertools
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
from eval import zeroshot_data
from eval import zeroshot_metrics
from vocabularies import vocabulary as vocabulary_lib
from trainer import input_pipeline

Params = Any
NAME = "zeroshot"
RESULTS_FILE = "zeroshot.json"
TABLE_FILE = "zeroshot.md"
CHART_FILE = "zeroshot_top1.png"
DEFAULT_LANG = zeroshot_data.TEMPLATE_SET_LANGUAGE
DEFAULT_TEMPLATES = "short"
MEAN = "mean"
CHANCE = "chance"
NUM_CONFUSIONS = 10
TIES = ("against the image: a wrong class scoring as high as the true one "
        "ranks before it; the predicted class is then the first such class")


class ZeroShotEvaluator:
  """Zero-shot accuracy per language for parameters of one architecture.

  The prompts are tokenised once, here; `evaluate` encodes the images once
  and every language's prompts with the given parameters.
  """

  name = NAME

  def __init__(self, images: zeroshot_data.LabelledImages,
               classes: Mapping[str, zeroshot_data.ClassList],
               templates: Mapping[str, Sequence[str]],
               config: ml_collections.ConfigDict,
               vocabulary: vocabulary_lib.Vocabulary, *,
               image_tower: model_choice.ImageTower | None = None,
               batch_size: int = encoding.DEFAULT_BATCH_SIZE, every: int = 0,
               progress: Callable[[str], None] | None = None):
    """Prepares the evaluation.

    Args:
      images: the labelled images.
      classes: each language's classes (the same classes in each).
      templates: each language's prompt templates.
      config: the training config (`model` and `data` sections).
      vocabulary: the tokenizer, lowercasing decided.
      image_tower: for a model without image tower (and only then): the
        frozen tower of its training embeddings.
      batch_size: images or prompts per encoding step, rounded up to a
        multiple of the device count.
      every: the trainer runs it every this many steps; 0: every
        config.eval_every steps.
      progress: called with a line of progress now and then.

    Raises:
      ValueError: for languages without templates, a missing or superfluous
        image tower, or a bad batch size.
    """
    if set(templates) != set(classes):
      raise ValueError(f"templates for {sorted(templates)} but classes for "
                       f"{sorted(classes)}")
    self.images = images
    self.classes = dict(classes)
    self.templates = {lang: tuple(templates[lang]) for lang in classes}
    self.vocabulary = vocabulary
    self.every = every
    self.image_tower = image_tower
    self.image_size, self.image_mode = model_choice.image_preprocessing(
        config, image_tower)
    self._encoder = model_choice.model_encoder(config, image_tower,
                                               batch_size, progress)
    self.batch_size = self._encoder.batch_size
    self.text_len = self._encoder.text_len
    self.class_keys = next(iter(classes.values())).keys
    self._prompts = {}
    for lang, class_list in self.classes.items():
      texts, text_class = zeroshot_data.prompts(class_list,
                                                self.templates[lang])
      self._prompts[lang] = (self._encoder.tokenize(vocabulary, texts),
                             np.asarray(text_class, np.int64))

  def num_prompts(self, lang: str) -> int:
    """Prompts of `lang`: templates x names over all classes."""
    return len(self._prompts[lang][1])

  def class_embeddings(self, params: Params) -> dict[str, np.ndarray]:
    """{lang: [num_classes, dim]} class embeddings."""
    return {
        lang: zeroshot_metrics.class_embeddings(
            self._encoder.text_embeddings(params, tokens, f"prompts ({lang})"),
            text_class, len(self.class_keys))
        for lang, (tokens, text_class) in self._prompts.items()}

  def _decoded(self, encoded: Iterator[tuple[str, bytes]],
               pool: concurrent.futures.Executor, start: int, stop: int
               ) -> np.ndarray:
    batch = list(itertools.islice(encoded, stop - start))
    return np.stack(list(pool.map(self._decode, batch)))

  def _decode(self, item: tuple[str, bytes]) -> np.ndarray:
    image_id, data = item
    try:
      return input_pipeline.decode_image(data, self.image_size,
                                         self.image_mode)
    except (OSError, ValueError) as e:
      raise ValueError(f"cannot read image {image_id}: {e}") from None

  def image_embeddings(self, params: Params) -> np.ndarray:
    """[num_images, dim] L2-normalised image embeddings, in `images` order.

    Raises:
      ValueError: for an unreadable image, or an image head that does not
        fit the frozen tower.
    """
    encoded = zip(self.images.ids, self.images.read())
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
      return self._encoder.image_embeddings(
          params, len(self.images.ids),
          functools.partial(self._decoded, encoded, pool))

  def evaluate(self, params: Params) -> dict[str, Any]:
    """Accuracy per language and the mean over languages, with chance.

    Returns:
      {"languages": {lang: `zeroshot_metrics.classification_metrics` plus
      "num_prompts"}, "mean": {"top1", "top5", "mean_per_class_top1",
      "num_languages"}, "chance": {"top1", "top5"}, "num_classes",
      "num_images"}; accuracies as fractions in [0, 1].
    """
    class_embeddings = self.class_embeddings(params)
    image_embeddings = self.image_embeddings(params)
    labels = np.asarray(self.images.labels, np.int64)
    per_language = {}
    for lang, embeddings in class_embeddings.items():
      if embeddings.shape[1] != image_embeddings.shape[1]:
        raise ValueError(f"image embeddings have {image_embeddings.shape[1]} "
                         f"dims but text embeddings {embeddings.shape[1]}")
      per_language[lang] = {
          **zeroshot_metrics.classification_metrics(
              image_embeddings @ embeddings.T, labels,
              self.classes[lang].keys, NUM_CONFUSIONS),
          "num_prompts": self.num_prompts(lang),
      }
    mean = zeroshot_metrics.mean_accuracy(per_language)
    mean["num_languages"] = len(per_language)
    return {"languages": per_language, MEAN: mean,
            CHANCE: zeroshot_metrics.chance_accuracy(len(self.class_keys)),
            "num_classes": len(self.class_keys),
            "num_images": len(labels)}

  def run(self, params: Params) -> dict[str, float]:
    """Flat metrics for TensorBoard: "top1_mean", "top5_de", ..."""
    return flat_metrics(self.evaluate(params))


def flat_metrics(results: Mapping[str, Any]) -> dict[str, float]:
  """`ZeroShotEvaluator.evaluate` results as "<metric>_<lang|mean>"."""
  rows = {**results["languages"], MEAN: results[MEAN]}
  keys = [zeroshot_metrics.topk_key(k) for k in zeroshot_metrics.KS]
  return {f"{key}_{row}": values[key]
          for row, values in rows.items() for key in keys}


def _languages(values: Sequence[str]) -> list[str]:
  """Languages from space- or comma-separated values, in order, once each."""
  return list(dict.fromkeys(
      lang for value in values for lang in value.split(",") if lang))


def load_inputs(data_dir: str, classes: str, templates: str,
                langs: Sequence[str], *, layout: str = zeroshot_data.AUTO,
                split: str | None = None, image_field: str | None = None,
                label_field: str | None = None
                ) -> tuple[zeroshot_data.LabelledImages,
                           dict[str, zeroshot_data.ClassList],
                           dict[str, tuple[str, ...]]]:
  """(images, classes, templates) for `langs`.

  Without `langs`: every language with a class file when `classes` holds
  `{lang}`, else English.

  Raises:
    ValueError: for a missing or malformed class, template or image input.
  """
  langs = list(langs)
  if not langs and zeroshot_data.LANG_PLACEHOLDER in classes:
    langs = zeroshot_data.available_languages(classes)
    if not langs:
      raise ValueError(f"no class-name file matches {classes}")
  langs = langs or [DEFAULT_LANG]
  class_lists = zeroshot_data.load_classes(classes, langs)
  template_lists = zeroshot_data.load_templates(templates, langs)
  first = next(iter(class_lists.values()))
  images = zeroshot_data.load_images(
      data_dir, first.keys, first.path, layout=layout, split=split,
      image_field=image_field, label_field=label_field)
  return images, class_lists, template_lists


def evaluator_from_config(config: ml_collections.ConfigDict,
                          workdir: str | os.PathLike[str]
                          ) -> ZeroShotEvaluator | None:
  """The trainer's periodic evaluator (config.evals.zeroshot), if configured.

  Runs every config.evals.zeroshot.every steps, or every config.eval_every
  steps when that is 0. The vocabulary and a SigLiT model's image tower
  follow `eval.model_choice`'s rules (config.evals.zeroshot.vocab,
  image_tower, image_tower_config if set; `model_choice.periodic_choice`).

  Raises:
    ValueError: for bad inputs, no vocabulary or image tower, or a data_dir
      without classes or a period to evaluate at.
  """
  eval_config = config.evals.zeroshot
  if not eval_config.data_dir:
    return None
  if not eval_config.classes:
    raise ValueError("config.evals.zeroshot.data_dir is set, but no "
                     "evals.zeroshot.classes file")
  if not (eval_config.every or config.eval_every):
    raise ValueError("config.evals.zeroshot.data_dir is set, but neither "
                     "evals.zeroshot.every nor eval_every says when to "
                     "evaluate")
  images, classes, templates = load_inputs(
      eval_config.data_dir, eval_config.classes, eval_config.templates,
      list(eval_config.langs), layout=eval_config.layout,
      split=eval_config.split, image_field=eval_config.image_field,
      label_field=eval_config.label_field)
  vocabulary, image_tower = model_choice.periodic_choice(config, eval_config,
                                                        workdir)
  return ZeroShotEvaluator(images, classes, templates, config,
                           vocabulary, image_tower=image_tower,
                           batch_size=eval_config.batch_size,
                           every=eval_config.every)


# Command line -------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
  parser = cli.ArgumentParser(
      prog="python -m eval.zeroshot",
      description=("Zero-shot image classification: top-1/top-5 and "
                   "per-class accuracy and the most confused classes, per "
                   f"language; writes {RESULTS_FILE}, {TABLE_FILE} and "
                   f"{CHART_FILE}."))
  parser.add_argument("--data_dir", required=True, metavar="DIR",
                      help="the labelled images: image folders "
                      "DIR/<class>/*.jpg|png|webp, a TFDS-style directory "
                      "of *.tfrecord* files (tf.train.Example with image "
                      "bytes and an int64 label), or a dataset of this "
                      "project (manifest.json, ArrayRecord shards) whose "
                      "records carry a label; see --layout")
  parser.add_argument("--classes", required=True, metavar="FILE",
                      help="the class-name file: one class per line in "
                      "label order, synonyms separated by ' | ', "
                      "optionally KEY<TAB> first (the folder name or "
                      "string label; default the first name); "
                      "'{lang}' in the path names one file per language")
  parser.add_argument("--templates", default=DEFAULT_TEMPLATES,
                      metavar="SET|FILE",
                      help="prompt templates: 'clip' (CLIP's 80 ImageNet "
                      "templates), 'short' (7 of them; default), both "
                      "English, 'name' (the class name alone), or a file "
                      "with one template per line, {} for the class name "
                      "('{lang}' in the path: one file per language)")
  model_choice.add_model_arguments(parser)
  parser.add_argument("--output", required=True, metavar="DIR",
                      help="directory for the report files (created; "
                      "existing report files are replaced)")
  parser.add_argument("--lang", action="extend", nargs="+", default=[],
                      metavar="LANG",
                      help="languages of the class names and templates, "
                      "space- or comma-separated, repeatable; each needs "
                      "its files when the paths hold '{lang}' (default: "
                      "every language with a --classes file when its path "
                      f"holds '{{lang}}', else {DEFAULT_LANG})")
  parser.add_argument("--layout", default=zeroshot_data.AUTO,
                      choices=(zeroshot_data.AUTO, *zeroshot_data.LAYOUTS),
                      help="the layout of --data_dir (default auto: a "
                      "dataset if it holds manifest.json, TFRecords if it "
                      "holds *.tfrecord* files, else image folders)")
  parser.add_argument("--split", metavar="NAME",
                      help="TFRecords: read only *-NAME.tfrecord* files "
                      "(default all); a dataset: its shards of this split "
                      "(default train)")
  parser.add_argument("--image_field", metavar="NAME",
                      help="record field of the image bytes (default "
                      "'image' for TFRecords, 'image/encoded' for datasets)")
  parser.add_argument("--label_field", metavar="NAME",
                      help="record field of the label, an int64 class index "
                      "or a bytes class key (default 'label')")
  parser.add_argument("--batch_size", type=cli.positive_int,
                      default=encoding.DEFAULT_BATCH_SIZE, metavar="N",
                      help="images or prompts per encoding step (default "
                      f"{encoding.DEFAULT_BATCH_SIZE})")
  return parser


def _report_json(results: Mapping[str, Any], model: model_choice.Model,
                 evaluator: ZeroShotEvaluator,
                 args: argparse.Namespace) -> dict[str, Any]:
  images = evaluator.images
  return {
      **model.to_json(),
      "options": {
          "data_dir": files.resolve(images.data_dir),
          "layout": images.layout,
          "classes": {lang: files.resolve(c.path)
                      for lang, c in evaluator.classes.items()},
          "templates": args.templates,
          "langs": list(evaluator.classes),
          "batch_size": evaluator.batch_size,
          "image_size": evaluator.image_size,
          "image_mode": evaluator.image_mode,
          "text_len": evaluator.text_len,
          "lowercase": model.vocabulary.vocabulary.lowercase,
      },
      "protocol": {
          "class_embedding": "L2-normalised mean of the L2-normalised "
                             "embeddings of every template with every "
                             "synonym",
          "ties": TIES,
          "mean": "plain mean over the evaluated languages",
          "chance": "min(k, C) / C for C classes",
      },
      "classes": list(evaluator.class_keys),
      **results,
  }


def evaluate_checkpoint(args: argparse.Namespace) -> dict[str, Any]:
  """Runs the command: evaluates, writes the report files, returns the JSON."""
  progress = functools.partial(print, file=sys.stderr, flush=True)
  images, classes, templates = load_inputs(
      args.data_dir, args.classes, args.templates, _languages(args.lang),
      layout=args.layout, split=args.split, image_field=args.image_field,
      label_field=args.label_field)
  model = model_choice.load_model(args, progress)
  checkpoint, choice = model.checkpoint, model.vocabulary
  num_classes = len(next(iter(classes.values())).keys)
  progress(f"{len(images.ids)} images ({images.layout}), {num_classes} "
           f"classes, {len(classes)} languages, checkpoint "
           f"{checkpoint.path}, vocabulary {choice.vocabulary.name} "
           f"({choice.path})")
  evaluator = ZeroShotEvaluator(images, classes, templates, model.config,
                                choice.vocabulary,
                                image_tower=model.image_tower,
                                batch_size=args.batch_size, progress=progress)
  results = evaluator.evaluate(model.params)
  output = _report_json(results, model, evaluator, args)
  files.makedirs(args.output)
  files.write_json(files.join(args.output, RESULTS_FILE), output)
  table = report.zeroshot_markdown(output)
  files.write_text(files.join(args.output, TABLE_FILE), table)
  report.write_zeroshot_chart(output, files.join(args.output, CHART_FILE))
  print(table, end="")
  progress(f"wrote {files.join(args.output, RESULTS_FILE)}, {TABLE_FILE}, "
           f"{CHART_FILE}")
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
