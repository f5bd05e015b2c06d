"""Tests for eval.vocabulary_choice: the vocabulary rule and lowercasing.

A training dataset is a directory holding only the manifest that names the
multilingual vocabulary fixture by sha256; copies of that vocabulary sit
where the search rule looks (or not).
"""

import json
import pathlib
import shutil

import ml_collections
import pytest

from eval import vocabulary_choice
from tests import test_xm3600
from trainer import configs

VOCAB_NAME = test_xm3600.VOCAB_NAME


def data_config(train_dir: pathlib.Path | None) -> ml_collections.ConfigDict:
  """A config whose training dataset is `train_dir`, vocabulary VOCAB_NAME."""
  config = configs.base_config()
  config.data.train_dir = str(train_dir) if train_dir else None
  config.data.vocab_name = VOCAB_NAME
  return config


def card_sha256(vocab_dir: pathlib.Path) -> str:
  return json.loads((vocab_dir / "vocab.json").read_text())["sha256"]


@pytest.fixture
def dataset(tmp_path, multi_vocab_dir) -> pathlib.Path:
  """A dataset whose manifest names the fixture vocabulary; none beside it."""
  test_xm3600.write_manifest(tmp_path / "data" / "dataset",
                             card_sha256(multi_vocab_dir))
  return tmp_path / "data" / "dataset"


def test_vocabulary_rule(dataset, multi_vocab_dir, tmp_path):
  config = data_config(dataset)
  shutil.copytree(multi_vocab_dir, dataset.parent / "vocabs" / VOCAB_NAME)
  found = vocabulary_choice.choose_vocabulary(config)
  assert found.source == "manifest search"
  assert found.path == str(dataset.parent / "vocabs" / VOCAB_NAME)
  assert found.to_json()["verified_against_manifest"] is True

  given = vocabulary_choice.choose_vocabulary(config,
                                               vocab_path=multi_vocab_dir)
  assert (given.source, given.vocabulary.sha256) == (
      "--vocab", found.vocabulary.sha256)

  test_xm3600.write_manifest(tmp_path / "other", "0" * 64)
  other = data_config(tmp_path / "other")
  with pytest.raises(ValueError, match="but the model was trained with "
                     "vocabulary 'multi250k' of sha256 000000000000"):
    vocabulary_choice.choose_vocabulary(other, vocab_path=multi_vocab_dir)
  with pytest.raises(ValueError, match=r"not found under .*; pass --vocab"):
    vocabulary_choice.choose_vocabulary(other, workdir=dataset)
  with pytest.raises(ValueError, match="--vocab is required"):
    vocabulary_choice.choose_vocabulary(data_config(None))


def test_the_search_also_looks_beside_the_workdir(dataset, multi_vocab_dir,
                                                  tmp_path):
  config = data_config(dataset)
  workdir = tmp_path / "runs" / "workdir"
  with pytest.raises(ValueError, match="not found under"):
    vocabulary_choice.choose_vocabulary(config, workdir=workdir)
  # The same name with another checksum is not it.
  stale = shutil.copytree(multi_vocab_dir, tmp_path / "runs" / "stale")
  card = json.loads((stale / "vocab.json").read_text())
  (stale / "vocab.json").write_text(json.dumps(card | {"sha256": "1" * 64}))
  with pytest.raises(ValueError, match="not found under"):
    vocabulary_choice.choose_vocabulary(config, workdir=workdir)
  shutil.copytree(multi_vocab_dir, tmp_path / "runs" / "vocabs" / VOCAB_NAME)
  found = vocabulary_choice.choose_vocabulary(config, workdir=workdir)
  assert found.path == str(tmp_path / "runs" / "vocabs" / VOCAB_NAME)


def test_a_manifest_without_the_vocabulary_is_named(dataset):
  config = data_config(dataset)
  config.data.vocab_name = "en32k"
  with pytest.raises(ValueError) as raised:
    vocabulary_choice.choose_vocabulary(config)
  assert str(raised.value) == (
      f"the training dataset manifest {dataset / 'manifest.json'} lists no "
      "vocabulary 'en32k' (config.data.vocab_name)")


def test_a_missing_manifest_needs_vocab_and_warns(multi_vocab_dir, tmp_path):
  config = data_config(tmp_path / "gone")
  missing = (f"the training dataset manifest {tmp_path / 'gone'}/"
             "manifest.json (config.data.train_dir) does not exist")
  with pytest.raises(ValueError) as raised:
    vocabulary_choice.choose_vocabulary(config)
  assert str(raised.value) == (f"{missing}: it names the vocabulary; pass "
                               "--vocab DIR")
  warnings = []
  given = vocabulary_choice.choose_vocabulary(
      config, vocab_path=multi_vocab_dir, progress=warnings.append)
  assert warnings == [f"warning: --vocab {multi_vocab_dir} is not checked "
                      f"against the training vocabulary: {missing}"]
  assert given.to_json()["verified_against_manifest"] is False


def test_lowercasing_follows_flag_then_config_then_vocabulary(
    multi_vocab_dir):
  config = data_config(None)
  card = json.loads((multi_vocab_dir / "vocab.json").read_text())
  assert card["lowercase"] is True

  def lowercase(**kwargs):
    return vocabulary_choice.choose_vocabulary(
        config, vocab_path=multi_vocab_dir, **kwargs).vocabulary.lowercase

  assert lowercase() is True
  assert lowercase(lowercase=False) is False
  assert lowercase(lowercase="none") is False
  config.data.lowercase = "ascii"
  assert lowercase() == "ascii"
  assert lowercase(lowercase="unicode") is True
  config.data.lowercase = "none"
  assert lowercase() is False
  # Runs saved before the modes existed: True is "unicode", False the card's.
  saved = configs.with_defaults(config.to_dict())
  for old, expected in ((True, True), (False, True)):
    saved.data = ml_collections.ConfigDict({**saved.data.to_dict(),
                                            "lowercase": old})
    assert vocabulary_choice.choose_vocabulary(
        saved, vocab_path=multi_vocab_dir).vocabulary.lowercase is expected
