"""Text transformer tower (big_vision `text_transformer` layout).

Inputs are token ids [B, L] made with the reference convention: EOS appended
and kept on truncation ("sticky"), then padded with the EOS id (1 in the c4 /
mc4 SentencePiece models). The last position therefore always holds EOS and
the tower pools it (big_vision `pool_type="last"`); there is no attention mask,
so every position, padding included, attends to all others.

Parameters, for a `B` text tower with a head:

  Embed_0/embedding [vocab_size, 768]         the full token table, or
  embed_bottleneck/embedding [vocab_size, K]  with bottleneck_dim=K, the
  embed_bottleneck/kernel [K, 768]            table and its projection
  pos_embedding [1, L, 768]
  Encoder_0/encoderblock_{i}/...              see `common.Encoder`
  Encoder_0/encoder_norm
  head/{kernel, bias}                         only with num_classes

A big_vision checkpoint (always a full table) loads key for key into a tower
without bottleneck; a bottleneck tower has no `Embed_0`, so such an import
fails on the missing key rather than on a silently reshaped table.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from trainer.models import common


class BottleneckEmbed(nn.Module):
  """Token embedding factorised as an N x K table and a K x W projection."""

  vocab_size: int
  bottleneck_dim: int
  features: int
  dtype: common.DType = jnp.float32

  @nn.compact
  def __call__(self, tokens: jax.Array) -> jax.Array:
    table = self.param("embedding", nn.linear.default_embed_init,
                       (self.vocab_size, self.bottleneck_dim), jnp.float32)
    # Xavier keeps the projected vectors at about the scale of a full table's.
    kernel = self.param("kernel", nn.initializers.xavier_uniform(),
                        (self.bottleneck_dim, self.features), jnp.float32)
    x = jnp.take(table.astype(self.dtype), tokens, axis=0)
    return x @ kernel.astype(self.dtype)


class Model(nn.Module):
  """Text transformer pooled at the last token.

  Attributes:
    variant: "Ti", "S", "B", "L" or "So400m"; explicit `width`, `depth`,
      `mlp_dim`, `num_heads` override it.
    vocab_size: number of token ids.
    bottleneck_dim: K of a bottlenecked token embedding; None for a full
      vocab_size x width table.
    num_classes: output size of a final linear `head`; None for no head.
    dtype: compute dtype; parameters are always float32.
    remat: recompute encoder blocks in the backward pass.
  """

  variant: str | None = None
  num_classes: int | None = None
  width: int | None = None
  depth: int | None = None
  mlp_dim: int | None = None
  num_heads: int | None = None
  vocab_size: int = 32_000
  bottleneck_dim: int | None = None
  dtype: str = "float32"
  remat: bool = False

  @nn.compact
  def __call__(self, tokens: jax.Array) -> jax.Array:
    """Maps token ids [B, L] to features [B, D]."""
    dims = common.resolve_dims(
        self.variant, width=self.width, depth=self.depth,
        mlp_dim=self.mlp_dim, num_heads=self.num_heads)
    dtype = jnp.dtype(self.dtype)

    if self.bottleneck_dim:
      embed = BottleneckEmbed(self.vocab_size, self.bottleneck_dim,
                              dims.width, dtype=dtype, name="embed_bottleneck")
    else:
      embed = nn.Embed(self.vocab_size, dims.width, dtype=dtype,
                       name="Embed_0")
    x = embed(tokens)
    _, length, width = x.shape
    x = x + self.param("pos_embedding",
                       nn.initializers.normal(stddev=1 / np.sqrt(width)),
                       (1, length, width), jnp.float32).astype(dtype)

    x = common.Encoder(
        depth=dims.depth, mlp_dim=dims.mlp_dim, num_heads=dims.num_heads,
        dtype=dtype, remat=self.remat, name="Encoder_0")(x)
    x = x[:, -1]

    if self.num_classes:
      x = nn.Dense(self.num_classes, dtype=dtype, name="head")(x)
    return x
