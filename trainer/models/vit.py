"""Vision Transformer image tower (big_vision parameter layout).

Parameters, for a `B/16` with `pool_type="map"` and a head:

  embedding/{kernel [16, 16, 3, 768], bias}   conv patchify (VALID)
  pos_embedding [1, num_patches, 768]         only with posemb="learn"; for
                                              (H // 16) * (W // 16) patches
  Transformer/encoderblock_{i}/...            see `common.Encoder`
  Transformer/encoder_norm
  MAPHead_0/{probe, MultiHeadDotProductAttention_0, LayerNorm_0, MlpBlock_0}
  head/{kernel, bias}                         only with num_classes
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from trainer.models import common

POSEMB_TYPES = ("learn", "sincos2d")
POOL_TYPES = ("map", "gap")


def posemb_sincos_2d(h: int, w: int, width: int,
                     temperature: float = 10_000.0) -> jax.Array:
  """Fixed 2D sine-cosine position embeddings [1, h * w, width] (MoCo v3)."""
  if width % 4:
    raise ValueError(f"sincos2d needs a width divisible by 4, got {width}")
  y, x = np.mgrid[:h, :w]
  omega = np.arange(width // 4) / (width // 4 - 1)
  omega = 1.0 / temperature**omega
  y = np.outer(y.flatten(), omega)
  x = np.outer(x.flatten(), omega)
  pe = np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1)
  return jnp.asarray(pe, jnp.float32)[None]


class Model(nn.Module):
  """ViT: patchify, add position embeddings, encode, pool, optional head.

  Attributes:
    variant: "Ti", "S", "B", "L" or "So400m", optionally with a patch size
      ("B/16"); explicit `width`, `depth`, `mlp_dim`, `num_heads`,
      `patch_size` override it.
    num_classes: output size of a final linear `head`; None for no head.
    posemb: "learn" (a parameter) or "sincos2d" (fixed, no parameter).
    pool_type: "map" (attention pooling) or "gap" (mean over patches).
    dtype: compute dtype; parameters are always float32.
    remat: recompute encoder blocks in the backward pass.
  """

  variant: str | None = None
  num_classes: int | None = None
  patch_size: int | None = None
  width: int | None = None
  depth: int | None = None
  mlp_dim: int | None = None
  num_heads: int | None = None
  posemb: str = "learn"
  pool_type: str = "map"
  dtype: str = "float32"
  remat: bool = False

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    """Maps images [B, H, W, 3] in [-1, 1] to features [B, D]."""
    size, patch = self._split_variant()
    dims = common.resolve_dims(
        size, width=self.width, depth=self.depth, mlp_dim=self.mlp_dim,
        num_heads=self.num_heads)
    dtype = jnp.dtype(self.dtype)
    if min(images.shape[1:3]) < patch:
      raise ValueError(f"image size {images.shape[1:3]} is smaller than the "
                       f"patch size {patch}")

    # A VALID stride-`patch` convolution, as big_vision's: a side that is not
    # a multiple of the patch size gives floor(side / patch) patches and its
    # last pixels are ignored (So400m/14 at 384 px: 27 x 27, 6 pixels).
    x = nn.Conv(dims.width, (patch, patch), strides=(patch, patch),
                padding="VALID", dtype=dtype, name="embedding")(
                    images.astype(dtype))
    batch, h, w, width = x.shape
    x = jnp.reshape(x, (batch, h * w, width))
    x = x + self._posemb(h, w, width).astype(dtype)

    x = common.Encoder(
        depth=dims.depth, mlp_dim=dims.mlp_dim, num_heads=dims.num_heads,
        dtype=dtype, remat=self.remat, name="Transformer")(x)

    if self.pool_type == "map":
      x = common.MAPHead(mlp_dim=dims.mlp_dim, num_heads=dims.num_heads,
                         dtype=dtype, name="MAPHead_0")(x)
    elif self.pool_type == "gap":
      x = jnp.mean(x, axis=1)
    else:
      raise ValueError(
          f"pool_type must be one of {POOL_TYPES}, got {self.pool_type!r}")

    if self.num_classes:
      x = nn.Dense(self.num_classes, dtype=dtype, name="head")(x)
    return x

  def _split_variant(self) -> tuple[str | None, int]:
    """The size part of `variant` and the patch size (explicit one first)."""
    size, patch = self.variant, None
    if self.variant is not None and "/" in self.variant:
      size, patch_text = self.variant.split("/")
      patch = int(patch_text)
    patch = self.patch_size or patch
    if patch is None:
      raise ValueError("ViT needs a patch size: variant 'B/16' or patch_size")
    return size, patch

  def _posemb(self, h: int, w: int, width: int) -> jax.Array:
    if self.posemb == "learn":
      return self.param("pos_embedding",
                        nn.initializers.normal(stddev=1 / np.sqrt(width)),
                        (1, h * w, width), jnp.float32)
    if self.posemb == "sincos2d":
      return posemb_sincos_2d(h, w, width)
    raise ValueError(
        f"posemb must be one of {POSEMB_TYPES}, got {self.posemb!r}")
