"""Contrastive losses over a batch of image and text embeddings.

All losses take L2-normalised embeddings `img_emb`, `txt_emb` of shape
[|B|, E] (pair i is image i with text i), the temperature `t` itself (not its
logarithm) and, for the sigmoid losses, the bias `b` (SigLIP, Zhai et al.
2023). Scalars may have shape () or (1,). Logits and the loss are computed
in float32 whatever the embedding dtype.

- `sigmoid_loss`: the plain |B| x |B| sigmoid loss, the reference.
- `chunked_sigmoid_loss`: the same loss over a device mesh, where each device
  holds b = |B| / D pairs and only ever materialises b x b logits, in the
  forward and in the backward pass.
- `softmax_loss`: the CLIP baseline, for ablations.

`LOSSES` maps config names to these with one call signature.
"""

from collections.abc import Callable
import functools

import jax
from jax import lax
import jax.numpy as jnp

Mesh = jax.sharding.Mesh
P = jax.sharding.PartitionSpec
LossFn = Callable[
    [jax.Array, jax.Array, jax.Array, jax.Array | None, Mesh], jax.Array]


def _scalar(value) -> jax.Array:
  return jnp.reshape(jnp.asarray(value, jnp.float32), ())


def _global_logits(img_emb: jax.Array, txt_emb: jax.Array,
                   t: jax.Array) -> jax.Array:
  """The |B| x |B| matrix t * <x_i, y_j> in float32."""
  x = img_emb.astype(jnp.float32)
  y = txt_emb.astype(jnp.float32)
  # With explicitly sharded inputs both batch axes carry the data axis, which
  # cannot shard both logit axes: keep the image rows sharded and gather the
  # texts. Elsewhere the partitioner decides.
  sharding = jax.typeof(x).sharding
  rows = sharding.spec[0] if sharding.spec else None
  out_sharding = (None if rows is None
                  else jax.NamedSharding(sharding.mesh, P(rows, None)))
  return _scalar(t) * jnp.einsum(
      "ie,je->ij", x, y, out_sharding=out_sharding)


def sigmoid_loss(img_emb: jax.Array, txt_emb: jax.Array, t: jax.Array,
                 b: jax.Array | None) -> jax.Array:
  """The sigmoid loss over all |B| x |B| pairs, normalised by |B|.

  loss = -(1/|B|) sum_ij log_sigmoid(z_ij * (t <x_i, y_j> + b)), with
  z_ij = 1 if i == j else -1. `b=None` means no bias. On embeddings sharded
  over D devices each device holds b x |B| logits (the texts all-gathered),
  and as much again for their gradient.
  """
  logits = _global_logits(img_emb, txt_emb, t)
  if b is not None:
    logits = logits + _scalar(b)
  n = logits.shape[0]
  labels = 2.0 * jnp.eye(n, dtype=jnp.float32) - 1.0
  return -jnp.sum(jax.nn.log_sigmoid(labels * logits)) / n


def softmax_loss(img_emb: jax.Array, txt_emb: jax.Array,
                 t: jax.Array) -> jax.Array:
  """The CLIP loss: mean of image->text and text->image cross-entropy."""
  logits = _global_logits(img_emb, txt_emb, t)
  n = logits.shape[0]
  eye = jnp.eye(n, dtype=jnp.float32)
  img_to_txt = jnp.sum(eye * jax.nn.log_softmax(logits, axis=1))
  txt_to_img = jnp.sum(eye * jax.nn.log_softmax(logits, axis=0))
  return -(img_to_txt + txt_to_img) / (2 * n)


