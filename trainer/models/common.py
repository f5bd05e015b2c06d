"""Transformer blocks shared by the image and the text tower.

Module and parameter names follow big_vision's `vit.py` (`encoderblock_{i}`,
`encoder_norm`, `MAPHead_0`, `MlpBlock_0`, ...), so that a big_vision `.npz`
checkpoint maps onto our parameter trees key for key. Layers are unrolled
(big_vision's `scan=True` layout, with stacked layer weights, is not
supported).
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

DType = Any

# (width, depth, mlp_dim, num_heads); Table 2 of arXiv 2106.04560, as in
# big_vision's `decode_variant`.
VARIANTS = {
    "Ti": (192, 12, 768, 3),
    "S": (384, 12, 1536, 6),
    "B": (768, 12, 3072, 12),
    "L": (1024, 24, 4096, 16),
    "So400m": (1152, 27, 4304, 16),
}


@dataclasses.dataclass(frozen=True)
class TowerDims:
  """The size of a transformer tower."""

  width: int
  depth: int
  mlp_dim: int
  num_heads: int


def resolve_dims(variant: str | None, *, width: int | None = None,
                 depth: int | None = None, mlp_dim: int | None = None,
                 num_heads: int | None = None) -> TowerDims:
  """Sizes from a variant name ("B"), overridden by explicit values."""
  sizes = {}
  if variant is not None:
    if variant not in VARIANTS:
      raise ValueError(
          f"unknown variant {variant!r}; expected one of {sorted(VARIANTS)}")
    sizes = dict(zip(("width", "depth", "mlp_dim", "num_heads"),
                     VARIANTS[variant]))
  explicit = dict(width=width, depth=depth, mlp_dim=mlp_dim,
                  num_heads=num_heads)
  sizes.update({k: v for k, v in explicit.items() if v is not None})
  missing = [k for k in explicit if k not in sizes]
  if missing:
    raise ValueError(
        f"a tower needs a variant or explicit {', '.join(missing)}")
  if sizes["width"] % sizes["num_heads"]:
    raise ValueError(f"width {sizes['width']} is not divisible by "
                     f"num_heads {sizes['num_heads']}")
  return TowerDims(**sizes)


class MlpBlock(nn.Module):
  """Transformer feed-forward block: Dense, GELU, Dense."""

  mlp_dim: int
  dtype: DType = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    inits = dict(kernel_init=nn.initializers.xavier_uniform(),
                 bias_init=nn.initializers.normal(stddev=1e-6))
    width = x.shape[-1]
    x = nn.Dense(self.mlp_dim, dtype=self.dtype, **inits)(x)
    x = nn.gelu(x)
    return nn.Dense(width, dtype=self.dtype, **inits)(x)


class Encoder1DBlock(nn.Module):
  """Pre-LayerNorm transformer block: self-attention then MLP, residual."""

  mlp_dim: int
  num_heads: int
  dtype: DType = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = nn.LayerNorm(dtype=self.dtype)(x)
    y = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, dtype=self.dtype,
        kernel_init=nn.initializers.xavier_uniform())(y, y)
    x = x + y
    y = nn.LayerNorm(dtype=self.dtype)(x)
    return x + MlpBlock(self.mlp_dim, dtype=self.dtype)(y)


class Encoder(nn.Module):
  """A stack of `depth` blocks followed by a final LayerNorm.

  `remat` recomputes each block's activations in the backward pass, trading
  compute for accelerator memory.
  """

  depth: int
  mlp_dim: int
  num_heads: int
  dtype: DType = jnp.float32
  remat: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    block = nn.remat(Encoder1DBlock) if self.remat else Encoder1DBlock
    for i in range(self.depth):
      x = block(mlp_dim=self.mlp_dim, num_heads=self.num_heads,
                dtype=self.dtype, name=f"encoderblock_{i}")(x)
    return nn.LayerNorm(dtype=self.dtype, name="encoder_norm")(x)


class MAPHead(nn.Module):
  """Multihead attention pooling: one learned query attends to all tokens."""

  mlp_dim: int
  num_heads: int
  dtype: DType = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    batch, _, width = x.shape
    probe = self.param("probe", nn.initializers.xavier_uniform(),
                       (1, 1, width), jnp.float32)
    probe = jnp.broadcast_to(probe.astype(x.dtype), (batch, 1, width))
    x = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, dtype=self.dtype,
        kernel_init=nn.initializers.xavier_uniform())(probe, x)
    y = nn.LayerNorm(dtype=self.dtype)(x)
    x = x + MlpBlock(self.mlp_dim, dtype=self.dtype)(y)
    return x[:, 0]
