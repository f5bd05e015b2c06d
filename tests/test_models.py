"""Tests for trainer.models: towers, two-tower outputs, parameter layout."""

import math

from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trainer.models import common
from trainer.models import text
from trainer.models import two_towers
from trainer.models import vit

WIDTH = 32
TINY = dict(width=WIDTH, depth=1, mlp_dim=64, num_heads=4)
IMAGE = dict(patch_size=8, pool_type="map", posemb="learn", **TINY)
TEXT = dict(vocab_size=50, **TINY)
BATCH, SIZE, LENGTH = 3, 16, 6


def flat(params) -> dict[str, jax.Array]:
  return traverse_util.flatten_dict(params, sep="/")


def count(params) -> int:
  return sum(math.prod(x.shape) for x in jax.tree.leaves(params))


def images(seed: int = 0, batch: int = BATCH) -> jax.Array:
  return jax.random.uniform(jax.random.key(seed), (batch, SIZE, SIZE, 3),
                            minval=-1.0, maxval=1.0)


def tokens(seed: int = 1, batch: int = BATCH) -> jax.Array:
  ids = jax.random.randint(jax.random.key(seed), (batch, LENGTH), 2, 50)
  return ids.at[:, -1].set(1)  # EOS-terminated.


def two_tower(**kw) -> two_towers.Model:
  fields = dict(image=IMAGE, text=TEXT, out_dim=(None, WIDTH))
  fields.update(kw)
  return two_towers.Model(**fields)


def init(model, *inputs):
  return model.init(jax.random.key(0), *inputs)["params"]


@pytest.fixture(scope="module")
def tiny():
  model = two_tower()
  return model, init(model, images(), tokens())


