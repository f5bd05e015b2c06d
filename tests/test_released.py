"""Tests for trainer/configs/released.py: the released SigLIP checkpoints.

The parameter shapes of each release are written out here from big_vision's
model code (`models/vit.py`, `models/proj/image_text/{two_towers,
text_transformer}.py` with the settings of `SigLIP_demo.ipynb`), not from
ours. With BIG_VISION_DIR pointing at a big_vision checkout (the directory
holding the `big_vision` package), big_vision's own Flax modules are built
too and compared path for path.
"""

import contextlib
import importlib
import io
import json
import os
import pickle
import sys
import types

from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sentencepiece

from eval import vocabulary_choice
from eval import xm3600
from pipelines import embed
from tests import test_embed
from vocabularies import vocabulary as vocabulary_lib
from trainer import configs
from trainer import input_pipeline
from trainer import model_loader
from trainer.configs import released
from trainer.models import common
from trainer.models import load_big_vision
from trainer.models import two_towers
from trainer.models import vit

# (width, depth, mlp_dim, num_heads), big_vision's decode_variant.
B = (768, 12, 3072, 12)
L = (1024, 24, 4096, 16)
SO400M = (1152, 27, 4304, 16)
# name: (image size, image tower, patch size, patch grid side, text tower,
# text length, vocabulary size, text head size or None).
RELEASED = {
    "b16_224": (224, B, 16, 14, B, 64, 32_000, 768),
    "b16_256": (256, B, 16, 16, B, 64, 32_000, 768),
    "b16_384": (384, B, 16, 24, B, 64, 32_000, 768),
    "b16_512": (512, B, 16, 32, B, 64, 32_000, 768),
    "l16_256": (256, L, 16, 16, L, 64, 32_000, 1024),
    "l16_384": (384, L, 16, 24, L, 64, 32_000, 1024),
    "so400m14_224": (224, SO400M, 14, 16, SO400M, 16, 32_000, 1152),
    # 384 = 27 * 14 + 6: a 27 x 27 grid, the last 6 pixels unused.
    "so400m14_384": (384, SO400M, 14, 27, SO400M, 64, 32_000, 1152),
    "b16_i18n_256": (256, B, 16, 16, B, 64, 250_000, 768),
    "so400m16_i18n_256": (256, SO400M, 16, 16, SO400M, 64, 250_000, None),
}
# One preset per family of equal structure, for the checkpoint round trips.
FAMILIES = ("b16_256", "l16_384", "so400m14_384", "b16_i18n_256",
            "so400m16_i18n_256")
TINY = (16, 2, 32, 2)


def block_shapes(width: int, mlp_dim: int, heads: int) -> dict[str, tuple]:
  """One big_vision Encoder1DBlock: pre-LN attention and MLP."""
  head_dim = width // heads
  shapes = {"LayerNorm_0/scale": (width,), "LayerNorm_0/bias": (width,),
            "LayerNorm_1/scale": (width,), "LayerNorm_1/bias": (width,),
            "MlpBlock_0/Dense_0/kernel": (width, mlp_dim),
            "MlpBlock_0/Dense_0/bias": (mlp_dim,),
            "MlpBlock_0/Dense_1/kernel": (mlp_dim, width),
            "MlpBlock_0/Dense_1/bias": (width,)}
  return {**shapes, **attention_shapes(width, heads)}


def attention_shapes(width: int, heads: int,
                     prefix: str = "MultiHeadDotProductAttention_0"
                     ) -> dict[str, tuple]:
  head_dim = width // heads
  shapes = {f"{prefix}/out/kernel": (heads, head_dim, width),
            f"{prefix}/out/bias": (width,)}
  for name in ("query", "key", "value"):
    shapes[f"{prefix}/{name}/kernel"] = (width, heads, head_dim)
    shapes[f"{prefix}/{name}/bias"] = (heads, head_dim)
  return shapes


def encoder_shapes(prefix: str, dims: tuple) -> dict[str, tuple]:
  width, depth, mlp_dim, heads = dims
  shapes = {f"{prefix}/encoder_norm/scale": (width,),
            f"{prefix}/encoder_norm/bias": (width,)}
  for i in range(depth):
    for key, shape in block_shapes(width, mlp_dim, heads).items():
      shapes[f"{prefix}/encoderblock_{i}/{key}"] = shape
  return shapes


