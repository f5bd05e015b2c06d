"""Host memory for the input pipeline: reused rather than faulted in again.

A batch of 256 float32 224x224 images is 154 MB. Allocated afresh for every
batch, each of its pages is faulted in and zeroed by the kernel before the
examples are copied into it, which costs more CPU than the copy (BENCHMARKS.md,
trainer input). glibc likewise hands the per-example temporaries (a few
hundred KB each) back to the kernel and faults them in again. `PooledStack`
stacks batches into arrays it reuses once nothing else refers to them, and
`keep_freed_memory` tells glibc to keep freed memory for reuse.
"""

from collections.abc import Mapping, Sequence
import ctypes
import ctypes.util
import sys
import threading

import numpy as np

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Freed memory at the top of the heap is kept up to this much.
TRIM_THRESHOLD_BYTES = 1 << 30
# Blocks up to this size come from the heap, so that their memory is reused;
# larger ones are mapped afresh and unmapped on free (32 MiB is glibc's
# largest allowed value).
MMAP_THRESHOLD_BYTES = 32 << 20
# Batch arrays a PooledStack keeps per field; a consumer holding more batches
# than this at once gets unpooled ones for the rest.
MAX_POOLED_BATCHES = 8
# References to a pooled array while `PooledStack` checks it: the pool's
# list, the loop variable and `sys.getrefcount`'s argument.
_UNUSED_REFCOUNT = 3


def keep_freed_memory() -> bool:
  """Makes glibc keep freed memory (below 32 MiB a block) for reuse.

  Process-wide: freed memory stays with the process (up to 1 GiB at the top of
  each heap) instead of going back to the kernel, so its high-water mark is
  what it keeps. Returns whether the settings took (False where the C library
  is not glibc).
  """
  try:
    mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
  except (OSError, AttributeError):
    return False
  return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) and
              mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


class PooledStack:
  """A Grain `batch_fn`: stacks a field's arrays into a reused array.

  The examples are dicts of numpy arrays with the same shapes; the batch is a
  dict of their stacks, as Grain's own batching makes it. An array is reused
  only when no object but the pool refers to it: not a batch still held, a
  view of one, nor a device buffer sharing its memory. Thread-safe; pickles
  as a new, empty pool.
  """

  def __init__(self):
    self._lock = threading.Lock()
    self._pool: dict[tuple, list[np.ndarray]] = {}

  def __getstate__(self) -> dict:
    return {}

  def __setstate__(self, state: dict) -> None:
    del state
    self.__init__()

  def __call__(self, examples: Sequence[Mapping[str, np.ndarray]]
               ) -> dict[str, np.ndarray]:
    return {name: np.stack([e[name] for e in examples],
                           out=self._array(name, len(examples), examples[0]))
            for name in examples[0]}

  def _array(self, name: str, size: int,
             example: Mapping[str, np.ndarray]) -> np.ndarray:
    first = np.asarray(example[name])
    shape, dtype = (size,) + first.shape, first.dtype
    with self._lock:
      arrays = self._pool.setdefault((name, shape, dtype.str), [])
      for array in arrays:
        if sys.getrefcount(array) == _UNUSED_REFCOUNT:
          return array
      array = np.empty(shape, dtype)
      if len(arrays) < MAX_POOLED_BATCHES:
        arrays.append(array)
      return array

  def pooled(self) -> int:
    """How many arrays the pool holds, all fields together."""
    with self._lock:
      return sum(map(len, self._pool.values()))
