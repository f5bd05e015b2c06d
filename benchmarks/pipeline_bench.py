"""Benchmark: dataset build throughput against the kernel limit.

Generates the demo corpus at 640x480 and trains two small vocabularies on it
(an `en32k`-preset one and a `multi250k`-preset one, as the test fixtures
do), then reports, as Markdown on stdout:

- the kernel limit: examples/s of `process.process_batch` (decode, filter,
  tag, tokenize with both vocabularies, resize, encode) over the examples
  held in memory, in a plain Python loop without Beam, in batches of
  `build_dataset.BATCH_SIZE`;
- the same kernel on each half of the examples in two forked processes:
  what two cores give on this (shared) machine;
- examples/s of the whole pipeline (`python -m pipelines.build_dataset`, from
  process start to exit: imports, reading the tars, the kernel, dedup,
  sharding, writing, manifest, plot) with one worker
  (the FnApiRunner in process) and with two worker processes
  (`--direct_num_workers 2 --direct_running_mode multi_processing`), and
  the ratios pipeline / kernel and two workers / one;
- the per-example time at scale: the slope from runs of the same
  configurations on the first quarter of the corpus (`benchmarks.marginal`);
- CPU seconds (this process and its worker processes), which the machine's
  other load changes less than wall time;
- where one example's time goes: each kernel stage timed on its own.

The configurations take turns within each repeat, so load from other
processes on the machine falls on all alike; each figure is a median.

  python -m benchmarks.pipeline_bench [--num_examples 2000] [--repeats 3]
"""

import argparse
from collections.abc import Callable, Sequence
import copy
import multiprocessing
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

from benchmarks import marginal
from dataformat import records
from demo import corpus as demo_corpus
from pipelines import build_dataset
from pipelines import captions
from pipelines import images
from pipelines import langid
from pipelines import process
from pipelines.readers import dispatch
from pipelines.readers.common import RawExample
from pipelines.reasons import Rejection
from vocabularies import train_vocab
from vocabularies.vocabulary import Vocabulary

IMAGE_SIZE = (640, 480)
EXAMPLES_PER_SHARD = 250
# (preset, pieces): what the 640x480 demo captions support, as in the tests.
VOCABULARIES = (("en32k", 48), ("multi250k", 1000))
STAGE_SAMPLES = 300
KERNEL = "kernel (plain loop)"
KERNEL_TWO = "kernel, 2 processes"
ONE = "pipeline, 1 worker"
TWO = "pipeline, 2 workers"
ONE_PART = "pipeline, 1 worker, first quarter"
TWO_PART = "pipeline, 2 workers, first quarter"


def make_inputs(work: pathlib.Path, num_examples: int) -> tuple[
    demo_corpus.CorpusSummary, pathlib.Path, int, list[str]]:
  """The corpus, its first quarter (directory, examples) and vocabulary
  dirs."""
  corpus = demo_corpus.generate_corpus(
      work / "corpus", num_examples=num_examples, seed=0,
      image_size=IMAGE_SIZE, examples_per_shard=EXAMPLES_PER_SHARD)
  part = work / "part"
  n_part = marginal.first_part(pathlib.Path(corpus.output_dir), part)
  vocab_dirs = []
  for preset, size in VOCABULARIES:
    output = work / preset
    train_vocab.train_vocabulary(train_vocab.TrainingOptions(
        input_patterns=(str(work / "corpus" / "*.tar"),),
        output_dir=str(output), preset=train_vocab.PRESETS[preset],
        vocab_size=size, name=preset))
    vocab_dirs.append(str(output))
  return corpus, part, n_part, vocab_dirs


class Timing(NamedTuple):
  """Wall seconds and CPU seconds (this process and its finished children)."""

  wall: float
  cpu: float


def _cpu_seconds() -> float:
  usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                resource.RUSAGE_CHILDREN)]
  return sum(u.ru_utime + u.ru_stime for u in usage)


def timed(function: Callable[[], object]) -> Timing:
  wall, cpu = time.perf_counter(), _cpu_seconds()
  function()
  return Timing(time.perf_counter() - wall, _cpu_seconds() - cpu)


