"""Benchmark: SigLiT versus SigLIP training steps per second.

SigLiT trains a text tower against precomputed image embeddings (a LiT
dataset: records with `image/embedding`), with no image decoding and no image
tower; SigLIP trains both towers from JPEGs. Both run through the real
trainer (`trainer.train.train_and_evaluate`: the Grain input pipeline, the
jitted train step and the loop users run) with the same text tower, batch
size, text length, optimiser and devices. Pairs:

- demo: `demo_tiny` (64 px, 4-layer 96-wide ViT) versus `demo_siglit` (96-d
  embeddings); batch 64, 48 tokens; windows of 20 steps.
- b16: `siglip_b16` with its B/16 image tower at 224 px cut to `--b16_depth`
  encoder blocks (width 768, 12 heads, MLP 3072, 196 patches, MAP pooling)
  versus `siglit` (768-d embeddings); both with a small text tower (2 blocks,
  width 384, 32k vocabulary) over 16 tokens and batch `--b16_batch`; windows
  of 3 steps.

The SigLiT side is the SigLIP config with the image side (image field, tower,
head) of the SigLiT config, so that nothing else differs.

A third variant per pair, siglip-fixed-batch, is SigLIP with the input
iterator replaced by one that returns its first batch at every step (still
copied to the devices each step): the same training step without any JPEG
decoding, which splits SigLIP's extra time into input work (siglip minus
siglip-fixed-batch) and the image tower's forward, backward and update
(siglip-fixed-batch minus siglit).

Each run trains `--windows` + 1 windows of `log_every` steps in a fresh
workdir; the first window holds the compilation and is dropped. Steps/s and
the data-wait fraction are what the trainer logged for each window. The
variants take turns within each of `--rounds` rounds; medians are over all
timed windows of all rounds. CPU seconds per step (this process, its threads
and any worker processes) are read at the same window boundaries.

The datasets are written here (reused if present): each SigLIP record holds
a JPEG stored as `pipelines.build_dataset` stores images (shorter side
downsized to 256, quality 95), demo-corpus scenes at 64x64 for demo and
photo-like 640x480 images (341x256 stored) for b16; its LiT twin holds the
same tokens and a random unit vector as the embedding (the values do not
change the speed).

  python -m benchmarks.siglit_bench [--pairs demo,b16] [--rounds 3] \
      [--windows 3] [--b16_depth 2] [--b16_batch 16]
"""

import os

# The simulated devices must exist before JAX is first imported.
if "xla_force_host_platform_device_count" not in os.environ.get(
    "XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_force_host_platform_device_count=8")

import argparse  # pylint: disable=g-import-not-at-top
from collections.abc import Callable
import copy
import dataclasses
import functools
import pathlib
import statistics
import time
from typing import Any
from unittest import mock

import grain
import jax
import ml_collections
import numpy as np

from benchmarks import loader_bench
from benchmarks import train_bench
from dataformat import files
from dataformat import records
from dataformat import shards
from demo import scenes as demo_scenes
from pipelines import images
from vocabularies import vocabulary
from trainer import configs
from trainer import input_pipeline
from trainer import train
from trainer.configs import demo_siglit
from trainer.configs import demo_tiny
from trainer.configs import siglip_b16
from trainer.configs import siglit

VOCAB = "bench"
NUM_RECORDS = 512
NUM_SHARDS = 4
# Distinct images; records cycle through them (decoding costs the same).
DISTINCT_IMAGES = 64
SIGLIP, FIXED, SIGLIT = "siglip", "siglip-fixed-batch", "siglit"
VARIANTS = (SIGLIP, FIXED, SIGLIT)


@dataclasses.dataclass(frozen=True)
class Pair:
  """A SigLIP config, its SigLiT twin and the raw images of their dataset."""

  siglip: ml_collections.ConfigDict
  siglit: ml_collections.ConfigDict
  raw_image: Callable[[np.random.Generator], np.ndarray]  # RGB pixels.


