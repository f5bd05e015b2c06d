"""Benchmark (a): chunked sigmoid loss versus the all-gather reference.

For D simulated devices and a fixed per-device batch b, compiles the forward
and backward pass (`jax.value_and_grad` w.r.t. both embeddings, t and b) of

- chunked: `chunked_sigmoid_loss`, whose backward pass runs the ring again;
- chunked-autodiff: the same ring differentiated by plain autodiff;
- reference: `sigmoid_loss` on the sharded global arrays (texts all-gathered,
  b x |B| logits per device),

and reports each executable's per-device temporary memory (XLA's memory
analysis) and the median wall time of one step. All D devices share this
machine's cores, so times measure the total work, not one device's latency.

  python -m benchmarks.loss_bench [--per_device_batch 512] [--dim 768]
"""

import os

# The simulated devices must exist before JAX is first imported.
if "xla_force_host_platform_device_count" not in os.environ.get(
    "XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_force_host_platform_device_count=8")

import argparse  # pylint: disable=g-import-not-at-top
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from trainer import losses

MIB = 2**20


def _variants(mesh: jax.sharding.Mesh):
  return {
      "chunked": lambda x, y, t, b: losses.chunked_sigmoid_loss(
          x, y, t, b, mesh),
      "chunked-autodiff": lambda x, y, t, b: losses.chunked_sigmoid_loss(
          x, y, t, b, mesh, recompute_backward=False),
      "reference": losses.sigmoid_loss,
  }


def _inputs(mesh: jax.sharding.Mesh, batch: int, dim: int):
  rng = np.random.default_rng(0)
  x, y = (rng.standard_normal((batch, dim), np.float32) for _ in range(2))
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  y /= np.linalg.norm(y, axis=1, keepdims=True)
  sharding = jax.NamedSharding(mesh, jax.P("data"))
  return (jax.device_put(x, sharding), jax.device_put(y, sharding),
          jnp.float32(10.0), jnp.float32(-10.0))


def _median_seconds(steps: dict, args, repeats: int) -> dict[str, float]:
  """Median seconds per step of each of `steps`.

  The steps take turns within each repeat, so that load from other processes
  on this machine falls on all of them alike.
  """
  times = {name: [] for name in steps}
  for _ in range(repeats + 1):
    for name, step in steps.items():
      start = time.perf_counter()
      jax.block_until_ready(step(*args))
      times[name].append(time.perf_counter() - start)
  # The first turn includes the warm-up.
  return {name: statistics.median(t[1:]) for name, t in times.items()}


def run(num_devices: list[int], per_device_batch: int, dim: int,
        repeats: int) -> list[dict]:
  """One row per (D, variant): temporary bytes per device and median time."""
  rows = []
  for d in num_devices:
    mesh = jax.make_mesh((d,), ("data",), devices=jax.devices()[:d],
                         axis_types=(jax.sharding.AxisType.Auto,))
    args = _inputs(mesh, d * per_device_batch, dim)
    with jax.set_mesh(mesh):
      steps = {
          name: jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))
          for name, loss in _variants(mesh).items()
      }
      temp = {
          name: step.lower(*args).compile().memory_analysis(
          ).temp_size_in_bytes for name, step in steps.items()
      }
      seconds = _median_seconds(steps, args, repeats)
    for name in steps:
      rows.append({"devices": d, "variant": name,
                   "temp_mib": temp[name] / MIB, "seconds": seconds[name]})
      print(f"D={d} {name}: {rows[-1]['temp_mib']:.2f} MiB, "
            f"{rows[-1]['seconds'] * 1e3:.1f} ms", flush=True)
  return rows


def markdown_table(rows: list[dict]) -> str:
  """Rows as a table, with each variant's ratio to the chunked loss."""
  chunked = {r["devices"]: r for r in rows if r["variant"] == "chunked"}
  lines = [
      "| D | variant | temp MiB / device | x chunked | fwd+bwd ms "
      "| x chunked |",
      "|---|---|---|---|---|---|",
  ]
  for r in rows:
    base = chunked[r["devices"]]
    lines.append(
        f"| {r['devices']} | {r['variant']} | {r['temp_mib']:.2f} "
        f"| {r['temp_mib'] / base['temp_mib']:.2f} "
        f"| {r['seconds'] * 1e3:.1f} | {r['seconds'] / base['seconds']:.2f} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--devices", default="2,4,8",
                      help="comma-separated device counts D (at most 8)")
  parser.add_argument("--per_device_batch", type=int, default=512,
                      help="pairs per device, b (fixed as D grows)")
  parser.add_argument("--dim", type=int, default=768,
                      help="embedding dimension")
  parser.add_argument("--repeats", type=int, default=5,
                      help="timed steps per measurement (median reported)")
  flags = parser.parse_args()
  num_devices = [int(d) for d in flags.devices.split(",")]
  if max(num_devices) > jax.device_count():
    parser.error(f"--devices asks for {max(num_devices)} devices, "
                 f"only {jax.device_count()} exist")
  rows = run(num_devices, flags.per_device_batch, flags.dim, flags.repeats)
  print(markdown_table(rows))


if __name__ == "__main__":
  main()
