"""What a dataset build writes beside its shards: statistics and counts.

The dataset directory's file names, shards and rejected file are the data
format's (`dataformat.shards`); this module adds what only a build knows:
the histograms over kept examples (`stats.png`) and the rejection counts
in the order of the pipeline's checks.
"""

import collections
from collections.abc import Mapping
import dataclasses
import io

from dataformat import files
from pipelines.reasons import REASONS

# Image size histogram cells are this many pixels wide, up to the limit.
IMAGE_SIZE_BIN = 32
IMAGE_SIZE_LIMIT = 2048


@dataclasses.dataclass
class DatasetStats:
  """Histograms over kept examples; merged across shards.

  Attributes:
    languages: examples per language code.
    caption_chars: examples per caption length in characters.
    image_sizes: examples per (width bin, height bin) of the original image,
      bins `IMAGE_SIZE_BIN` pixels wide, the last bin holding all larger.
  """

  languages: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)
  caption_chars: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)
  image_sizes: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)

  def add(self, lang: str, caption_chars: int, height: int,
          width: int) -> None:
    last_bin = IMAGE_SIZE_LIMIT // IMAGE_SIZE_BIN
    self.languages[lang] += 1
    self.caption_chars[caption_chars] += 1
    self.image_sizes[(min(width // IMAGE_SIZE_BIN, last_bin),
                      min(height // IMAGE_SIZE_BIN, last_bin))] += 1

  def merge(self, other: "DatasetStats") -> "DatasetStats":
    self.languages.update(other.languages)
    self.caption_chars.update(other.caption_chars)
    self.image_sizes.update(other.image_sizes)
    return self

  def language_histogram(self) -> dict[str, int]:
    """Examples per language, most frequent first, ties by code."""
    return dict(sorted(self.languages.items(), key=lambda kv: (-kv[1], kv[0])))


def plot_stats(stats: DatasetStats, destination: str, title: str) -> None:
  """Draws the language, caption length and image size histograms as PNG."""
  # A bare Figure (no pyplot) keeps no global state and needs no backend
  # choice; it renders with Agg.
  from matplotlib import figure  # pylint: disable=g-import-not-at-top

  fig = figure.Figure(figsize=(16, 4.5), dpi=80)
  ax_lang, ax_chars, ax_size = fig.subplots(1, 3)
  fig.subplots_adjust(left=0.05, right=0.97, bottom=0.2, top=0.85,
                      wspace=0.25)
  langs = stats.language_histogram()
  ax_lang.bar(list(langs), list(langs.values()), color="tab:blue")
  ax_lang.set_title("Languages")
  ax_lang.set_ylabel("examples")
  ax_lang.tick_params(axis="x", labelrotation=90, labelsize=7)

  if stats.caption_chars:
    lengths = range(max(stats.caption_chars) + 1)
    ax_chars.stairs([stats.caption_chars[n] for n in lengths],
                    [*lengths, len(lengths)], fill=True, color="tab:green")
  ax_chars.set_title("Caption length")
  ax_chars.set_xlabel("characters")
  ax_chars.set_ylabel("examples")

  cells = sorted(stats.image_sizes)
  points = ax_size.scatter(
      [(w + 0.5) * IMAGE_SIZE_BIN for w, _ in cells],
      [(h + 0.5) * IMAGE_SIZE_BIN for _, h in cells],
      c=[stats.image_sizes[c] for c in cells], s=12, marker="s",
      cmap="viridis")
  ax_size.set_title(f"Original image size ({IMAGE_SIZE_BIN} px cells)")
  ax_size.set_xlabel("width")
  ax_size.set_ylabel("height")
  fig.colorbar(points, ax=ax_size, label="examples")
  fig.suptitle(title)
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png")
  files.write_bytes(destination, buffer.getvalue())


def rejected_counts(counts: Mapping[str, int]) -> dict[str, int]:
  """Counts for every reason, in check order, zeros included."""
  unknown = set(counts) - set(REASONS)
  if unknown:
    raise ValueError(f"unknown rejection reasons: {sorted(unknown)}")
  return {str(r): int(counts.get(r, 0)) for r in REASONS}
