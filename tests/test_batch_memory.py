"""Tests for trainer.batch_memory."""

import pickle
import platform

import numpy as np
import pytest

from trainer import batch_memory


def examples(seed: int, n: int = 4) -> list[dict[str, np.ndarray]]:
  rng = np.random.default_rng(seed)
  return [{"image": rng.random((5, 6, 3), np.float32),
           "text": rng.integers(0, 100, 7).astype(np.int32)}
          for _ in range(n)]


def np_stacked(values):
  return {name: np.stack([v[name] for v in values]) for name in values[0]}


def assert_batches_equal(got, expected):
  assert set(got) == set(expected)
  for name, value in expected.items():
    assert got[name].dtype == value.dtype
    np.testing.assert_array_equal(got[name], value)


def test_batches_are_numpys_stacks():
  stack = batch_memory.PooledStack()
  for seed in range(3):
    values = examples(seed)
    assert_batches_equal(stack(values), np_stacked(values))


def test_memory_is_reused_once_the_batch_is_dropped():
  stack = batch_memory.PooledStack()
  batch = stack(examples(0))
  address = batch["image"].ctypes.data
  del batch
  again = stack(examples(1))
  assert again["image"].ctypes.data == address
  assert_batches_equal(again, np_stacked(examples(1)))
  assert stack.pooled() == 2  # One image array, one text array.


def test_held_batches_and_views_are_never_overwritten():
  stack = batch_memory.PooledStack()
  held = stack(examples(0))
  view = stack(examples(1))["image"][1:3]
  shared = np.asarray(memoryview(stack(examples(2))["text"]))
  for seed in range(3, 8):
    stack(examples(seed))
  assert_batches_equal(held, np_stacked(examples(0)))
  np.testing.assert_array_equal(view, np_stacked(examples(1))["image"][1:3])
  np.testing.assert_array_equal(shared, np_stacked(examples(2))["text"])


def test_the_pool_is_bounded_when_batches_are_kept():
  stack = batch_memory.PooledStack()
  kept = [stack(examples(seed)) for seed in range(12)]
  assert stack.pooled() == 2 * batch_memory.MAX_POOLED_BATCHES
  for seed, batch in enumerate(kept):
    assert_batches_equal(batch, np_stacked(examples(seed)))


def test_batch_sizes_and_shapes_get_their_own_arrays():
  stack = batch_memory.PooledStack()
  small = stack(examples(0, n=2))
  large = stack(examples(1, n=3))
  assert_batches_equal(small, np_stacked(examples(0, n=2)))
  assert_batches_equal(large, np_stacked(examples(1, n=3)))


def test_a_pickled_pool_starts_empty():
  stack = batch_memory.PooledStack()
  stack(examples(0))
  copy = pickle.loads(pickle.dumps(stack))
  assert copy.pooled() == 0
  assert_batches_equal(copy(examples(1)), np_stacked(examples(1)))


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_glibc_takes_the_settings():
  assert batch_memory.keep_freed_memory()
