"""Human-readable reports: markdown tables and bar charts.

XM3600: a table and an R@1 chart from the results dict of `eval.xm3600`
("languages" -> per-language recalls and counts, "mean" -> the means).
Zero-shot: a table, the weakest classes, the top confusions and a top-1 /
top-5 chart from the results dict of `eval.zeroshot`. Values are fractions,
shown as percentages.
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


def _paired_bar_figure(languages: list[str],
                       series: list[tuple[str, str, list[float], float, str,
                                          str]],
                       ylabel: str, title: str) -> figure.Figure:
  """Two bars per language, each series with a horizontal reference line.

  `series`: two (label, colour, values, line value, line label, line style).
  """
  positions = np.arange(len(languages))
  width = 0.4
  # A bare Figure draws with Agg and leaves pyplot's global state alone.
  fig = figure.Figure(figsize=(max(6.0, 0.32 * len(languages) + 2), 4.5),
                      layout="constrained")
  ax = fig.subplots()
  for offset, (label, color, values, line, line_label, style) in zip(
      (-width / 2, width / 2), series):
    ax.bar(positions + offset, values, width, color=color, label=label)
    ax.axhline(line, color=color, linestyle=style, linewidth=1,
               label=line_label)
  ax.set_xticks(positions, languages, rotation=90 if len(languages) > 12
                else 0)
  ax.set_xlim(-0.6, len(languages) - 0.4)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  fig.legend(loc="outside lower center", ncols=4, fontsize=8)
  return fig


def recall_figure(results: Mapping[str, Any]) -> figure.Figure:
  """R@1 per language as grouped bars, both directions, with the means."""
  key = retrieval_metrics.recall_key(1)
  languages = list(results["languages"])
  series = []
  for direction, color in ((I2T, "tab:blue"), (T2I, "tab:orange")):
    mean = 100 * results["mean"][direction][key]
    label = _DIRECTION_LABELS[direction]
    series.append((label, color,
                   [100 * results["languages"][lang][direction][key]
                    for lang in languages],
                   mean, f"{label} mean {mean:.1f}", "--"))
  return _paired_bar_figure(
      languages, series, "R@1 (%)",
      f"XM3600 retrieval R@1 over {len(languages)} languages")


def _write_png(fig: figure.Figure, path: str) -> None:
  buffer = io.BytesIO()
  # No "Software" entry, so the file depends only on the numbers.
  fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
  files.write_bytes(path, buffer.getvalue())


def write_recall_chart(results: Mapping[str, Any], path: str) -> None:
  """Writes `recall_figure(results)` as a PNG (local or gs://)."""
  _write_png(recall_figure(results), path)


# Zero-shot classification -------------------------------------------------

_WORST_CLASSES_SHOWN = 10
_CONFUSIONS_SHOWN = 5


def zeroshot_markdown(results: Mapping[str, Any]) -> str:
  """Accuracy per language, the mean and chance; then the classes with the
  lowest top-1 (mean over languages) and each language's top confusions."""
  header = ["Language", "Top-1", "Top-5", "Mean per-class top-1", "Prompts"]
  lines = [f"Zero-shot classification: {results['num_images']} images, "
           f"{results['num_classes']} classes (accuracy in %)", "",
           "| " + " | ".join(header) + " |",
           "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
  languages = results["languages"]
  for lang, row in languages.items():
    lines.append(f"| {lang} | {_percent(row['top1'])} | "
                 f"{_percent(row['top5'])} | "
                 f"{_percent(row['mean_per_class_top1'])} | "
                 f"{row['num_prompts']} |")
  mean, chance = results["mean"], results["chance"]
  lines.append(f"| **mean ({mean['num_languages']})** | "
               f"{_percent(mean['top1'])} | {_percent(mean['top5'])} | "
               f"{_percent(mean['mean_per_class_top1'])} | |")
  lines.append(f"| chance | {_percent(chance['top1'])} | "
               f"{_percent(chance['top5'])} | {_percent(chance['top1'])} | |")

  per_class = {name: float(np.mean([row["per_class"][name]["top1"]
                                    for row in languages.values()]))
               for name in next(iter(languages.values()))["per_class"]}
  worst = sorted(per_class.items(), key=lambda item: item[1])
  lines += ["", f"Lowest per-class top-1 (mean over languages, "
            f"{min(_WORST_CLASSES_SHOWN, len(worst))} of {len(worst)}): "
            + ", ".join(f"{name} {_percent(value)}"
                        for name, value in worst[:_WORST_CLASSES_SHOWN]),
            "", "Most confused (true → predicted, images):"]
  for lang, row in languages.items():
    pairs = row["confusions"][:_CONFUSIONS_SHOWN]
    lines.append(f"- {lang}: " + (", ".join(
        f"{pair['true']} → {pair['predicted']} {pair['count']}"
        for pair in pairs) if pairs else "none"))
  return "\n".join(lines) + "\n"


def zeroshot_figure(results: Mapping[str, Any]) -> figure.Figure:
  """Top-1 and top-5 per language as grouped bars, with chance lines."""
  languages = list(results["languages"])
  series = [(label, color,
             [100 * results["languages"][lang][key] for lang in languages],
             100 * results["chance"][key], f"{label} chance", ":")
            for key, label, color in (("top1", "top-1", "tab:blue"),
                                      ("top5", "top-5", "tab:orange"))]
  fig = _paired_bar_figure(
      languages, series, "accuracy (%)",
      f"Zero-shot classification, {results['num_classes']} classes, "
      f"{len(languages)} language(s)")
  fig.axes[0].set_ylim(0, 100)
  return fig


def write_zeroshot_chart(results: Mapping[str, Any], path: str) -> None:
  """Writes `zeroshot_figure(results)` as a PNG (local or gs://)."""
  _write_png(zeroshot_figure(results), path)
