"""Human-readable XM3600 reports: a markdown table and an R@1 bar chart.

Both read the results dict of `eval.xm3600` ("languages" -> per-language
recalls and counts, "mean" -> the means), with recalls as fractions; both
show them as percentages.
"""

from collections.abc import Mapping
import io
from typing import Any

from matplotlib import figure
import numpy as np

from dataformat import files
from eval import retrieval_metrics

I2T, T2I = retrieval_metrics.I2T, retrieval_metrics.T2I
_DIRECTION_LABELS = {I2T: "I→T", T2I: "T→I"}


def _percent(value: float) -> str:
  return f"{100 * value:.1f}"


def markdown_table(results: Mapping[str, Any]) -> str:
  """One row per language in report order, then the mean row and chance."""
  keys = [retrieval_metrics.recall_key(k) for k in retrieval_metrics.KS]
  header = ["Language"] + [
      f"{_DIRECTION_LABELS[direction]} R@{key[1:]}"
      for direction in retrieval_metrics.DIRECTIONS for key in keys
  ] + ["Images", "Captions"]
  lines = ["| " + " | ".join(header) + " |",
           "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]

  def row(name: str, recalls: Mapping[str, Any], counts: list[str]) -> str:
    cells = [name] + [_percent(recalls[direction][key])
                      for direction in retrieval_metrics.DIRECTIONS
                      for key in keys] + counts
    return "| " + " | ".join(cells) + " |"

  languages = results["languages"]
  for lang, recalls in languages.items():
    lines.append(row(lang, recalls, [str(recalls["num_images"]),
                                     str(recalls["num_captions"])]))
  mean = results["mean"]
  lines.append(row(f"**mean ({mean['num_languages']})**", mean, ["", ""]))
  lines.append(row("chance (mean)", mean["chance"], ["", ""]))
  return "\n".join(lines) + "\n"


def recall_figure(results: Mapping[str, Any]) -> figure.Figure:
  """R@1 per language as grouped bars, both directions, with the means."""
  key = retrieval_metrics.recall_key(1)
  languages = list(results["languages"])
  positions = np.arange(len(languages))
  width = 0.4
  # A bare Figure draws with Agg and leaves pyplot's global state alone.
  fig = figure.Figure(figsize=(max(6.0, 0.32 * len(languages) + 2), 4.5),
                      layout="constrained")
  ax = fig.subplots()
  for offset, (direction, color) in zip(
      (-width / 2, width / 2), ((I2T, "tab:blue"), (T2I, "tab:orange"))):
    values = [100 * results["languages"][lang][direction][key]
              for lang in languages]
    mean = 100 * results["mean"][direction][key]
    label = _DIRECTION_LABELS[direction]
    ax.bar(positions + offset, values, width, color=color, label=label)
    ax.axhline(mean, color=color, linestyle="--", linewidth=1,
               label=f"{label} mean {mean:.1f}")
  ax.set_xticks(positions, languages, rotation=90 if len(languages) > 12
                else 0)
  ax.set_xlim(-0.6, len(languages) - 0.4)
  ax.set_ylabel("R@1 (%)")
  ax.set_title(f"XM3600 retrieval R@1 over {len(languages)} languages")
  fig.legend(loc="outside lower center", ncols=4, fontsize=8)
  return fig


def write_recall_chart(results: Mapping[str, Any], path: str) -> None:
  """Writes `recall_figure(results)` as a PNG (local or gs://)."""
  buffer = io.BytesIO()
  # No "Software" entry, so the file depends only on the numbers.
  recall_figure(results).savefig(buffer, format="png", dpi=100,
                                 metadata={"Software": None})
  files.write_bytes(path, buffer.getvalue())