def run_pipeline(corpus_dir: str, output: pathlib.Path,
                 vocab_dirs: Sequence[str], extra: Sequence[str]) -> None:
  """One `python -m pipelines.build_dataset` run, as a user starts it."""
  argv = [sys.executable, "-m", "pipelines.build_dataset", "--input",
          f"{corpus_dir}/*.tar", "--output", str(output), "--num_shards",
          "8", "--overwrite"]
  for vocab_dir in vocab_dirs:
    argv += ["--vocab", vocab_dir]
  subprocess.run(argv + list(extra), check=True, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)


def run_kernel(raws: Sequence[RawExample],
               identifier: langid.LanguageIdentifier,
               vocabularies: Sequence[Vocabulary]) -> None:
  """`process_batch` over all examples, batch by batch."""
  config = process.ProcessConfig()
  batch = build_dataset.BATCH_SIZE
  for i in range(0, len(raws), batch):
    process.process_batch(raws[i:i + batch], config, identifier, vocabularies)


def _run_kernel_after_fork(raws: Sequence[RawExample],
                           identifier: langid.LanguageIdentifier,
                           vocabularies: Sequence[Vocabulary]) -> None:
  # A forked child has none of the parent's threads: the vocabularies' thread
  # pools must be made anew (copying a Vocabulary rebuilds it).
  run_kernel(raws, identifier, [copy.deepcopy(v) for v in vocabularies])