def released_shapes(image: tuple, patch: int, grid: int, text: tuple,
                    text_len: int, vocab_size: int,
                    head: int | None) -> dict[str, tuple]:
  """Every parameter of a released file: "/"-joined path -> shape.

  `image` and `text` are (width, depth, mlp_dim, num_heads).
  """
  width, _, mlp_dim, heads = image
  shapes = {"t": (1,), "b": (1,),
            "img/embedding/kernel": (patch, patch, 3, width),
            "img/embedding/bias": (width,),
            "img/pos_embedding": (1, grid * grid, width),
            "img/MAPHead_0/probe": (1, 1, width),
            "img/MAPHead_0/LayerNorm_0/scale": (width,),
            "img/MAPHead_0/LayerNorm_0/bias": (width,),
            "img/MAPHead_0/MlpBlock_0/Dense_0/kernel": (width, mlp_dim),
            "img/MAPHead_0/MlpBlock_0/Dense_0/bias": (mlp_dim,),
            "img/MAPHead_0/MlpBlock_0/Dense_1/kernel": (mlp_dim, width),
            "img/MAPHead_0/MlpBlock_0/Dense_1/bias": (width,),
            **attention_shapes(
                width, heads, "img/MAPHead_0/MultiHeadDotProductAttention_0"),
            **encoder_shapes("img/Transformer", image),
            **encoder_shapes("txt/Encoder_0", text)}
  text_width = text[0]
  shapes["txt/Embed_0/embedding"] = (vocab_size, text_width)
  shapes["txt/pos_embedding"] = (1, text_len, text_width)
  if head is not None:
    shapes["txt/head/kernel"] = (text_width, head)
    shapes["txt/head/bias"] = (head,)
  return shapes


def flat_shapes(tree) -> dict[str, tuple]:
  return {key: tuple(leaf.shape) for key, leaf in
          traverse_util.flatten_dict(tree, sep="/").items()}


def abstract_params(config):
  model = two_towers.build_model(config.model)
  size = config.data.image_size
  return jax.eval_shape(
      model.init, jax.random.key(0),
      jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32),
      jax.ShapeDtypeStruct((1, config.data.text_len), jnp.int32))["params"]


def preset_config(name: str):
  return configs.load_python_config(f"{released.__file__}:{name}")


@pytest.fixture
def tiny_variants(monkeypatch):
  """Every variant the releases use, at a tiny size (structure unchanged)."""
  for variant in ("B", "L", "So400m"):
    monkeypatch.setitem(common.VARIANTS, variant, TINY)


def tiny_preset_config(name: str):
  """The preset at the tiny size: text heads map to the tiny width, as they
  map to the image width at full size (needs `tiny_variants`)."""
  config = preset_config(name)
  if config.model.out_dim[1] is not None:
    config.model.out_dim = (None, TINY[0])
  return config


def test_every_release_has_a_written_table():
  assert set(released.RELEASES) == set(RELEASED)


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_preset_parameters_are_those_of_the_released_file(name):
  size, image, patch, grid, text, text_len, vocab_size, head = RELEASED[name]
  assert size // patch == grid
  config = preset_config(name)
  assert flat_shapes(abstract_params(config)) == released_shapes(
      image, patch, grid, text, text_len, vocab_size, head)
  # The release's preprocessing.
  assert (config.data.image_size, config.data.text_len) == (size, text_len)
  assert config.data.image_mode == input_pipeline.RESIZE_BILINEAR
  assert config.data.lowercase == vocabulary_lib.LOWERCASE_ASCII
  assert config.model.image.pool_type == "map"
  assert config.model.text.bottleneck_dim is None
  assert (config.model.temperature_init, config.model.bias_init) == (
      10.0, -10.0)


