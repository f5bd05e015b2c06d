"""Helpers shared by the per-language caption grammars of the demo corpus.

Each grammar module maps language codes to a function `Scene -> tuple[str,
...]` returning every caption variant for the scene (one per template).
"""

from collections.abc import Callable, Mapping

from demo.scenes import Scene

Grammar = Callable[[Scene], tuple[str, ...]]


def forms(keys: str, **words: str) -> dict[str, dict[str, str]]:
  """Inflection table from compact specs.

  `forms("m|f", red="rojo|roja")` -> `{"red": {"m": "rojo", "f": "roja"}}`.
  A spec with a single form is used for every key (indeclinable words).

  Raises:
    ValueError: if a spec has neither one form nor one per key.
  """
  names = keys.split("|")
  table = {}
  for word, spec in words.items():
    values = spec.split("|")
    if len(values) == 1:
      values = values * len(names)
    if len(values) != len(names):
      raise ValueError(f"{word!r}: {len(values)} forms for keys {keys!r}")
    table[word] = dict(zip(names, values))
  return table


def agree(table: Mapping[str, str], gender: str, case: str = "") -> str:
  """The form for `gender` in `case`; a case without its own form uses the
  plain `gender` form (e.g. an accusative equal to the nominative)."""
  return table.get(f"{case} {gender}" if case else gender, table[gender])


def capitalised(text: str) -> str:
  """`text` with its first character upper-cased and the rest untouched."""
  return text[:1].upper() + text[1:]


def by_count(scene: Scene, one: str, several: str) -> str:
  """`one` for a single-shape scene, else `several` (verb agreement)."""
  return one if len(scene.shapes) == 1 else several