def _demo_scene(rng: np.random.Generator) -> np.ndarray:
  # The demo corpus renders its scenes at 64x64.
  return demo_scenes.render_scene(demo_scenes.sample_scene(rng), 64, 64, rng)


def _photo(rng: np.random.Generator) -> np.ndarray:
  return images.decode_image(loader_bench.photo_jpeg(rng)).pixels


def _twin(siglip_config: ml_collections.ConfigDict,
          siglit_config: ml_collections.ConfigDict
          ) -> ml_collections.ConfigDict:
  """SigLIP's config with the image side (field, tower, head) of SigLiT's."""
  config = copy.deepcopy(siglip_config)
  config.data.image_field = siglit_config.data.image_field
  config.model.image = siglit_config.model.image
  config.model.out_dim = siglit_config.model.out_dim
  return config


def make_pairs(b16_depth: int, b16_batch: int) -> dict[str, Pair]:
  """The benchmark's pairs, from the real config files."""
  demo = demo_tiny.get_config()
  demo.log_every = 20
  b16 = siglip_b16.get_config()
  b16.batch_size = b16_batch
  b16.model.image.depth = b16_depth
  b16.model.text = configs.text_tower(
      width=384, depth=2, mlp_dim=1536, num_heads=6, vocab_size=32_000)
  b16.log_every = 3
  return {
      "demo": Pair(demo, _twin(demo, demo_siglit.get_config()), _demo_scene),
      "b16": Pair(b16, _twin(b16, siglit.get_config()), _photo),
  }


def write_datasets(directory: pathlib.Path, pair: Pair) -> tuple[str, str]:
  """(SigLIP dataset, LiT dataset) directories, written unless there."""
  jpeg_dir, lit_dir = directory / "jpeg", directory / "lit"
  if (jpeg_dir / shards.COMPLETED).exists() and (
      lit_dir / shards.COMPLETED).exists():
    return str(jpeg_dir), str(lit_dir)
  rng = np.random.default_rng(0)
  jpegs = []
  for _ in range(DISTINCT_IMAGES):
    pixels = images.resize_shorter_side(pair.raw_image(rng),
                                        images.DEFAULT_SHORTER_SIDE)
    jpegs.append((images.encode_jpeg(pixels), pixels.shape[:2]))
  embedding_dim = pair.siglit.model.out_dim[1]
  vocab_size = pair.siglip.model.text.vocab_size
  with_jpeg, with_embedding = [], []
  for i in range(NUM_RECORDS):
    tokens = list(rng.integers(3, vocab_size, rng.integers(4, 24)))
    record = records.Record(key=f"{i:08d}", text=f"caption {i}", lang="en",
                            tokens={VOCAB: tokens + [vocabulary.EOS_ID]})
    jpeg, (height, width) = jpegs[i % DISTINCT_IMAGES]
    with_jpeg.append(records.serialize_record(dataclasses.replace(
        record, image_encoded=jpeg, image_height=height, image_width=width)))
    embedding = rng.standard_normal(embedding_dim).astype(np.float32)
    with_embedding.append(records.serialize_record(dataclasses.replace(
        record, image_embedding=embedding / np.linalg.norm(embedding))))
  for out, serialized in ((jpeg_dir, with_jpeg), (lit_dir, with_embedding)):
    out.mkdir(parents=True, exist_ok=True)
    for shard in range(NUM_SHARDS):
      shards.write_array_record(
          str(out / shards.shard_name("train", shard, NUM_SHARDS)),
          serialized[shard::NUM_SHARDS])
    shards.write_completed(str(out))
  return str(jpeg_dir), str(lit_dir)


class FirstBatchForever(grain.DatasetIterator):
  """Returns its parent's first batch at every step: no input work after it.

  Checkpoints save the parent's state, as the trainer saves a real iterator.
  """

  def __init__(self, parent: grain.DatasetIterator):
    super().__init__(parent)
    self._batch = None

  def __next__(self) -> Any:
    if self._batch is None:
      self._batch = next(self._parent)
    return self._batch

  def get_state(self) -> dict[str, Any]:
    return self._parent.get_state()

  def set_state(self, state: dict[str, Any]) -> None:
    self._parent.set_state(state)