@pytest.fixture(scope="module")
def big_vision_two_towers():
  """big_vision's two_towers module, from the checkout at BIG_VISION_DIR.

  `big_vision.utils` (only its checkpoint loaders use it, and it needs
  packages this project does not install) is replaced by an empty module.
  """
  root = os.environ.get("BIG_VISION_DIR")
  if not root:
    pytest.skip("BIG_VISION_DIR (a big_vision checkout) is not set")
  sys.path.insert(0, root)
  try:
    package = importlib.import_module("big_vision")
    sys.modules["big_vision.utils"] = package.utils = types.ModuleType(
        "big_vision.utils")
    yield importlib.import_module(
        "big_vision.models.proj.image_text.two_towers")
  finally:
    sys.path.remove(root)
    for name in [m for m in sys.modules if m.split(".")[0] == "big_vision"]:
      del sys.modules[name]


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_presets_match_big_vision_own_modules(name, big_vision_two_towers):
  release = released.RELEASES[name]
  # The model config of SigLIP_demo.ipynb.
  model = big_vision_two_towers.Model(
      image=dict(variant=release.image_variant, pool_type="map"),
      text=dict(variant=release.text_variant, vocab_size=release.vocab_size),
      out_dim=(None, release.embedding_dim), bias_init=-10.0,
      temperature_init=10.0)
  size = release.image_size
  theirs = jax.eval_shape(
      model.init, jax.random.key(0),
      jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32),
      jax.ShapeDtypeStruct((1, release.text_len), jnp.int32))["params"]
  assert flat_shapes(abstract_params(preset_config(name))) == flat_shapes(
      theirs)


@pytest.mark.parametrize("name", FAMILIES)
def test_a_random_checkpoint_round_trips_through_the_released_layout(
    name, tiny_variants, tmp_path):
  del tiny_variants
  config = tiny_preset_config(name)
  abstract = abstract_params(config)
  params = test_embed.random_params(abstract, seed=len(name))
  path = str(tmp_path / "release.npz")
  load_big_vision.save_npz(params, path)
  # The file has exactly the released keys and shapes, at the tiny size.
  _, _, patch, grid, _, text_len, vocab_size, head = RELEASED[name]
  stored = load_big_vision.load_npz(path)
  assert {key: value.shape for key, value in stored.items()} == {
      load_big_vision.PREFIX + key: shape for key, shape in released_shapes(
          TINY, patch, grid, TINY, text_len, vocab_size,
          head and TINY[0]).items()}
  loaded = load_big_vision.load_params(path, abstract)
  flat, flat_loaded = (traverse_util.flatten_dict(tree, sep="/")
                       for tree in (params, loaded))
  assert flat.keys() == flat_loaded.keys()
  for key, value in flat.items():
    assert flat_loaded[key].dtype == value.dtype, key
    assert np.array_equal(flat_loaded[key], value), key


def test_a_lower_resolution_release_loads_at_a_non_multiple_size(
    tiny_variants, tmp_path):
  # So400m/14 at 224 (16 x 16 patches) into the 384 model (27 x 27).
  del tiny_variants
  low = abstract_params(tiny_preset_config("so400m14_224"))
  params = test_embed.random_params(low, seed=1)
  path = str(tmp_path / "low.npz")
  load_big_vision.save_npz(params, path)
  high = abstract_params(tiny_preset_config("so400m14_384"))
  loaded = load_big_vision.load_params(path, high, ("img",))
  posemb = loaded["img"]["pos_embedding"]
  assert posemb.shape == (1, 27 * 27, TINY[0])
  grid = posemb.reshape(27, 27, -1)
  source = np.asarray(params["img"]["pos_embedding"]).reshape(16, 16, -1)
  for corner in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
    np.testing.assert_allclose(grid[corner], source[corner], rtol=1e-6)


def test_a_non_multiple_image_size_is_a_valid_patch_convolution():
  patch, width, size = 14, 8, 40  # 2 x 2 patches, 12 pixels left over.
  model = vit.Model(patch_size=patch, width=width, depth=1, mlp_dim=16,
                    num_heads=2, pool_type="gap")
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, (2, size, size + 3, 3)).astype(np.float32)
  params = test_embed.random_params(
      jax.eval_shape(model.init, jax.random.key(0), images)["params"], 0)
  params["embedding"]["bias"] = rng.normal(size=width).astype(np.float32)
  assert params["pos_embedding"].shape == (1, 2 * 3, width)
  _, state = model.apply({"params": params}, images,
                         capture_intermediates=True)
  stem = np.asarray(state["intermediates"]["embedding"]["__call__"][0])
  # The reference: whole patches from the top left, as numpy sums.
  kernel = np.asarray(params["embedding"]["kernel"], np.float64)
  reference = np.zeros((2, 2, 3, width))
  for i in range(2):
    for j in range(3):
      window = images[:, i * patch:(i + 1) * patch, j * patch:(j + 1) * patch]
      reference[:, i, j] = np.einsum("bhwc,hwcd->bd", window, kernel)
  reference += params["embedding"]["bias"]
  np.testing.assert_allclose(stem, reference, rtol=1e-5, atol=1e-5)
  # The ignored pixels change nothing.
  changed = images.copy()
  changed[:, 2 * patch:] = 0.5
  changed[:, :, 3 * patch:] = -0.5
  np.testing.assert_array_equal(model.apply({"params": params}, changed),
                                model.apply({"params": params}, images))


