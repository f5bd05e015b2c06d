"""Tests for trainer.models.load_big_vision: the released `.npz` layout."""

import functools

from flax import traverse_util
from flax.core import FrozenDict
import jax
import ml_dtypes
import numpy as np
import pytest

from trainer.models import load_big_vision
from trainer.models import two_towers

WIDTH = 16
IMAGE = dict(patch_size=4, width=WIDTH, depth=2, mlp_dim=32, num_heads=2,
             pool_type="map", posemb="learn")
TEXT = dict(width=WIDTH, depth=1, mlp_dim=32, num_heads=2, vocab_size=40)
SIZE, LENGTH = 16, 5  # 16 px images in 4 px patches: a 4 x 4 grid.


def make_model(**kw) -> two_towers.Model:
  fields = dict(image=FrozenDict(IMAGE), text=FrozenDict(TEXT),
                out_dim=(None, WIDTH))
  fields.update(kw)
  return two_towers.Model(**fields)


def inputs(size: int = SIZE):
  images = jax.random.uniform(jax.random.key(2), (3, size, size, 3),
                              minval=-1.0, maxval=1.0)
  tokens = jax.random.randint(jax.random.key(3), (3, LENGTH), 2, 40)
  return images, tokens.at[:, -1].set(1)


def abstract(model: two_towers.Model, size: int = SIZE):
  return jax.eval_shape(
      lambda: model.init(jax.random.key(0), *inputs(size))["params"])


@functools.cache
def _jitted_apply(model: two_towers.Model, size: int):
  return jax.jit(lambda p: model.apply({"params": p}, *inputs(size)))


def apply(model: two_towers.Model, params, size: int = SIZE):
  """The model's (zimg, ztxt, extras) on the test inputs (compiled once)."""
  return _jitted_apply(model, size)(params)


def flat(params) -> dict[str, np.ndarray]:
  return traverse_util.flatten_dict(params, sep="/")


def random_params(model: two_towers.Model):
  """Random values in the shapes of the model's parameters.

  Cheaper than `model.init`, whose compilation takes seconds.
  """
  rng = np.random.default_rng(0)
  return jax.tree.map(
      lambda leaf: rng.normal(0.0, 0.5, leaf.shape).astype(leaf.dtype),
      abstract(model))


@pytest.fixture(scope="module")
def tiny():
  """A randomly initialised two-tower model and its parameters."""
  model = make_model()
  return model, random_params(model)


def test_save_npz_writes_the_released_flat_layout(tmp_path, tiny):
  _, params = tiny
  path = str(tmp_path / "model.npz")
  load_big_vision.save_npz(params, path)
  with np.load(path) as archive:
    keys = set(archive.files)
  assert keys == {"params/" + k for k in flat(params)}
  assert {"params/t", "params/b", "params/img/pos_embedding",
          "params/img/embedding/kernel",
          "params/img/Transformer/encoderblock_1/MlpBlock_0/Dense_0/kernel",
          "params/img/MAPHead_0/probe", "params/txt/Embed_0/embedding",
          "params/txt/Encoder_0/encoder_norm/scale",
          "params/txt/head/kernel"} <= keys


def test_loaded_model_gives_identical_outputs(tmp_path, tiny):
  model, params = tiny
  path = str(tmp_path / "model.npz")
  load_big_vision.save_npz(params, path)
  loaded = load_big_vision.load_params(path, abstract(model))
  for key, value in flat(params).items():
    assert flat(loaded)[key].dtype == np.float32
    np.testing.assert_array_equal(flat(loaded)[key], value, err_msg=key)
  want = apply(model, params)
  got = apply(model, loaded)
  for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_array_equal(g, w)


def test_bfloat16_stored_as_void_is_restored(tmp_path, tiny):
  model, params = tiny
  bf16 = jax.tree.map(lambda x: np.asarray(x, ml_dtypes.bfloat16), params)
  path = str(tmp_path / "bf16.npz")
  load_big_vision.save_npz(bf16, path)
  with np.load(path) as archive:
    assert archive["params/t"].dtype == np.dtype("V2")

  restored = load_big_vision.load_npz(path)
  assert restored["params/t"].dtype == ml_dtypes.bfloat16
  np.testing.assert_array_equal(restored["params/img/pos_embedding"],
                                bf16["img"]["pos_embedding"])

  loaded = load_big_vision.load_params(path, abstract(model))
  as_f32 = jax.tree.map(lambda x: np.asarray(x, np.float32), bf16)
  for key, value in flat(as_f32).items():
    assert flat(loaded)[key].dtype == np.float32
    np.testing.assert_array_equal(flat(loaded)[key], value, err_msg=key)
  np.testing.assert_array_equal(apply(model, loaded)[0],
                                apply(model, as_f32)[0])


def test_restore_dtype_knows_only_two_byte_void():
  plain = np.arange(3, dtype=np.float32)
  assert load_big_vision.restore_dtype(plain) is plain
  with pytest.raises(ValueError, match="4-byte void"):
    load_big_vision.restore_dtype(plain.view(np.dtype("V4")))