def run_kernel_in_two_processes(raws: Sequence[RawExample],
                                identifier: langid.LanguageIdentifier,
                                vocabularies: Sequence[Vocabulary]) -> None:
  """`run_kernel` on each half of the examples, in two forked processes.

  The children inherit the loaded examples and models, so this measures what
  two cores give for the kernel alone on this machine, with its other load.
  """
  context = multiprocessing.get_context("fork")
  halves = (raws[:len(raws) // 2], raws[len(raws) // 2:])
  workers = [context.Process(target=_run_kernel_after_fork,
                             args=(half, identifier, vocabularies))
             for half in halves]
  for worker in workers:
    worker.start()
  for worker in workers:
    worker.join()


def _median_ms(function: Callable, inputs: Sequence) -> float:
  times = []
  for value in inputs:
    start = time.perf_counter()
    function(value)
    times.append(time.perf_counter() - start)
  return 1000 * statistics.median(times)


def stage_milliseconds(raws: Sequence[RawExample],
                       identifier: langid.LanguageIdentifier,
                       vocabularies: Sequence[Vocabulary]) -> dict[str, float]:
  """Median milliseconds per example of each kernel stage, timed alone."""
  clean = []
  for raw in raws:
    try:
      decoded = images.decode_image(raw.image)
      text = captions.decode_caption(raw.caption)
    except Rejection:
      continue
    clean.append((raw, decoded, text))
    if len(clean) == STAGE_SAMPLES:
      break
  resized = [images.resize_shorter_side(d.pixels, 256) for _, d, _ in clean]
  texts = [t for _, _, t in clean]
  config = process.ProcessConfig()
  kept = [r for r in process.process_batch([r for r, _, _ in clean], config,
                                           identifier, vocabularies)
          if isinstance(r, records.Record)]
  return {
      "decode image (640x480 JPEG)": _median_ms(
          lambda r: images.decode_image(r.image), [r for r, _, _ in clean]),
      "pixel sha256 of the stored pixels": _median_ms(images.pixel_sha256,
                                                      resized),
      "resize to 256 shorter side": _median_ms(
          lambda d: images.resize_shorter_side(d.pixels, 256),
          [d for _, d, _ in clean]),
      "encode JPEG q95": _median_ms(images.encode_jpeg, resized),
      "decode caption": _median_ms(lambda r: captions.decode_caption(
          r.caption), [r for r, _, _ in clean]),
      "language id (per example, batch of 32)": _median_ms(
          identifier.identify_batch,
          [texts[i:i + 32] for i in range(0, len(texts), 32)]) / 32,
      "tokenize, 2 vocabularies (per example, batch of 32)": _median_ms(
          lambda batch: [v.encode_batch(batch, 64) for v in vocabularies],
          [texts[i:i + 32] for i in range(0, len(texts), 32)]) / 32,
      "serialize record (pipeline only)": _median_ms(
          records.serialize_record, kept),
  }


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--num_examples", type=int, default=2000,
                      help="examples in the 640x480 demo corpus")
  parser.add_argument("--repeats", type=int, default=3,
                      help="runs of each configuration; medians are reported")
  args = parser.parse_args(argv)
  with tempfile.TemporaryDirectory() as tmp:
    work = pathlib.Path(tmp)
    corpus, part, n_part, vocab_dirs = make_inputs(work, args.num_examples)
    raws = [e for shard in corpus.shards
            for e in dispatch.read_examples(str(shard))]
    identifier = langid.LanguageIdentifier()
    identifier.load()
    vocabularies = [Vocabulary.load(d) for d in vocab_dirs]
    two_workers = ["--direct_num_workers", "2",
                   "--direct_running_mode", "multi_processing"]
    runs = {
        KERNEL: lambda: run_kernel(raws, identifier, vocabularies),
        KERNEL_TWO: lambda: run_kernel_in_two_processes(raws, identifier,
                                                        vocabularies),
        ONE: lambda: run_pipeline(corpus.output_dir, work / "o1", vocab_dirs,
                                  []),
        TWO: lambda: run_pipeline(corpus.output_dir, work / "o2", vocab_dirs,
                                  two_workers),
        ONE_PART: lambda: run_pipeline(part, work / "p1", vocab_dirs, []),
        TWO_PART: lambda: run_pipeline(part, work / "p2", vocab_dirs,
                                       two_workers),
    }
    timings = {name: [] for name in runs}
    for _ in range(args.repeats):
      for name, run in runs.items():
        timings[name].append(timed(run))
    stages = stage_milliseconds(raws, identifier, vocabularies)
  report(len(raws), n_part, len(corpus.shards), args.repeats, timings, stages)


def report(n: int, n_part: int, num_shards: int, repeats: int,
           timings: dict[str, list[Timing]], stages: dict[str, float]) -> None:
  """Prints the results as Markdown."""
  wall = {k: statistics.median(t.wall for t in v) for k, v in timings.items()}
  cpu = {k: statistics.median(t.cpu for t in v) for k, v in timings.items()}
  print(f"{n} examples at {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} in {num_shards} "
        f"tar shards, 8 output shards; medians of {repeats} repeats\n")
  print("| configuration | wall s (runs) | examples/s | x kernel | CPU s |")
  print("|---|---|---|---|---|")
  for name in (KERNEL, KERNEL_TWO, ONE, TWO):
    runs = ", ".join(f"{t.wall:.1f}" for t in timings[name])
    print(f"| {name} | {wall[name]:.1f} ({runs}) | {n / wall[name]:.1f} | "
          f"{wall[KERNEL] / wall[name]:.2f} | {cpu[name]:.1f} |")
  for name in (ONE_PART, TWO_PART):
    runs = ", ".join(f"{t.wall:.1f}" for t in timings[name])
    print(f"| {name} | {wall[name]:.1f} ({runs}) | - | - | {cpu[name]:.1f} |")
  print(f"\n- 2 workers / 1 worker, whole runs: {wall[ONE] / wall[TWO]:.2f}x; "
        f"what 2 processes give the kernel on this machine: "
        f"{wall[KERNEL] / wall[KERNEL_TWO]:.2f}x")
  at_scale = {name: marginal.per_example(wall[name], wall[part], n, n_part)
              for name, part in ((ONE, ONE_PART), (TWO, TWO_PART))}
  print(f"- per example at scale (from the first {n_part} examples to all "
        f"{n}): kernel {1000 * wall[KERNEL] / n:.2f} ms, 1 worker "
        f"{1000 * at_scale[ONE]:.2f} ms, 2 workers {1000 * at_scale[TWO]:.2f} "
        f"ms; 1 worker / kernel {wall[KERNEL] / n / at_scale[ONE]:.2f}, "
        f"2 workers / 1 worker {at_scale[ONE] / at_scale[TWO]:.2f}x")
  print(f"- CPU seconds per example: kernel {1000 * cpu[KERNEL] / n:.2f} ms, "
        f"1 worker {1000 * cpu[ONE] / n:.2f} ms, 2 workers (all processes) "
        f"{1000 * cpu[TWO] / n:.2f} ms\n")
  print("| kernel stage, timed alone | ms per example (median) |")
  print("|---|---|")
  for stage, ms in stages.items():
    print(f"| {stage} | {ms:.2f} |")


if __name__ == "__main__":
  main()
