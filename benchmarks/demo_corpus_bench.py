"""Benchmark: how fast the demo corpus generator writes examples.

Reports, as Markdown on stdout:

- the wall time of `generate_corpus` (median of --repeats runs, each into a
  fresh directory) for 10,000 examples at 64x64 and 1,000 at 640x480, as
  examples per second, and the per-example cost ratio of the two sizes;
- where one example's time goes at each size: the median per-example time of
  each stage (scene sampling, rendering with noise, JPEG encoding, caption),
  timed stage by stage on the same examples.

  python -m benchmarks.demo_corpus_bench [--repeats 3]
"""

import argparse
from collections.abc import Sequence
import statistics
import tempfile
import time

import numpy as np

from demo import captions as demo_captions
from demo import corpus as demo_corpus
from demo import scenes as demo_scenes

# (examples, (width, height)) per configuration.
CONFIGS = ((10000, (64, 64)), (1000, (640, 480)))
STAGE_SAMPLES = 300


def corpus_seconds(num_examples: int, image_size: tuple[int, int],
                   repeats: int) -> list[float]:
  """Wall seconds of each `generate_corpus` run, each in a fresh directory."""
  times = []
  for _ in range(repeats):
    with tempfile.TemporaryDirectory() as out:
      start = time.perf_counter()
      demo_corpus.generate_corpus(out, num_examples=num_examples, seed=0,
                                  image_size=image_size)
      times.append(time.perf_counter() - start)
  return times


def stage_milliseconds(image_size: tuple[int, int]) -> dict[str, float]:
  """Median milliseconds per example of each generation stage."""
  width, height = image_size
  stages = {"sample scene": [], "render + noise": [], "encode JPEG": [],
            "caption": []}
  langs = demo_captions.LANGUAGES
  for index in range(STAGE_SAMPLES):
    rng = np.random.default_rng((0, index))
    t0 = time.perf_counter()
    scene = demo_scenes.sample_scene(rng)
    t1 = time.perf_counter()
    pixels = demo_scenes.render_scene(scene, width, height, rng)
    t2 = time.perf_counter()
    demo_scenes.encode_jpeg(pixels)
    t3 = time.perf_counter()
    demo_captions.describe(scene, langs[index % len(langs)], rng)
    t4 = time.perf_counter()
    for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
      stages[name].append(seconds * 1000)
  return {name: statistics.median(ms) for name, ms in stages.items()}


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=3,
                      help="generate_corpus runs per configuration (median)")
  args = parser.parse_args(argv)

  print("| examples | image size | median s | examples/s | ms/example |")
  print("|---:|---:|---:|---:|---:|")
  per_example = {}
  for num_examples, size in CONFIGS:
    seconds = statistics.median(corpus_seconds(num_examples, size,
                                               args.repeats))
    per_example[size] = seconds / num_examples * 1000
    print(f"| {num_examples} | {size[0]}x{size[1]} | {seconds:.2f} | "
          f"{num_examples / seconds:.0f} | {per_example[size]:.2f} |")
  (small, large) = (size for _, size in CONFIGS)
  print(f"\nper-example cost ratio {large[0]}x{large[1]} / "
        f"{small[0]}x{small[1]}: {per_example[large] / per_example[small]:.1f}"
        f" (pixel ratio {large[0] * large[1] / (small[0] * small[1]):.0f})")

  print("\n| stage | " + " | ".join(f"{w}x{h} ms" for _, (w, h) in CONFIGS)
        + " |")
  print("|---|" + "---:|" * len(CONFIGS))
  stages = [stage_milliseconds(size) for _, size in CONFIGS]
  for name in stages[0]:
    print(f"| {name} | " + " | ".join(f"{s[name]:.3f}" for s in stages)
          + " |")


if __name__ == "__main__":
  main()