def test_position_embeddings_are_resampled_to_the_model_resolution(
    tmp_path, tiny):
  _, params = tiny
  path = str(tmp_path / "model.npz")
  load_big_vision.save_npz(params, path)
  model = make_model()
  loaded = load_big_vision.load_params(path, abstract(model, size=32))
  assert loaded["img"]["pos_embedding"].shape == (1, 64, WIDTH)
  np.testing.assert_array_equal(loaded["img"]["embedding"]["kernel"],
                                params["img"]["embedding"]["kernel"])
  zimg, _, _ = apply(model, loaded, size=32)
  assert zimg.shape == (3, WIDTH) and np.isfinite(zimg).all()


def test_resampling_keeps_constants_and_aligns_corners():
  constant = np.full((1, 16, 8), 0.25, np.float32)
  resampled = load_big_vision.resample_posemb(constant, (7, 7))
  assert resampled.shape == (1, 49, 8) and resampled.dtype == np.float32
  np.testing.assert_allclose(resampled, 0.25, rtol=1e-6)

  # A ramp along the rows stays a ramp from the first row's value to the
  # last's: bilinear interpolation with the corners aligned.
  rows = np.repeat(np.arange(4, dtype=np.float32), 4)
  ramp = np.broadcast_to(rows[None, :, None], (1, 16, 2))
  resampled = load_big_vision.resample_posemb(ramp, (7, 7)).reshape(7, 7, 2)
  np.testing.assert_allclose(resampled[:, 0, 0], np.arange(7) * 0.5,
                             atol=1e-6)
  assert load_big_vision.resample_posemb(ramp, (4, 4)) is ramp


def test_resampling_needs_a_square_grid():
  with pytest.raises(ValueError, match="12 patches are not a square grid"):
    load_big_vision.resample_posemb(np.zeros((1, 12, 4)), (4, 4))


def test_mismatched_checkpoints_name_every_difference(tiny):
  model, params = tiny
  ckpt = {"params/" + k: v for k, v in flat(params).items()}
  del ckpt["params/txt/head/bias"]
  ckpt["params/img/head/kernel"] = np.zeros((WIDTH, 4), np.float32)
  ckpt["params/txt/Embed_0/embedding"] = np.zeros((41, WIDTH), np.float32)
  with pytest.raises(ValueError) as error:
    load_big_vision.to_params(ckpt, abstract(model))
  message = str(error.value)
  assert "1 missing (txt/head/bias)" in message
  assert "1 unexpected (img/head/kernel)" in message
  assert ("txt/Embed_0/embedding (41, 16) in the checkpoint, (40, 16) in the "
          "model") in message


def test_a_bottleneck_text_tower_does_not_take_a_full_table(tiny):
  _, params = tiny
  model = make_model(text=FrozenDict(TEXT, bottleneck_dim=4))
  with pytest.raises(ValueError, match=r"missing \(txt/embed_bottleneck/"
                     r"embedding, txt/embed_bottleneck/kernel\).*unexpected "
                     r"\(txt/Embed_0/embedding\)"):
    load_big_vision.to_params(flat(params), abstract(model))


def test_scan_stacked_layers_are_unstacked(tiny):
  model, params = tiny
  ckpt = {}
  for key, value in flat(params).items():
    for i in range(IMAGE["depth"]):
      block = f"Transformer/encoderblock_{i}/"
      if block in key:
        stacked = key.replace(block, "Transformer/encoderblock/")
        ckpt.setdefault(stacked, [None] * IMAGE["depth"])[i] = value
        break
    else:
      ckpt[key] = value
  ckpt = {k: np.stack(v) if isinstance(v, list) else v
          for k, v in ckpt.items()}
  assert "img/Transformer/encoderblock/MlpBlock_0/Dense_0/kernel" in ckpt
  loaded = load_big_vision.to_params(ckpt, abstract(model))
  for key, value in flat(params).items():
    np.testing.assert_array_equal(flat(loaded)[key], value, err_msg=key)


def test_subtrees_select_what_is_loaded(tiny):
  _, params = tiny
  ckpt = {"params/" + k: v for k, v in flat(params).items()}
  # SigLiT: precomputed image embeddings, so the model has no image tower;
  # the checkpoint's text tower, t and b initialise it.
  siglit = make_model(image=None)
  target = jax.eval_shape(lambda: siglit.init(
      jax.random.key(0), np.zeros((1, WIDTH), np.float32),
      inputs()[1])["params"])
  loaded = load_big_vision.to_params(ckpt, target, ("txt", "t", "b"))
  assert set(loaded) == {"txt", "t", "b"}
  np.testing.assert_array_equal(loaded["txt"]["head"]["kernel"],
                                params["txt"]["head"]["kernel"])
  image_only = load_big_vision.to_params(ckpt, abstract(make_model()),
                                         ("img",))
  assert set(image_only) == {"img"}


def test_unreadable_files_are_clear_errors(tmp_path):
  text = tmp_path / "notes.npz"
  text.write_text("not an archive")
  with pytest.raises(ValueError, match="cannot read .*notes.npz as an .npz"):
    load_big_vision.load_npz(str(text))
  single = tmp_path / "single.npz"
  with open(single, "wb") as f:
    np.save(f, np.zeros(3))
  with pytest.raises(ValueError, match="single array"):
    load_big_vision.load_npz(str(single))
  with pytest.raises(ValueError, match="cannot read .*missing.npz"):
    load_big_vision.load_npz(str(tmp_path / "missing.npz"))