def test_an_image_smaller_than_a_patch_is_refused():
  model = vit.Model(patch_size=14, width=8, depth=1, mlp_dim=16, num_heads=2)
  with pytest.raises(ValueError, match="smaller than the patch size 14"):
    jax.eval_shape(model.init, jax.random.key(0),
                   jax.ShapeDtypeStruct((1, 13, 20, 3), jnp.float32))


# Captions whose capitals are not ASCII: the two lowercasings differ.
CAPTIONS = {
    "el": ("Ένας Σκύλος στην ΠΑΡΑΛΙΑ, DSLR",
           "Ένας Σκύλος στην ΠΑΡΑΛΙΑ, dslr",
           "ένας σκύλος στην παραλια, dslr"),
    "ru": ("Красная Машина у ДОМА в Москве",
           "Красная Машина у ДОМА в Москве",
           "красная машина у дома в москве"),
    "uk": ("Їжак і Ґанок біля Школи, TV",
           "Їжак і Ґанок біля Школи, tv",
           "їжак і ґанок біля школи, tv"),
}


@pytest.mark.parametrize("lang", sorted(CAPTIONS))
def test_ascii_lowercasing_changes_only_a_to_z(lang):
  text, ascii_lower, unicode_lower = CAPTIONS[lang]
  prepare = vocabulary_lib.prepare_text
  assert prepare(text, "ascii") == ascii_lower
  assert prepare(text, "unicode") == prepare(text, True) == unicode_lower
  assert prepare(text, "none") == prepare(text, False) == text
  # big_vision's tokenize op lowercases with tf.strings.lower.
  tf = pytest.importorskip("tensorflow")
  assert tf.strings.lower(text).numpy().decode() == ascii_lower


def test_an_unknown_lowercase_mode_is_named():
  with pytest.raises(ValueError, match="none, ascii, unicode, got 'upper'"):
    vocabulary_lib.prepare_text("x", "upper")


def test_vocabulary_tokens_follow_the_lowercase_mode(multi_vocab_dir):
  model = str(multi_vocab_dir / "multi250k.model")
  processor = sentencepiece.SentencePieceProcessor(model_file=model)
  texts = [text for text, _, _ in CAPTIONS.values()]
  for mode, column in (("ascii", 1), ("unicode", 2)):
    vocabulary = vocabulary_lib.Vocabulary.load(model, lowercase=mode)
    expected = [processor.Encode(row[column]) + [1]
                for row in CAPTIONS.values()]
    assert vocabulary.encode_batch(texts) == expected
  ascii_ids = vocabulary_lib.Vocabulary.load(
      model, lowercase="ascii").encode_batch(texts)
  unicode_ids = vocabulary_lib.Vocabulary.load(model).encode_batch(texts)
  assert all(a != u for a, u in zip(ascii_ids, unicode_ids))
  # Stored as before the modes existed; kept through pickling (Beam).
  assert vocabulary_lib.Vocabulary.load(model, lowercase="none").lowercase is (
      False)
  assert vocabulary_lib.Vocabulary.load(
      model, lowercase="unicode").lowercase is True
  shipped = pickle.loads(pickle.dumps(
      vocabulary_lib.Vocabulary.load(model, lowercase="ascii")))
  assert shipped.lowercase == "ascii"
  assert shipped.encode_batch(texts) == ascii_ids