class CpuClock:
  """An "evaluator" that logs this process's CPU seconds at each log step.

  The trainer runs evaluators at the end of the step, outside its timed
  window, and writes what they return to TensorBoard next to the window's
  rate; the differences are CPU seconds per window, which the other jobs on
  this shared machine disturb less than wall time.
  """

  name = "cpu"

  def __init__(self, every: int):
    self.every = every

  def run(self, params: Any) -> dict[str, float]:
    del params
    return {"seconds": loader_bench.cpu_seconds()}


def run_variant(config: ml_collections.ConfigDict, fixed_batch: bool,
                windows: int) -> dict[str, Any]:
  """Trains `windows` + 1 logging windows; per timed window steps/s etc."""
  config = copy.deepcopy(config)
  config.total_steps = config.log_every * (windows + 1)
  # Must fit in the short run; the schedule does not change a step's cost.
  config.optim.warmup_steps = config.total_steps // 2
  config.checkpoint_every = 0  # The trainer still saves at the last step.
  config.keep_checkpoints = 1
  real = input_pipeline.make_train_iterator
  make_iterator = ((lambda *args, **kwargs: FirstBatchForever(
      real(*args, **kwargs))) if fixed_batch else real)
  with_clock = functools.partial(train.train_and_evaluate,
                                 evaluators=[CpuClock(config.log_every)])
  with mock.patch.object(input_pipeline, "make_train_iterator",
                         make_iterator), mock.patch.object(
                             train, "train_and_evaluate", with_clock):
    scalars = train_bench.run_demo(config)["scalars"]
  rates = [v for _, v in scalars["perf/examples_per_sec"]]
  cpu = [v for _, v in scalars["cpu/seconds"]]
  return {
      "steps_per_s": [r / config.batch_size for r in rates[1:]],
      "wait": [v for _, v in scalars["perf/data_wait_fraction"]][1:],
      "cpu_s_per_step": [(b - a) / config.log_every
                         for a, b in zip(cpu, cpu[1:])],
      "first_window_s": config.log_every * config.batch_size / rates[0],
  }


def input_ms_per_example(data_config: ml_collections.ConfigDict,
                         num_examples: int = 256) -> float:
  """Single-thread ms per example of the trainer's input map.

  Read, parse, then decode and resize the JPEG or copy the embedding, and pad
  the tokens (`input_pipeline.make_train_dataset`, element by element).
  """
  dataset = input_pipeline.make_train_dataset(data_config, seed=0)
  _ = dataset[0]  # Opens the shards.
  began = time.perf_counter()
  for index in range(1, num_examples + 1):
    _ = dataset[index]
  return 1e3 * (time.perf_counter() - began) / num_examples


def _median(runs: list[dict[str, Any]], key: str) -> float:
  """Median of `key` over all timed windows of `runs`."""
  return statistics.median(v for run in runs for v in run[key])