def test_outputs_are_l2_normalised_with_t_10_and_b_minus_10(tiny):
  model, params = tiny
  zimg, ztxt, extras = model.apply({"params": params}, images(), tokens())
  assert zimg.shape == ztxt.shape == (BATCH, WIDTH)
  assert zimg.dtype == ztxt.dtype == jnp.float32
  np.testing.assert_allclose(jnp.linalg.norm(zimg, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(jnp.linalg.norm(ztxt, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(params["t"], [math.log(10.0)], rtol=1e-6)
  np.testing.assert_allclose(extras["t"], 10.0, rtol=1e-6)
  np.testing.assert_allclose(extras["b"], -10.0)
  assert extras["t"].shape == extras["b"].shape == ()
  np.testing.assert_allclose(
      zimg, two_towers.l2_normalize(extras["img/features"]), rtol=1e-6)


def test_temperature_and_bias_inits_are_configurable_and_bias_optional():
  # Without inputs only t and b are made, which keeps this test cheap.
  model = two_tower(temperature_init=1.0, bias_init=None)
  params = init(model, None, None)
  assert set(params) == {"t"}
  np.testing.assert_allclose(params["t"], [0.0])
  _, _, extras = model.apply({"params": params}, None, None)
  assert extras["b"] is None
  np.testing.assert_allclose(extras["t"], 1.0)


def test_either_input_may_be_none(tiny):
  model, params = tiny
  zimg, ztxt, _ = model.apply({"params": params}, images(), None)
  assert ztxt is None and zimg.shape == (BATCH, WIDTH)
  zimg, ztxt, _ = model.apply({"params": params}, None, tokens())
  assert zimg is None and ztxt.shape == (BATCH, WIDTH)


def test_towers_alone_match_the_joint_call_and_need_only_their_subtree(tiny):
  model, params = tiny
  zimg, ztxt, _ = model.apply({"params": params}, images(), tokens())
  np.testing.assert_array_equal(
      two_towers.encode_images(model, {"img": params["img"]}, images()), zimg)
  np.testing.assert_array_equal(
      two_towers.encode_texts(model, {"txt": params["txt"]}, tokens()), ztxt)


def test_parameter_tree_has_big_vision_names_and_shapes(tiny):
  _, params = tiny
  shapes = {k: v.shape for k, v in flat(params).items()}
  heads, head_dim = 4, WIDTH // 4
  expected = {
      "t": (1,),
      "b": (1,),
      "img/embedding/kernel": (8, 8, 3, WIDTH),
      "img/embedding/bias": (WIDTH,),
      "img/pos_embedding": (1, 4, WIDTH),
      "img/Transformer/encoderblock_0/LayerNorm_0/scale": (WIDTH,),
      "img/Transformer/encoderblock_0/MultiHeadDotProductAttention_0/"
      "query/kernel": (WIDTH, heads, head_dim),
      "img/Transformer/encoderblock_0/MultiHeadDotProductAttention_0/"
      "out/kernel": (heads, head_dim, WIDTH),
      "img/Transformer/encoderblock_0/LayerNorm_1/bias": (WIDTH,),
      "img/Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel": (WIDTH, 64),
      "img/Transformer/encoderblock_0/MlpBlock_0/Dense_1/kernel": (64, WIDTH),
      "img/Transformer/encoder_norm/scale": (WIDTH,),
      "img/MAPHead_0/probe": (1, 1, WIDTH),
      "img/MAPHead_0/MultiHeadDotProductAttention_0/key/kernel":
          (WIDTH, heads, head_dim),
      "img/MAPHead_0/LayerNorm_0/scale": (WIDTH,),
      "img/MAPHead_0/MlpBlock_0/Dense_1/bias": (WIDTH,),
      "txt/Embed_0/embedding": (50, WIDTH),
      "txt/pos_embedding": (1, LENGTH, WIDTH),
      "txt/Encoder_0/encoderblock_0/MultiHeadDotProductAttention_0/"
      "value/bias": (heads, head_dim),
      "txt/Encoder_0/encoder_norm/bias": (WIDTH,),
      "txt/head/kernel": (WIDTH, WIDTH),
      "txt/head/bias": (WIDTH,),
  }
  assert {k: shapes.get(k) for k in expected} == expected
  assert "img/head/kernel" not in shapes  # out_dim[0] is None.
  assert not [k for k in shapes if "encoderblock_1" in k]  # depth 1.


def test_last_token_pooling_reads_the_last_position():
  # Without encoder blocks no position sees another, so the pooled features
  # depend on exactly one position: the last.
  model = text.Model(**{**TEXT, "depth": 0})
  ids = tokens()
  params = init(model, ids)
  base = model.apply({"params": params}, ids)
  earlier = model.apply({"params": params}, ids.at[:, 0].set(7))
  last = model.apply({"params": params}, ids.at[:, -1].set(7))
  np.testing.assert_array_equal(earlier, base)
  assert np.all(np.abs(last - base).max(axis=1) > 1e-3)


def test_attention_carries_earlier_tokens_to_the_pooled_last_one():
  model = text.Model(**TEXT)
  ids = tokens()
  params = init(model, ids)
  base = model.apply({"params": params}, ids)
  changed = model.apply({"params": params}, ids.at[0, 0].set(7))
  assert np.abs(changed[0] - base[0]).max() > 1e-4
  np.testing.assert_array_equal(changed[1:], base[1:])


def test_bottleneck_embedding_is_a_table_and_a_projection():
  model = text.Model(**TEXT, bottleneck_dim=8)
  params = flat(init(model, tokens()))
  assert params["embed_bottleneck/embedding"].shape == (50, 8)
  assert params["embed_bottleneck/kernel"].shape == (8, WIDTH)
  assert not [k for k in params if k.startswith("Embed_0")]


def test_map_and_gap_pooling():
  for pool_type in ("map", "gap"):
    model = vit.Model(**{**IMAGE, "pool_type": pool_type}, num_classes=10)
    shapes = jax.eval_shape(model.init, jax.random.key(0), images())
    assert ("MAPHead_0" in shapes["params"]) == (pool_type == "map")
    assert jax.eval_shape(model.apply, shapes, images()).shape == (BATCH, 10)

  model = vit.Model(**{**IMAGE, "pool_type": "gap"})
  params = init(model, images())
  pooled, state = model.apply({"params": params}, images(),
                              capture_intermediates=True)
  encoded = state["intermediates"]["Transformer"]["__call__"][0]
  assert encoded.shape == (BATCH, 4, WIDTH)
  np.testing.assert_allclose(pooled, encoded.mean(axis=1), rtol=1e-6)


def test_sincos_posemb_has_no_parameters_and_the_moco_v3_values():
  model = vit.Model(**{**IMAGE, "posemb": "sincos2d"})
  shapes = jax.eval_shape(model.init, jax.random.key(0), images())
  assert "pos_embedding" not in shapes["params"]
  pe = vit.posemb_sincos_2d(2, 3, 8)
  assert pe.shape == (1, 6, 8)
  # Patch (0, 0): sin 0 = 0, cos 0 = 1 for both axes.
  np.testing.assert_allclose(pe[0, 0], [0, 0, 1, 1, 0, 0, 1, 1], atol=1e-7)
  # Patch (row 1, column 2): x = 2, y = 1, frequencies 1 and 1e-4.
  np.testing.assert_allclose(
      pe[0, 5], [np.sin(2), np.sin(2e-4), np.cos(2), np.cos(2e-4),
                 np.sin(1), np.sin(1e-4), np.cos(1), np.cos(1e-4)],
      rtol=1e-6)


def test_vit_b16_parameter_count():
  # ViT-B/16 at 224 px, average pooling, no head: 85,797,120 parameters, the
  # ViT paper's "86M" (85,798,656 with its class token). The MAP head of
  # SigLIP adds one more attention + MLP block and a probe: 92,884,224.
  shapes = lambda pool: jax.eval_shape(
      vit.Model(variant="B/16", pool_type=pool).init, jax.random.key(0),
      jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32))
  assert count(shapes("gap")) == 85_797_120
  assert count(shapes("map")) == 92_884_224


def test_variants_and_overrides():
  assert common.resolve_dims("So400m") == common.TowerDims(1152, 27, 4304, 16)
  assert common.resolve_dims("B", depth=2) == common.TowerDims(768, 2, 3072, 12)
  with pytest.raises(ValueError, match="unknown variant"):
    common.resolve_dims("XL")
  with pytest.raises(ValueError, match="explicit depth"):
    common.resolve_dims(None, width=8, mlp_dim=8, num_heads=2)


def test_precomputed_image_embeddings_with_optional_head():
  embeddings = jax.random.normal(jax.random.key(2), (BATCH, WIDTH))
  without_head = two_tower(image=None)
  params = init(without_head, embeddings, tokens())
  assert "img" not in params
  zimg, _, _ = without_head.apply({"params": params}, embeddings, tokens())
  np.testing.assert_allclose(zimg, two_towers.l2_normalize(embeddings),
                             rtol=1e-6)
  np.testing.assert_array_equal(
      two_towers.encode_images(without_head, params, embeddings), zimg)

  with_head = two_tower(image=None, out_dim=16)
  shapes = jax.eval_shape(with_head.init, jax.random.key(0), embeddings,
                          tokens())
  assert shapes["params"]["img"]["head"]["kernel"].shape == (WIDTH, 16)


def test_mismatched_embedding_sizes_and_tower_num_classes_are_rejected():
  def abstract_init(model):
    jax.eval_shape(model.init, jax.random.key(0), images(), tokens())

  with pytest.raises(ValueError, match="out_dim"):
    abstract_init(two_tower(out_dim=(None, 16)))
  with pytest.raises(ValueError, match="not model.image.num_classes"):
    abstract_init(two_tower(image={**IMAGE, "num_classes": 8}))


def test_bfloat16_compute_keeps_float32_params_and_outputs(tiny):
  model, params = tiny
  bf16 = two_tower(image={**IMAGE, "dtype": "bfloat16"},
                   text={**TEXT, "dtype": "bfloat16"})
  shapes = jax.eval_shape(bf16.init, jax.random.key(0), images(), tokens())
  assert {x.dtype for x in jax.tree.leaves(shapes)} == {jnp.dtype("float32")}
  zimg, ztxt, _ = jax.jit(bf16.apply)({"params": params}, images(), tokens())
  assert zimg.dtype == ztxt.dtype == jnp.float32
  reference, _, _ = model.apply({"params": params}, images(), tokens())
  np.testing.assert_allclose(zimg, reference, atol=0.05)


def test_remat_changes_neither_outputs_nor_gradients(tiny):
  _, params = tiny
  params = params["txt"]

  def loss(remat, p):
    return jnp.sum(text.Model(**TEXT, num_classes=WIDTH, remat=remat).apply(
        {"params": p}, tokens()) ** 2)

  value, grads = jax.jit(jax.value_and_grad(lambda p: loss(False, p)))(
      params)
  remat_value, remat_grads = jax.jit(
      jax.value_and_grad(lambda p: loss(True, p)))(params)
  np.testing.assert_allclose(remat_value, value, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
               remat_grads, grads)
