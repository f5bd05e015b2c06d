"""Tests for trainer/losses.py, against float64 NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trainer import losses

BATCH = 32  # Divisible by every device count below.
DIM = 16
ARGNUMS = (0, 1, 2, 3)
# (t, b): the initial SigLIP values, and a temperature with no bias.
SCALARS = [(10.0, -10.0), (float(np.exp(0.5)), 0.0)]


def _embeddings(seed: int, batch: int = BATCH, dim: int = DIM):
  rng = np.random.default_rng(seed)
  x, y = (rng.standard_normal((batch, dim)) for _ in range(2))
  # Correlate the pairs so that the positives matter.
  y = x + 0.5 * y
  return tuple(
      (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
      for v in (x, y))


def _mesh(num_devices: int, axis_type=jax.sharding.AxisType.Auto,
          model: int = 1) -> jax.sharding.Mesh:
  return jax.make_mesh((num_devices, model), ("data", "model"),
                       devices=jax.devices()[:num_devices * model],
                       axis_types=(axis_type,) * 2)


def _shard(mesh, *arrays):
  return jax.device_put(arrays, jax.NamedSharding(mesh, jax.P("data")))


def _assert_close(actual, expected, rtol=1e-5):
  """Equal to `rtol` relative to the largest entry of `expected`."""
  actual = np.asarray(actual, np.float64)
  expected = np.asarray(expected, np.float64)
  assert actual.shape == expected.shape
  np.testing.assert_allclose(actual, expected, rtol=rtol,
                             atol=rtol * np.abs(expected).max())


def _numpy_sigmoid_loss(x, y, t, b):
  logits = t * x.astype(np.float64) @ y.astype(np.float64).T + b
  z = 2 * np.eye(len(x)) - 1
  return np.sum(np.logaddexp(0, -z * logits)) / len(x)


def _numpy_softmax_loss(x, y, t):
  logits = t * x.astype(np.float64) @ y.astype(np.float64).T

  def cross_entropy(l):
    l = l - l.max(axis=1, keepdims=True)
    log_probs = l - np.log(np.exp(l).sum(axis=1, keepdims=True))
    return -np.mean(np.diag(log_probs))

  return (cross_entropy(logits) + cross_entropy(logits.T)) / 2


@pytest.mark.parametrize("t, b", SCALARS)
def test_sigmoid_loss_matches_formula(t, b):
  x, y = _embeddings(0)
  _assert_close(losses.sigmoid_loss(x, y, t, b), _numpy_sigmoid_loss(x, y, t, b))


def test_sigmoid_loss_without_bias_is_zero_bias():
  x, y = _embeddings(1)
  _assert_close(losses.sigmoid_loss(x, y, 10.0, None),
                _numpy_sigmoid_loss(x, y, 10.0, 0.0))


def test_softmax_loss_matches_cross_entropy():
  x, y = _embeddings(2)
  _assert_close(losses.softmax_loss(x, y, 10.0),
                _numpy_softmax_loss(x, y, 10.0))


@pytest.mark.parametrize("num_devices", [1, 2, 4, 8])
@pytest.mark.parametrize("t, b", SCALARS)
def test_chunked_matches_reference_under_jit(num_devices, t, b):
  x, y = _embeddings(3)
  t, b = jnp.float32(t), jnp.float32(b)
  expected = jax.value_and_grad(losses.sigmoid_loss, ARGNUMS)(x, y, t, b)
  mesh = _mesh(num_devices)
  with jax.set_mesh(mesh):
    step = jax.jit(jax.value_and_grad(
        lambda *args: losses.chunked_sigmoid_loss(*args, mesh), ARGNUMS))
    loss, grads = step(*_shard(mesh, x, y), t, b)
  _assert_close(loss, expected[0])
  for actual, reference in zip(grads, expected[1]):
    _assert_close(actual, reference)


@pytest.mark.parametrize("recompute_backward", [True, False])
def test_chunked_eager_on_explicit_mesh(recompute_backward):
  x, y = _embeddings(4)
  expected = jax.grad(losses.sigmoid_loss, ARGNUMS)(x, y, 10.0, -10.0)
  mesh = _mesh(2, jax.sharding.AxisType.Explicit)
  with jax.set_mesh(mesh):
    grads = jax.grad(
        lambda *args: losses.chunked_sigmoid_loss(
            *args, mesh, recompute_backward=recompute_backward),
        ARGNUMS)(*_shard(mesh, x, y), jnp.float32(10.0), jnp.float32(-10.0))
  for actual, reference in zip(grads, expected):
    _assert_close(actual, reference)


def test_reference_and_softmax_on_explicit_mesh_under_jit():
  x, y = _embeddings(5)
  mesh = _mesh(4, jax.sharding.AxisType.Explicit)
  with jax.set_mesh(mesh):
    xs, ys = _shard(mesh, x, y)
    sigmoid = jax.jit(jax.grad(losses.sigmoid_loss, ARGNUMS))(
        xs, ys, jnp.float32(10.0), jnp.float32(-10.0))
    softmax = jax.jit(losses.softmax_loss)(xs, ys, jnp.float32(10.0))
  expected = jax.grad(losses.sigmoid_loss, ARGNUMS)(x, y, 10.0, -10.0)
  for actual, reference in zip(sigmoid, expected):
    _assert_close(actual, reference)
  _assert_close(softmax, _numpy_softmax_loss(x, y, 10.0))


def test_chunked_bfloat16_computes_in_float32():
  x, y = (v.astype(jnp.bfloat16) for v in _embeddings(6))
  mesh = _mesh(4)
  with jax.set_mesh(mesh):
    loss, grads = jax.jit(jax.value_and_grad(
        lambda x, y: losses.chunked_sigmoid_loss(x, y, 10.0, -10.0, mesh),
        (0, 1)))(*_shard(mesh, x, y))
  assert loss.dtype == jnp.float32
  assert all(g.dtype == jnp.bfloat16 for g in grads)
  _assert_close(loss, _numpy_sigmoid_loss(
      np.asarray(x, np.float32), np.asarray(y, np.float32), 10.0, -10.0))
  expected = jax.grad(losses.sigmoid_loss, (0, 1))(x, y, 10.0, -10.0)
  for actual, reference in zip(grads, expected):
    # Both round float32 gradients to bfloat16 (8 bits of mantissa).
    _assert_close(actual, reference, rtol=1e-2)


def test_chunked_one_element_scalars_and_no_bias():
  x, y = _embeddings(7)
  t = jnp.array([10.0])
  mesh = _mesh(2)
  with jax.set_mesh(mesh):
    loss, grad_t = jax.jit(jax.value_and_grad(
        lambda t: losses.chunked_sigmoid_loss(x, y, t, None, mesh)))(t)
  assert grad_t.shape == (1,)
  _assert_close(loss, losses.sigmoid_loss(x, y, 10.0, 0.0))
  _assert_close(grad_t, jax.grad(losses.sigmoid_loss, 2)(x, y, t, None))


def test_chunked_replicates_over_other_mesh_axes():
  x, y = _embeddings(8)
  expected = jax.value_and_grad(losses.sigmoid_loss, (0, 1))(
      x, y, 10.0, -10.0)
  mesh = _mesh(2, model=2)
  with jax.set_mesh(mesh):
    loss, grads = jax.jit(jax.value_and_grad(
        lambda x, y: losses.chunked_sigmoid_loss(x, y, 10.0, -10.0, mesh),
        (0, 1)))(*_shard(mesh, x, y))
  _assert_close(loss, expected[0])
  for actual, reference in zip(grads, expected[1]):
    _assert_close(actual, reference)


def test_chunked_rejects_indivisible_batch():
  x, y = _embeddings(9, batch=6)
  with pytest.raises(ValueError, match="not divisible"):
    losses.chunked_sigmoid_loss(x, y, 10.0, -10.0, _mesh(4))


def test_registry_has_one_signature():
  x, y = _embeddings(10)
  mesh = _mesh(2)
  with jax.set_mesh(mesh):
    values = {
        name: float(jax.jit(loss_fn, static_argnums=4)(
            *_shard(mesh, x, y), 10.0, -10.0, mesh))
        for name, loss_fn in losses.LOSSES.items()
    }
  _assert_close(values["sigmoid"], _numpy_sigmoid_loss(x, y, 10.0, -10.0))
  _assert_close(values["chunked_sigmoid"], values["sigmoid"])
  _assert_close(values["softmax"], _numpy_softmax_loss(x, y, 10.0))


def _temp_bytes(loss_fn, mesh, x, y) -> int:
  step = jax.jit(jax.grad(loss_fn, (0, 1)))
  return step.lower(*_shard(mesh, x, y)).compile().memory_analysis(
  ).temp_size_in_bytes


def test_chunked_memory_stays_flat_as_devices_grow():
  per_device, dim = 128, 32
  temp = {}
  for d in (2, 8):
    mesh = _mesh(d)
    x, y = _embeddings(11, batch=d * per_device, dim=dim)
    for recompute in (True, False):
      temp[d, recompute] = _temp_bytes(
          lambda x, y: losses.chunked_sigmoid_loss(
              x, y, 10.0, -10.0, mesh, recompute_backward=recompute),
          mesh, x, y)
  block = per_device**2 * 4
  # The recomputing ring holds a few b x b blocks whatever D is; autodiff
  # through the ring keeps one per ring step.
  assert temp[8, True] <= temp[2, True] + block
  assert temp[8, False] >= temp[2, False] + 6 * block
