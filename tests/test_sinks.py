"""Tests for pipelines.sinks: the build's statistics and rejection counts."""

import pytest

from pipelines import sinks
from pipelines.reasons import REASONS


def test_rejected_counts_lists_every_reason_in_order():
  counts = sinks.rejected_counts({"empty_caption": 2})
  assert list(counts) == [str(r) for r in REASONS]
  assert counts["empty_caption"] == 2 and sum(counts.values()) == 2
  with pytest.raises(ValueError, match="unknown rejection reasons"):
    sinks.rejected_counts({"cosmic_rays": 1})


def test_dataset_stats_merge_and_language_order():
  a, b = sinks.DatasetStats(), sinks.DatasetStats()
  a.add("en", 10, 480, 640)
  a.add("de", 12, 5000, 40)
  b.add("de", 12, 33, 33)
  b.add("fr", 3, 64, 64)
  merged = a.merge(b)
  assert merged.language_histogram() == {"de": 2, "en": 1, "fr": 1}
  assert list(merged.language_histogram()) == ["de", "en", "fr"]
  assert merged.caption_chars == {10: 1, 12: 2, 3: 1}
  assert merged.image_sizes[(20, 15)] == 1
  assert merged.image_sizes[(1, 64)] == 1  # Height clipped to the last bin.


def test_plot_stats_writes_a_deterministic_png(tmp_path):
  stats = sinks.DatasetStats()
  for i in range(50):
    stats.add(["en", "de", "ja"][i % 3], 5 + i, 100 + 10 * i, 200 + 7 * i)
  paths = [str(tmp_path / f"{i}.png") for i in range(2)]
  for path in paths:
    sinks.plot_stats(stats, path, "train: 50 examples")
  data = [open(p, "rb").read() for p in paths]
  assert data[0].startswith(b"\x89PNG\r\n\x1a\n")
  assert data[0] == data[1]
