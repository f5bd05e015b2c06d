"""Drops Beam's notices about optional dependencies that we never use.

Beam 2.77 logs them with `logging.warning`, on the root logger, so a filter
on that logger drops them by their text and passes every other record. Each
package installs it in its `__init__`, before any of its modules imports
Beam.
"""

import logging

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
