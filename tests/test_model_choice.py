"""Tests for eval.model_choice without a SigLiT tower: the shared flags,
image preprocessing, and the choice a periodic evaluator makes.

The image-tower rule needs a LiT dataset built by the embedding pipeline; it
is tested with the SigLiT evaluation in tests/test_xm3600_siglit.py.
"""

import json

import ml_collections
import pytest

from dataformat import cli
from eval import model_choice
from tests import test_xm3600
from trainer import configs
from trainer import input_pipeline


def parse(*flags: str):
  parser = cli.ArgumentParser(prog="test")
  model_choice.add_model_arguments(parser)
  return parser.parse_args(["--checkpoint", "c", *flags])


@pytest.mark.parametrize("flags, expected", [
    ([], None), (["--lowercase"], "unicode"), (["--lowercase", "ascii"],
                                               "ascii"),
    (["--no-lowercase"], "none")])
def test_lowercase_flag_takes_a_mode(flags, expected):
  assert parse(*flags).lowercase == expected


def test_model_flags_default_to_the_rules():
  args = parse()
  assert (args.checkpoint, args.config, args.vocab, args.image_tower,
          args.image_tower_config) == ("c", None, None, None, None)


def test_eval_image_mode_is_deterministic():
  data = ml_collections.ConfigDict({"image_mode": input_pipeline.RANDOM_CROP})
  assert model_choice.eval_image_mode(data) == input_pipeline.CENTER_CROP
  data.image_mode = input_pipeline.CENTER_CROP
  assert model_choice.eval_image_mode(data) == input_pipeline.CENTER_CROP
  data.image_mode = input_pipeline.RESIZE_BILINEAR
  assert model_choice.eval_image_mode(data) == input_pipeline.RESIZE_BILINEAR
  assert model_choice.eval_image_mode(configs.base_config().data) == (
      input_pipeline.RESIZE)


def test_a_model_with_its_image_tower_sees_training_images():
  config = test_xm3600.tiny_config()
  config.data.image_mode = input_pipeline.RANDOM_CROP
  assert model_choice.image_preprocessing(config, None) == (
      32, input_pipeline.CENTER_CROP)


def test_periodic_choice_takes_the_entrys_vocabulary(multi_vocab_dir,
                                                     tmp_path):
  card = json.loads((multi_vocab_dir / "vocab.json").read_text())
  test_xm3600.write_manifest(tmp_path / "dataset", card["sha256"])
  config = test_xm3600.tiny_config(tmp_path / "dataset")
  config.evals.xm3600.vocab = str(multi_vocab_dir)
  vocabulary, image_tower = model_choice.periodic_choice(
      config, config.evals.xm3600, tmp_path / "workdir")
  assert (vocabulary.name, vocabulary.sha256, image_tower) == (
      test_xm3600.VOCAB_NAME, card["sha256"], None)
  config.evals.xm3600.vocab = None
  with pytest.raises(ValueError, match="not found under"):
    model_choice.periodic_choice(config, config.evals.xm3600,
                                 tmp_path / "workdir")
