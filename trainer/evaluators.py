"""Periodic evaluators, found by the module name their config gives.

As in big_vision, each `config.evals.<name>` entry names its module in
`module` (e.g. "eval.xm3600"); the module's `evaluator_from_config(config,
workdir)` returns the evaluator, or None where that evaluation is not set
up. The trainer imports evaluators by name at run time only, so it never
depends on the eval package, which is built on top of it.
"""

from collections.abc import Sequence
import importlib
import os
from typing import Any

import ml_collections


def from_config(config: ml_collections.ConfigDict,
                workdir: str | os.PathLike[str]) -> Sequence[Any]:
  """The evaluators `config.evals` sets up, in its key order.

  Raises:
    ValueError: if an entry names no module, or one without
      `evaluator_from_config`; whatever the factory raises for bad settings.
  """
  evaluators = []
  for name, eval_config in config.evals.items():
    module_name = eval_config.get("module")
    if not module_name:
      raise ValueError(f"config.evals.{name}.module names no evaluator module")
    try:
      module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
      # A dependency the module lacks is its own error, not a bad name.
      if not f"{module_name}.".startswith(f"{e.name}."):
        raise
      raise ValueError(f"config.evals.{name}.module: no module "
                       f"{module_name!r}") from e
    factory = getattr(module, "evaluator_from_config", None)
    if factory is None:
      raise ValueError(f"config.evals.{name}.module: {module_name} has no "
                       "evaluator_from_config")
    evaluator = factory(config, workdir)
    if evaluator is not None:
      evaluators.append(evaluator)
  return evaluators
