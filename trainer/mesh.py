"""The device mesh, multi-host start-up and global batches.

The trainer is data parallel: one mesh axis, "data", over every device of
every process; parameters are replicated and batches split along their first
axis. Each process feeds the rows of the global batch that belong to its own
devices.
"""

from collections.abc import Mapping

import jax
import ml_collections
import numpy as np

DATA_AXIS = "data"


def initialize_distributed(config: ml_collections.ConfigDict) -> None:
  """Joins the multi-host job described by `config` (config.distributed).

  Does nothing unless `config.initialize` is true. Unset address, count and
  index are left to JAX, which finds them on Cloud TPU and under SLURM or
  Open MPI.
  """
  if not config.get("initialize", False):
    return
  kwargs = {
      "coordinator_address": config.get("coordinator_address"),
      "num_processes": config.get("num_processes"),
      "process_id": config.get("process_id"),
  }
  jax.distributed.initialize(
      **{key: value for key, value in kwargs.items() if value is not None})


def make_mesh() -> jax.sharding.Mesh:
  """A one-axis ("data") mesh over all devices of all processes."""
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,),
                       axis_types=(jax.sharding.AxisType.Auto,))


def batch_sharding(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
  """Arrays split along their first axis over the data axis."""
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(DATA_AXIS))


def replicated(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
  """Arrays held whole on every device."""
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def batch_size_per_process(global_batch_size: int) -> int:
  """This process's share of `global_batch_size`.

  Raises:
    ValueError: if the global batch does not split evenly over the devices.
  """
  if global_batch_size <= 0 or global_batch_size % jax.device_count():
    raise ValueError(
        f"batch_size {global_batch_size} must be a positive multiple of the "
        f"device count {jax.device_count()}")
  return global_batch_size // jax.process_count()


def global_batch(local_batch: Mapping[str, np.ndarray],
                 mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """Global arrays, sharded over `mesh`, from this process's rows of a batch."""
  sharding = batch_sharding(mesh)
  return {
      name: jax.make_array_from_process_local_data(sharding, value)
      for name, value in local_batch.items()
  }
