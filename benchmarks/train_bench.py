"""Benchmark (c): how much of the demo run's step time is spent waiting for data.

Trains `trainer/configs/demo_tiny.py` (8 simulated devices, chunked sigmoid
loss) on a dataset built from the demo corpus, once per `--num_workers`
value, and reads back what the trainer logged to TensorBoard every
`log_every` steps: examples/s and the data-wait fraction (the time the loop
spent fetching the next batch, with the previous step finished, over the
window's wall time; checkpoint saves excluded). The first window holds the
compilation and is reported apart.

  python -m benchmarks.train_bench --dataset DIR [--steps 300] \
      [--num_workers 0,2] [--config.KEY=VALUE ...]
"""

import os

# The simulated devices must exist before JAX is first imported.
if "xla_force_host_platform_device_count" not in os.environ.get(
    "XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_force_host_platform_device_count=8")

import argparse  # pylint: disable=g-import-not-at-top
import ast
import contextlib
import io
import statistics
import tempfile
import time

import ml_collections
from tensorboard.backend.event_processing import event_accumulator

from trainer import train
from trainer.configs import demo_tiny


def override(config: ml_collections.ConfigDict, assignment: str) -> None:
  """Applies one "KEY=VALUE" (dotted key, Python literal or bare string)."""
  key, _, text = assignment.partition("=")
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    value = text
  *parents, leaf = key.split(".")
  node = config
  for parent in parents:
    node = node[parent]
  node[leaf] = value


def run_demo(config: ml_collections.ConfigDict) -> dict:
  """Trains in a fresh workdir; returns timings and the logged scalars."""
  with tempfile.TemporaryDirectory() as workdir:
    out = io.StringIO()
    began = time.perf_counter()
    with contextlib.redirect_stdout(out):
      train.train_and_evaluate(config, workdir)
    seconds = time.perf_counter() - began
    events = event_accumulator.EventAccumulator(
        os.path.join(workdir, train.TB_DIR))
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)]
               for tag in events.Tags()["scalars"]}
  return {"seconds": seconds, "scalars": scalars, "log": out.getvalue()}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dataset", required=True,
                      help="a dataset directory built from the demo corpus")
  parser.add_argument("--steps", type=int, default=300,
                      help="training steps per run")
  parser.add_argument("--num_workers", default="0,2",
                      help="comma-separated Grain worker counts, one run each")
  args, config_args = parser.parse_known_args()
  results = {}
  for workers in [int(w) for w in args.num_workers.split(",")]:
    config = demo_tiny.get_config()
    config.data.train_dir = args.dataset
    config.total_steps = args.steps
    config.data.num_workers = workers
    for assignment in config_args:
      if not assignment.startswith("--config."):
        parser.error(f"unknown argument {assignment}")
      override(config, assignment[len("--config."):])
    results[workers] = run_demo(config)
    print(f"num_workers={workers}: {results[workers]['seconds']:.0f} s",
          flush=True)

  print("\n| num_workers | run s | loss first -> last log | examples/s "
        "(median, after the first window) | data wait % (median) | "
        "data wait % (max) | first window: ex/s, wait % |")
  print("|---|---|---|---|---|---|---|")
  for workers, result in results.items():
    scalars = result["scalars"]
    loss = [v for _, v in scalars["train/loss"]]
    rate = [v for _, v in scalars["perf/examples_per_sec"]]
    wait = [100 * v for _, v in scalars["perf/data_wait_fraction"]]
    print(f"| {workers} | {result['seconds']:.0f} | {loss[0]:.3f} -> "
          f"{loss[-1]:.3f} | {statistics.median(rate[1:]):.1f} | "
          f"{statistics.median(wait[1:]):.1f} | {max(wait[1:]):.1f} | "
          f"{rate[0]:.1f}, {wait[0]:.1f} |")
  for workers, result in results.items():
    print(f"\nLog, num_workers={workers}:\n")
    print(result["log"])


if __name__ == "__main__":
  main()