def _block(x: jax.Array, y: jax.Array, t: jax.Array, b: jax.Array,
           positive: bool | jax.Array
           ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The b x b block of one ring step: dot products, labels, signed logits.

  `positive` says whether the block is the device's own (labels +1 on the
  diagonal); every other block holds negatives only.
  """
  dots = x @ y.T
  n = x.shape[0]
  diagonal = lax.broadcasted_iota(jnp.int32, (n, n), 0) == (
      lax.broadcasted_iota(jnp.int32, (n, n), 1))
  labels = jnp.where(jnp.logical_and(positive, diagonal), 1.0, -1.0)
  return dots, labels, labels * (t * dots + b)


class _Ring:
  """The texts' ring over the devices of one mesh axis, inside `shard_map`.

  Step k visits the text block of the device k places back; the device's own
  block (step 0) is the only one with positives.
  """

  def __init__(self, axis_name: str, num_devices: int):
    self.axis_name = axis_name
    self.num_devices = num_devices

  def shift(self, value: jax.Array) -> jax.Array:
    """Sends `value` one device forward along the ring."""
    d = self.num_devices
    return lax.ppermute(value, self.axis_name,
                        [(i, (i + 1) % d) for i in range(d)])

  def zeros(self, shape=()) -> jax.Array:
    """A float32 per-device accumulator."""
    return lax.pcast(jnp.zeros(shape, jnp.float32), self.axis_name,
                     to="varying")

  def fold(self, visit, acc, y: jax.Array):
    """Folds `acc = visit(positive, y_k, acc)` over the D text blocks y_k.

    `positive` is true for step 0 only. A loop rather than unrolled steps, so
    that one block is alive at a time; the next block's transfer does not
    wait for the current block's work.
    """
    def body(k, carry):
      acc, y = carry
      return visit(k == 0, y, acc), self.shift(y)
    acc, y = lax.fori_loop(0, self.num_devices - 1, body, (acc, y))
    return visit(self.num_devices == 1, y, acc)


def _ring_loss(x, y, t, b, *, ring: _Ring):
  """Per-device forward: the global loss, from local [b, E] embeddings."""
  global_batch = x.shape[0] * ring.num_devices
  x32 = x.astype(jnp.float32)

  def visit(positive, y, total):
    _, _, signed = _block(x32, y, t, b, positive)
    return total - jnp.sum(jax.nn.log_sigmoid(signed))

  total = ring.fold(visit, ring.zeros(), y.astype(jnp.float32))
  return lax.psum(total, ring.axis_name) / global_batch


def _ring_grads(x, y, t, b, g, *, ring: _Ring):
  """Per-device backward: runs the ring again, one block alive at a time.

  The gradient of each text block travels with the block, so after the D-th
  shift it is back on the block's own device.
  """
  global_batch = x.shape[0] * ring.num_devices
  x32 = x.astype(jnp.float32)

  def visit(positive, y, acc):
    dx, dy, dt, db = acc
    dots, labels, signed = _block(x32, y, t, b, positive)
    # d/dl of -log_sigmoid(z * l) / |B| is -z * sigmoid(-z * l) / |B|.
    dlogits = (-g / global_batch) * labels * jax.nn.sigmoid(-signed)
    return (dx + t * (dlogits @ y),
            ring.shift(dy + t * (dlogits.T @ x32)),
            dt + jnp.sum(dlogits * dots),
            db + jnp.sum(dlogits))

  zeros = ring.zeros(x.shape)
  dx, dy, dt, db = ring.fold(
      visit, (zeros, zeros, ring.zeros(), ring.zeros()),
      y.astype(jnp.float32))
  return (dx.astype(x.dtype), dy.astype(y.dtype),
          lax.psum(dt, ring.axis_name), lax.psum(db, ring.axis_name))


@functools.cache
def _ring_call(per_device, mesh: Mesh, axis_name: str, num_scalars: int,
               out_specs):
  """`per_device` as a function of global arrays, batch sharded on the ring.

  Cached and jitted, so that eager calls compile once per mesh and shape.
  """
  ring = _Ring(axis_name, mesh.shape[axis_name])
  return jax.jit(jax.shard_map(
      functools.partial(per_device, ring=ring),
      mesh=mesh,
      in_specs=(P(axis_name), P(axis_name)) + (P(),) * num_scalars,
      out_specs=out_specs))


def _ring_forward(x, y, t, b, mesh, axis_name):
  return _ring_call(_ring_loss, mesh, axis_name, 2, P())(x, y, t, b)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _recomputing_ring_forward(x, y, t, b, mesh, axis_name):
  return _ring_forward(x, y, t, b, mesh, axis_name)


def _recomputing_fwd(x, y, t, b, mesh, axis_name):
  # The inputs are the only residuals: the backward pass recomputes blocks.
  return _ring_forward(x, y, t, b, mesh, axis_name), (x, y, t, b)


def _recomputing_bwd(mesh, axis_name, residuals, g):
  x, y, t, b = residuals
  return _ring_call(
      _ring_grads, mesh, axis_name, 3,
      (P(axis_name), P(axis_name), P(), P()))(x, y, t, b, g)


_recomputing_ring_forward.defvjp(_recomputing_fwd, _recomputing_bwd)


def chunked_sigmoid_loss(img_emb: jax.Array, txt_emb: jax.Array,
                         t: jax.Array, b: jax.Array | None, mesh: Mesh,
                         axis_name: str = "data", *,
                         recompute_backward: bool = True) -> jax.Array:
  """The sigmoid loss, computed block by block around a ring of devices.

  Equal to `sigmoid_loss` on the same global arrays. The batch axis is split
  over `mesh`'s `axis_name` (D devices, b = |B| / D pairs each); the loss is
  replicated over any other mesh axes, which compute it redundantly. Each
  device computes its own b x b block (the only one with positives), then
  passes its texts to the next device D - 1 times, accumulating the
  negative-only blocks; the per-device sums are then added. Peak memory is
  O(b^2) per device in the forward and, with `recompute_backward` (default),
  in the backward pass, which runs the ring again instead of keeping the D
  blocks alive. `recompute_backward=False` differentiates the ring by plain
  autodiff (O(D * b^2) memory); it exists to measure that difference.

  On a mesh with explicit axis types, take gradients inside
  `jax.set_mesh(mesh)`, as JAX requires of explicitly sharded arrays.
  """
  d = mesh.shape[axis_name]
  if img_emb.shape != txt_emb.shape or img_emb.ndim != 2:
    raise ValueError("embeddings must both have shape [batch, dim], got "
                     f"{img_emb.shape} and {txt_emb.shape}")
  if img_emb.shape[0] % d:
    raise ValueError(f"batch size {img_emb.shape[0]} is not divisible by "
                     f"the {d} devices of mesh axis {axis_name!r}")
  if jax.sharding.AxisType.Explicit in mesh.axis_types:
    # Explicitly typed inputs must already carry shard_map's in_specs.
    img_emb, txt_emb = jax.sharding.reshard(
        (img_emb, txt_emb), jax.NamedSharding(mesh, P(axis_name)))
  b = jnp.zeros((), jnp.float32) if b is None else _scalar(b)
  forward = (_recomputing_ring_forward if recompute_backward
             else _ring_forward)
  return forward(img_emb, txt_emb, _scalar(t), b, mesh, axis_name)


# Uniform signature for the trainer: loss_fn(img_emb, txt_emb, t, b, mesh).
# The softmax loss ignores b: a constant added to every logit cancels in both
# cross-entropies.
LOSSES: dict[str, LossFn] = {
    "sigmoid": lambda img, txt, t, b, mesh: sigmoid_loss(img, txt, t, b),
    "chunked_sigmoid": chunked_sigmoid_loss,
    "softmax": lambda img, txt, t, b, mesh: softmax_loss(img, txt, t),
}
