"""Quiet start-up: library notices that say nothing to a user are dropped.

Beam 2.77 logs notices about optional dependencies that we never use with
`logging.warning`, on the root logger, so a filter on that logger drops them
by their text and passes every other record. TensorFlow, which nothing here
computes with but which etils loads for gs:// paths (orbax's checkpoints),
prints oneDNN and CPU-feature lines when it loads, at any Python log level;
environment variables, inherited by worker processes, keep them off. The
pipelines package does both in its `__init__`; every command that runs Beam
(pipelines', `vocabularies.train_vocab`, `eval.xm3600`, `demo.corpus`) imports
it before building a pipeline. The trainer, which needs neither Beam nor
TensorFlow, does not.
"""

import logging
import os

# The start of each notice's message.
_NOTICES = (
    # On importing Beam: its BigQuery client needs apitools (the gcp extra).
    "apitools not found",
    # At each RunInference model load: its memory accounting needs torch.
    "Resource module is not available",
)


def _is_not_a_notice(record: logging.LogRecord) -> bool:
  return not record.getMessage().startswith(_NOTICES)


def drop_notices() -> None:
  """Installs the filter on the root logger; installing it again does nothing."""
  logging.getLogger().addFilter(_is_not_a_notice)


def quiet_tensorflow() -> None:
  """Keeps TensorFlow's C++ start-up lines off stderr, here and in children.

  Values the user set are kept.
  """
  # The oneDNN notice is printed before TF_CPP_MIN_LOG_LEVEL takes effect.
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
