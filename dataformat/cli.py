"""What every command shares: one-line errors, exit codes, argument types.

A command's bad arguments print `error: ...` on one line and exit with
`USAGE` (2); a failure of the work itself prints `error: ...` on one line and
exits with `FAILURE` (1). Commands build their parser with `ArgumentParser`
and report a caught error with `fail`.
"""

import argparse
import sys

FAILURE = 1
USAGE = 2


class ArgumentParser(argparse.ArgumentParser):
  """An argparse parser whose errors are one line, `error: ...`, exit 2.

  Abbreviated flags are refused: a misspelt flag must not silently match
  another (Beam's own options are parsed the same way).
  """

  def __init__(self, *args, **kwargs):
    kwargs.setdefault("allow_abbrev", False)
    super().__init__(*args, **kwargs)

  def error(self, message: str):
    self.exit(USAGE, f"error: {message}\n")


def fail(error: BaseException | str) -> int:
  """Prints `error: <first line of error>` on stderr; returns `FAILURE`."""
  text = str(error).strip()
  first_line = text.splitlines()[0] if text else type(error).__name__
  print(f"error: {first_line}", file=sys.stderr)
  return FAILURE


def positive_int(value: str) -> int:
  """An argparse type: an integer >= 1."""
  try:
    number = int(value)
  except ValueError:
    number = 0
  if number < 1:
    raise argparse.ArgumentTypeError(
        f"must be a positive integer, got {value!r}")
  return number


def fraction(value: str) -> float:
  """An argparse type: a number in [0, 1]."""
  try:
    number = float(value)
  except ValueError:
    raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
  if not 0.0 <= number <= 1.0:
    raise argparse.ArgumentTypeError(f"must be in [0, 1], got {number}")
  return number
