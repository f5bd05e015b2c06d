"""The two-tower image-text model with the sigmoid loss's t and b scalars.

Parameter tree (big_vision `two_towers` layout, so an `.npz` with keys
`params/img/...`, `params/txt/...`, `params/t`, `params/b` maps onto it by
stripping the `params/` prefix):

  img/...   the ViT (`trainer.models.vit`), or only `img/head` when images
            arrive as precomputed embeddings (`image=None`, SigLiT)
  txt/...   the text transformer (`trainer.models.text`)
  t [1]     t' (log temperature), initialised to log(temperature_init)
  b [1]     the bias, initialised to bias_init; absent when bias_init is None
"""

from collections.abc import Mapping
import math
from typing import Any

from flax.core import FrozenDict
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from trainer.models import text as text_model
from trainer.models import vit

Params = Any


class EmbeddingHead(nn.Module):
  """Image side of SigLiT: precomputed embeddings [B, E], optional head."""

  num_classes: int | None = None

  @nn.compact
  def __call__(self, embeddings: jax.Array) -> jax.Array:
    if self.num_classes:
      return nn.Dense(self.num_classes, name="head")(embeddings)
    return embeddings


def l2_normalize(x: jax.Array) -> jax.Array:
  """Rows of `x` scaled to unit norm (big_vision's epsilon convention)."""
  return x / (jnp.linalg.norm(x, axis=-1, keepdims=True) + 1e-8)


def _out_dims(out_dim) -> tuple[int | None, int | None]:
  if isinstance(out_dim, (tuple, list)):
    return tuple(out_dim)
  return out_dim, out_dim


def _check_tower(name: str, tower: Mapping[str, Any] | None) -> None:
  if tower is not None and "num_classes" in tower:
    raise ValueError(f"set model.out_dim, not model.{name}.num_classes")


def _image_tower(model: "Model") -> nn.Module:
  _check_tower("image", model.image)
  img_dim, _ = _out_dims(model.out_dim)
  if model.image is None:
    return EmbeddingHead(num_classes=img_dim)
  return vit.Model(**model.image, num_classes=img_dim)


def _text_tower(model: "Model") -> nn.Module:
  if model.text is None:
    raise ValueError("the two-tower model needs a text tower config")
  _check_tower("text", model.text)
  _, txt_dim = _out_dims(model.out_dim)
  return text_model.Model(**model.text, num_classes=txt_dim)


class Model(nn.Module):
  """Image and text towers mapping into one L2-normalised space.

  Attributes:
    image: ViT fields (`trainer.models.vit.Model`), or None when the image
      input is already an embedding.
    text: text tower fields (`trainer.models.text.Model`).
    out_dim: output size of the towers' linear heads, an int for both or an
      (image, text) pair; None (for a tower or both) means no head. Set here,
      never as a tower's `num_classes`.
    temperature_init: initial t = exp(t').
    bias_init: initial b; None for a model without bias.
  """

  image: Mapping[str, Any] | None = None
  text: Mapping[str, Any] | None = None
  out_dim: int | tuple[int | None, int | None] | None = None
  temperature_init: float = 10.0
  bias_init: float | None = -10.0

  def setup(self):
    # Built here, the towers take the attribute names "img" and "txt".
    self.img = _image_tower(self)
    self.txt = _text_tower(self)
    self.t = self.param("t", nn.initializers.constant(
        math.log(self.temperature_init)), (1,), jnp.float32)
    if self.bias_init is not None:
      self.b = self.param("b", nn.initializers.constant(self.bias_init), (1,),
                          jnp.float32)

  def __call__(
      self, images: jax.Array | None, texts: jax.Array | None,
      train: bool = False,
  ) -> tuple[jax.Array | None, jax.Array | None, dict[str, Any]]:
    """Embeds both inputs; either may be None.

    Args:
      images: [B, H, W, 3] floats in [-1, 1], or [B, E] precomputed
        embeddings when `image` is None.
      texts: [B, L] int32 token ids, EOS-terminated and EOS-padded.
      train: the trainer's mode flag; the towers have no dropout, so it
        changes nothing.

    Returns:
      (zimg, ztxt, extras): L2-normalised float32 [B, D] embeddings (None
      where the input was None) and a dict with scalars "t" = exp(t') and "b"
      (None without bias), and the unnormalised "img/features" and
      "txt/features".
    """
    del train
    extras = {}
    zimg = ztxt = None
    if images is not None:
      extras["img/features"] = self.img(images).astype(jnp.float32)
      zimg = l2_normalize(extras["img/features"])
    if texts is not None:
      extras["txt/features"] = self.txt(texts).astype(jnp.float32)
      ztxt = l2_normalize(extras["txt/features"])
    if zimg is not None and ztxt is not None and (
        zimg.shape[-1] != ztxt.shape[-1]):
      raise ValueError(
          f"image embeddings have {zimg.shape[-1]} dims but text embeddings "
          f"{ztxt.shape[-1]}; set model.out_dim so that they match")
    extras["t"] = jnp.exp(self.t[0])
    extras["b"] = self.b[0] if self.bias_init is not None else None
    return zimg, ztxt, extras


def _frozen(tower: Mapping[str, Any] | None) -> FrozenDict | None:
  if tower is None:
    return None
  if isinstance(tower, ml_collections.ConfigDict):
    tower = tower.to_dict()
  return FrozenDict(tower)


def build_model(model_config: ml_collections.ConfigDict | Mapping[str, Any]
                ) -> Model:
  """The two-tower `Model` of `config.model` (hashable, so jit-friendly)."""
  out_dim = model_config["out_dim"]
  return Model(
      image=_frozen(model_config["image"]),
      text=_frozen(model_config["text"]),
      out_dim=tuple(out_dim) if isinstance(out_dim, (tuple, list)) else out_dim,
      temperature_init=model_config["temperature_init"],
      bias_init=model_config["bias_init"])


def encode_images(model: Model, params: Params, images: jax.Array
                  ) -> jax.Array:
  """L2-normalised image embeddings from the image tower alone.

  Only `params["img"]` is read, so a checkpoint's image subtree suffices.
  """
  features = _image_tower(model).apply(
      {"params": params.get("img", {})}, images)
  return l2_normalize(features.astype(jnp.float32))


def encode_texts(model: Model, params: Params, texts: jax.Array) -> jax.Array:
  """L2-normalised text embeddings from the text tower alone."""
  features = _text_tower(model).apply({"params": params["txt"]}, texts)
  return l2_normalize(features.astype(jnp.float32))
