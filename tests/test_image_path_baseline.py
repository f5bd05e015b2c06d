"""The benchmark's old image kernel (benchmarks/baseline_image_path.py).

It swaps the dataset build's image functions for the Pillow ones they
replaced and must keep up with the build around them: the same corpus gives
the same counts, rejection reasons and languages through either kernel.
"""

import io
import os
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from benchmarks import baseline_image_path
from dataformat import image_codec
from dataformat import manifest as manifest_lib
from dataformat import shards
from pipelines import images

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


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_the_old_kernel_decodes_with_pillow(image_format, monkeypatch):
  def refuse(*unused_args, **unused_kwargs):
    raise AssertionError("a fast decoder ran")

  for name in ("decode_jpeg", "decode_png", "decode_webp"):
    monkeypatch.setattr(image_codec, name, refuse)
  buffer = io.BytesIO()
  pixels = np.random.default_rng(0).integers(0, 256, (12, 20, 3), np.uint8)
  Image.fromarray(pixels).save(buffer, format=image_format)
  with baseline_image_path.installed():
    decoded = images.decode_image(buffer.getvalue())
  assert decoded.format == image_format and decoded.pixels.shape == (12, 20, 3)