def test_an_unknown_preset_is_one_line_naming_the_known_ones(
    xm3600_dir, tmp_path, capsys):
  with pytest.raises(ValueError) as error:
    released.get_config("so400m14_385")
  message = str(error.value)
  assert "\n" not in message
  assert message.startswith("unknown release preset 'so400m14_385'; known "
                            "presets: b16_224, b16_256,")
  for name in released.RELEASES:
    assert name in message
  npz = tmp_path / "model.npz"
  npz.write_bytes(b"")
  code = xm3600.main([
      "--data_dir", str(xm3600_dir), "--checkpoint", str(npz),
      "--config", f"{released.__file__}:so400m14_385", "--output",
      str(tmp_path / "out")])
  err = capsys.readouterr().err
  assert code == 1 and err.count("\n") == 1
  assert "unknown release preset 'so400m14_385'; known presets:" in err


@pytest.fixture
def released_npz(tiny_variants, tmp_path):
  """A random so400m16_i18n_256-structured checkpoint (tiny sizes)."""
  del tiny_variants
  params = test_embed.random_params(
      abstract_params(preset_config("so400m16_i18n_256")), seed=5)
  path = tmp_path / "webli_i18n_so400m_16_256.npz"
  load_big_vision.save_npz(params, str(path))
  return path, params


def test_xm3600_runs_a_release_with_its_file_and_preset_name(
    released_npz, xm3600_dir, multi_vocab_dir, tmp_path):
  npz, params = released_npz
  model_file = multi_vocab_dir / "multi250k.model"
  output = tmp_path / "report"
  stderr = io.StringIO()
  with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(
      stderr):
    code = xm3600.main([
        "--data_dir", str(xm3600_dir), "--checkpoint", str(npz),
        "--config", f"{released.__file__}:so400m16_i18n_256",
        "--vocab", str(model_file), "--output", str(output),
        "--lang", "el,ru,uk"])
  assert code == 0, stderr.getvalue()
  report = json.loads((output / xm3600.RESULTS_FILE).read_text())
  assert report["checkpoint"]["kind"] == "big_vision"
  assert report["options"]["lowercase"] == "ascii"
  assert (report["options"]["image_size"], report["options"]["image_mode"],
          report["options"]["text_len"]) == (
              256, input_pipeline.RESIZE_BILINEAR, 64)
  assert report["vocabulary"]["source"] == "--vocab"
  # The captions' tokens, as big_vision's tokenize op makes them: ASCII
  # lowercasing, EOS appended and sticky, padded with 1.
  processor = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
  captions = [json.loads(line) for line in
              (xm3600_dir / "captions.jsonl").read_text().splitlines()]
  texts = [caption[lang]["caption"][0] for caption in captions[:4]
           for lang in ("el", "ru", "uk")]
  ascii_lower = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                              "abcdefghijklmnopqrstuvwxyz")
  expected = [processor.Encode(text.translate(ascii_lower))[:63] + [1]
              for text in texts]
  config, loaded, _ = model_loader.load(
      str(npz), f"{released.__file__}:so400m16_i18n_256")
  choice = vocabulary_choice.choose_vocabulary(config,
                                                vocab_path=str(model_file))
  assert [choice.vocabulary.encode(text, 64) for text in texts] == expected
  flat = traverse_util.flatten_dict(params, sep="/")
  for key, value in traverse_util.flatten_dict(loaded, sep="/").items():
    assert np.array_equal(value, flat[key]), key


def test_embed_runs_a_release_with_its_file_and_preset_name(
    released_npz, built_dataset, tmp_path):
  npz, _ = released_npz
  output = tmp_path / "lit"
  preset = f"{released.__file__}:so400m16_i18n_256"
  assert embed.main(["--dataset", str(built_dataset), "--checkpoint",
                     str(npz), "--model_config", preset, "--output",
                     str(output), "--batch_size", "8"]) == 0
  manifest = json.loads((output / "manifest.json").read_text())
  source = json.loads((built_dataset / "manifest.json").read_text())
  assert manifest["counts"]["kept"] == source["counts"]["kept"]
  tower = manifest["tower"]
  assert (tower["kind"], tower["image_size"], tower["embedding_dim"]) == (
      model_loader.BIG_VISION, 256, TINY[0])
  # No --image_mode: the preset's, big_vision's preprocessing.
  assert tower["image_mode"] == input_pipeline.RESIZE_BILINEAR
  assert tower["image_tower"]["variant"] == "So400m/16"
