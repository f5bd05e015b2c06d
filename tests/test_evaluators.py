"""Tests for trainer/evaluators.py: evaluators found by module name."""

import pytest

from trainer import configs
from trainer import evaluators


class _Named:

  def __init__(self, name: str):
    self.name = name


def evaluator_from_config(config, workdir):
  """This module as an evaluator module: one evaluator per call."""
  return _Named(f"{config.tag}@{workdir}")


def _config(**evals):
  config = configs.base_config()
  config.tag = "t"
  config.evals.update(evals)
  return config


def test_the_default_xm3600_entry_without_data_gives_no_evaluator(tmp_path):
  config = configs.base_config()
  assert config.evals.xm3600.module == "eval.xm3600"
  assert evaluators.from_config(config, tmp_path) == []


def test_each_entry_calls_its_modules_factory(tmp_path):
  config = _config(mine={"module": "tests.test_evaluators"})
  [evaluator] = evaluators.from_config(config, "/w")
  assert evaluator.name == "t@/w"


@pytest.mark.parametrize("module, message", [
    ("", "config.evals.mine.module names no evaluator module"),
    ("eval.no_such_evaluator",
     "config.evals.mine.module: no module 'eval.no_such_evaluator'"),
    ("trainer.losses", "config.evals.mine.module: trainer.losses has no "
     "evaluator_from_config"),
])
def test_bad_module_names_are_one_line_errors(tmp_path, module, message):
  config = _config(mine={"module": module})
  with pytest.raises(ValueError) as e:
    evaluators.from_config(config, tmp_path)
  assert str(e.value) == message