def markdown_table(results: dict[str, dict[str, list[dict]]]) -> str:
  """One row per (pair, variant), with ratios to the pair's SigLIP."""
  lines = [
      "| pair | variant | steps/s (median) | x siglip | wall s/step | "
      "CPU s/step (median) | x siglip | data wait % (median) | "
      "steps/s per round | first window s |",
      "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for name, by_variant in results.items():
    base_rate = _median(by_variant[SIGLIP], "steps_per_s")
    base_cpu = _median(by_variant[SIGLIP], "cpu_s_per_step")
    for variant, runs in by_variant.items():
      rate, cpu = (_median(runs, "steps_per_s"),
                   _median(runs, "cpu_s_per_step"))
      per_round = ", ".join(f"{_median([r], 'steps_per_s'):.3f}"
                            for r in runs)
      first = ", ".join(f"{r['first_window_s']:.0f}" for r in runs)
      lines.append(
          f"| {name} | {variant} | {rate:.3f} | {rate / base_rate:.2f} | "
          f"{1 / rate:.3f} | {cpu:.3f} | {cpu / base_cpu:.2f} | "
          f"{100 * _median(runs, 'wait'):.1f} | {per_round} | {first} |")
  return "\n".join(lines)


def breakdown(results: dict[str, dict[str, list[dict]]]) -> str:
  """Where SigLIP's extra seconds per step go, in wall and CPU time."""
  lines = ["| pair | time | SigLIP - SigLiT s/step | input work (siglip - "
           "fixed-batch) | image tower (fixed-batch - siglit) |",
           "|---|---|---|---|---|"]
  for name, by_variant in results.items():
    for label, seconds_of in (
        ("wall", lambda runs: 1 / _median(runs, "steps_per_s")),
        ("CPU", lambda runs: _median(runs, "cpu_s_per_step"))):
      seconds = {v: seconds_of(runs) for v, runs in by_variant.items()}
      extra = seconds[SIGLIP] - seconds[SIGLIT]
      parts = (seconds[SIGLIP] - seconds[FIXED],
               seconds[FIXED] - seconds[SIGLIT])
      lines.append(f"| {name} | {label} | {extra:.3f} | " + " | ".join(
          f"{p:.3f} ({100 * p / extra:.0f}%)" for p in parts) + " |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--pairs", default="demo,b16",
                      help="comma-separated pairs: demo, b16")
  parser.add_argument("--rounds", type=int, default=3,
                      help="rounds; the variants take turns in each")
  parser.add_argument("--windows", type=int, default=3,
                      help="timed logging windows per run")
  parser.add_argument("--b16_depth", type=int, default=2,
                      help="encoder blocks of the b16 pair's image tower")
  parser.add_argument("--b16_batch", type=int, default=16,
                      help="global batch of the b16 pair")
  parser.add_argument("--data_dir", default="/tmp/siglit_bench_data",
                      help="where the datasets are written (reused if there)")
  args = parser.parse_args()
  all_pairs = make_pairs(args.b16_depth, args.b16_batch)
  pairs = {name: all_pairs[name] for name in args.pairs.split(",")}
  print(f"{jax.device_count()} devices; load average at start "
        f"{os.getloadavg()}", flush=True)

  variants = {}
  for name, pair in pairs.items():
    jpeg_dir, lit_dir = write_datasets(
        pathlib.Path(args.data_dir) / f"{name}-{NUM_RECORDS}", pair)
    for config, train_dir in ((pair.siglip, jpeg_dir),
                              (pair.siglit, lit_dir)):
      config.data.train_dir = train_dir
      config.data.vocab_name = VOCAB
    variants[name] = {SIGLIP: (pair.siglip, False),
                      FIXED: (pair.siglip, True),
                      SIGLIT: (pair.siglit, False)}

  results = {name: {v: [] for v in VARIANTS} for name in pairs}
  for round_index in range(args.rounds):
    for name, by_variant in variants.items():
      for variant, (config, fixed) in by_variant.items():
        began = time.perf_counter()
        run = run_variant(config, fixed, args.windows)
        results[name][variant].append(run)
        print(f"round {round_index + 1}: {name} {variant}: steps/s "
              f"{', '.join(f'{r:.3f}' for r in run['steps_per_s'])}; CPU "
              f"s/step {', '.join(f'{c:.3f}' for c in run['cpu_s_per_step'])}"
              f"; wait % {', '.join(f'{100 * w:.1f}' for w in run['wait'])} "
              f"({time.perf_counter() - began:.0f} s)", flush=True)

  print(f"\nload average at end {os.getloadavg()}\n")
  print(markdown_table(results))
  print()
  print(breakdown(results))
  print("\n| pair | input map ms/example, JPEG (single thread) | "
        "embedding |\n|---|---|---|")
  for name, pair in pairs.items():
    print(f"| {name} | {input_ms_per_example(pair.siglip.data):.3f} | "
          f"{input_ms_per_example(pair.siglit.data):.3f} |")


if __name__ == "__main__":
  main()
