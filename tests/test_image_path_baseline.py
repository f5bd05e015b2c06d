"""The benchmark's old image kernel (benchmarks/baseline_image_path.py).

It swaps the dataset build's image functions for the Pillow ones they
replaced and must keep up with the build around them: the same corpus gives
the same counts, rejection reasons and languages through either kernel.
"""

import os
import pathlib
import subprocess
import sys

import pytest

from dataformat import manifest as manifest_lib
from dataformat import shards

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _build(module: str, corpus_dir: pathlib.Path,
           output: pathlib.Path) -> manifest_lib.Manifest:
  result = subprocess.run(
      [sys.executable, "-m", module, "--input", f"{corpus_dir}/*.tar",
       "--output", str(output)],
      cwd=ROOT, capture_output=True, text=True,
      env={**os.environ, "PYTHONPATH": str(ROOT)})
  assert result.returncode == 0, result.stderr[-3000:]
  return manifest_lib.read(str(output / shards.MANIFEST))


@pytest.mark.slow
def test_the_old_kernel_builds_what_the_new_one_does(demo_corpus, tmp_path):
  old = _build("benchmarks.baseline_image_path", demo_corpus.output_dir,
               tmp_path / "old")
  new = _build("pipelines.build_dataset", demo_corpus.output_dir,
               tmp_path / "new")
  assert old.counts == new.counts
  assert old.counts.read == old.counts.kept + old.counts.rejected_total
  assert old.counts.rejected_total > 0
  assert old.languages == new.languages
