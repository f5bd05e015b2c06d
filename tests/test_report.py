"""Tests for eval.report."""

from eval import report


def recalls(r1, r5, r10):
  return {"r1": r1, "r5": r5, "r10": r10}


RESULTS = {
    "languages": {
        "de": {"i2t": recalls(0.5, 0.75, 1.0), "t2i": recalls(0.25, 0.5, 1.0),
               "num_images": 4, "num_captions": 8},
        "quz": {"i2t": recalls(0.0, 0.5, 0.5), "t2i": recalls(0.125, 0.5, 1),
                "num_images": 4, "num_captions": 4},
    },
    "mean": {"i2t": recalls(0.25, 0.625, 0.75),
             "t2i": recalls(0.1875, 0.5, 1.0),
             "chance": {"i2t": recalls(0.375, 1.0, 1.0),
                        "t2i": recalls(0.25, 1.0, 1.0)},
             "num_languages": 2},
}


def test_markdown_table_in_percent_with_mean_and_chance_rows():
  assert report.markdown_table(RESULTS) == (
      "| Language | I→T R@1 | I→T R@5 | I→T R@10 | T→I R@1 | T→I R@5 | "
      "T→I R@10 | Images | Captions |\n"
      "|:---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
      "| de | 50.0 | 75.0 | 100.0 | 25.0 | 50.0 | 100.0 | 4 | 8 |\n"
      "| quz | 0.0 | 50.0 | 50.0 | 12.5 | 50.0 | 100.0 | 4 | 4 |\n"
      "| **mean (2)** | 25.0 | 62.5 | 75.0 | 18.8 | 50.0 | 100.0 |  |  |\n"
      "| chance (mean) | 37.5 | 100.0 | 100.0 | 25.0 | 100.0 | 100.0 |  |  |\n")


def test_chart_has_both_directions_for_every_language(tmp_path):
  (ax,) = report.recall_figure(RESULTS).axes
  assert [t.get_text() for t in ax.get_xticklabels()] == ["de", "quz"]
  heights = [patch.get_height() for patch in ax.patches]
  assert heights == [50.0, 0.0, 25.0, 12.5]
  assert [line.get_ydata()[0] for line in ax.lines] == [25.0, 18.75]
  path = tmp_path / "chart.png"
  report.write_recall_chart(RESULTS, path)
  first = path.read_bytes()
  report.write_recall_chart(RESULTS, path)
  assert path.read_bytes() == first
  assert first[:8] == b"\x89PNG\r\n\x1a\n"
