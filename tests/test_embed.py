"""Tests for pipelines.embed and pipelines.frozen_tower: LiT datasets."""

import json
import math
import os
import pathlib
import shutil

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dataformat import files
from dataformat import manifest as manifest_lib
from dataformat import records
from dataformat import shards
from pipelines import embed
from pipelines import frozen_tower
from pipelines import verify
from tests.fixtures import dataflow as dataflow_fixture
from tests.fixtures import faults
from tests.fixtures import records as synthetic
from trainer import checkpoints
from trainer import configs
from trainer import export
from trainer import input_pipeline
from trainer import model_loader
from trainer.models import load_big_vision
from trainer.models import two_towers

STEP = 5
IMAGE_SIZE = 32
HEAD_DIM = 24
# A tiny SigLIP whose image tower has a head, so the stored embedding is the
# head's output (HEAD_DIM), not the ViT width.
TOWER_CONFIG = f'''
"""A tiny SigLIP for the embedding tests."""
from trainer import configs


def get_config():
  config = configs.base_config()
  config.data.image_size = {IMAGE_SIZE}
  config.model.image = configs.image_tower(
      patch_size=8, width=32, depth=1, mlp_dim=64, num_heads=2,
      pool_type="map", posemb="learn")
  config.model.text = configs.text_tower(
      width=32, depth=1, mlp_dim=64, num_heads=2, vocab_size=1000)
  config.model.out_dim = ({HEAD_DIM}, {HEAD_DIM})
  return config
'''


def random_params(abstract, seed: int):
  """Parameters drawn at the usual scales, in the shapes of `abstract`.

  Weights ~ N(0, 1 / fan_in), LayerNorm scales 1, biases 0, as an `init`
  would give, without compiling `init` (seconds of XLA time).
  """
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    if leaf.ndim >= 2:
      fan_in = math.prod(leaf.shape[:-1])
      return rng.normal(0.0, fan_in**-0.5, leaf.shape).astype(leaf.dtype)
    fill = 1.0 if jax.tree_util.keystr(path).endswith("['scale']") else 0.0
    return np.full(leaf.shape, fill, leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, abstract)


@pytest.fixture(scope="module")
def tower_config_file(tmp_path_factory) -> pathlib.Path:
  path = tmp_path_factory.mktemp("tower_config") / "tiny_siglip.py"
  path.write_text(TOWER_CONFIG)
  return path


@pytest.fixture(scope="module")
def tower_workdir(tmp_path_factory, tower_config_file) -> pathlib.Path:
  """A trainer workdir with one checkpoint of a randomly initialised model."""
  workdir = tmp_path_factory.mktemp("tower_workdir")
  config = model_loader.load_config_file(str(tower_config_file))
  model = two_towers.build_model(config.model)
  abstract = jax.eval_shape(
      model.init, jax.random.key(3), jnp.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3)),
      jnp.ones((1, 16), jnp.int32))["params"]
  params = random_params(abstract, seed=3)
  checkpoints.save_config(config, workdir)
  checkpointer = checkpoints.Checkpointer(workdir, max_to_keep=1)
  data_iter = iter(grain.MapDataset.range(4).to_iter_dataset())
  checkpointer.save(STEP, {"step": STEP, "params": params}, data_iter)
  checkpointer.wait()
  checkpointer.close()
  return workdir


def run_embed(*argv) -> int:
  return embed.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def lit_dataset(tmp_path_factory, built_dataset, tower_workdir) -> pathlib.Path:
  output = tmp_path_factory.mktemp("lit") / "dataset"
  assert run_embed("--dataset", built_dataset, "--checkpoint", tower_workdir,
                   "--output", output, "--batch_size", 16) == 0
  return output


def read_records(dataset: pathlib.Path) -> dict[str, records.Record]:
  by_key = {}
  for shard in sorted(dataset.glob("*.array_record")):
    for data in shards.read_array_record(str(shard)):
      record = records.parse_record(data)
      by_key[record.key] = record
  return by_key


def manifest(dataset: pathlib.Path) -> dict:
  return json.loads((dataset / shards.MANIFEST).read_text())


def shard_hashes(dataset: pathlib.Path) -> list[str]:
  return [s["sha256"] for s in manifest(dataset)["shards"]]


def test_lit_dataset_holds_every_record_with_text_tokens_and_embedding(
    lit_dataset, built_dataset):
  source, lit = manifest(built_dataset), manifest(lit_dataset)
  assert lit["counts"]["read"] == lit["counts"]["kept"] == (
      source["counts"]["kept"])
  assert sum(lit["counts"]["rejected"].values()) == 0
  assert len(lit["shards"]) == len(source["shards"])
  assert lit["languages"] == source["languages"]
  assert lit["vocabularies"] == source["vocabularies"]
  assert verify.verify_dataset(str(lit_dataset)).ok

  originals, embedded = read_records(built_dataset), read_records(lit_dataset)
  assert sorted(embedded) == sorted(originals)
  for key, record in embedded.items():
    original = originals[key]
    assert (record.text, record.lang, record.lang_score, record.source) == (
        original.text, original.lang, original.lang_score, original.source)
    assert record.tokens == original.tokens and set(record.tokens) == {
        "en32k", "multi250k"}
    assert record.image_encoded == b"" and record.image_height == 0
    assert record.image_embedding.shape == (HEAD_DIM,)
    assert np.isfinite(record.image_embedding).all()


def test_manifest_names_the_tower_and_the_source(lit_dataset, built_dataset,
                                                 tower_workdir):
  tower = manifest(lit_dataset)["tower"]
  assert tower["kind"] == model_loader.OURS
  assert tower["step"] == STEP
  assert tower["sha256"] == model_loader.checkpoint_sha256(str(tower_workdir))
  assert (tower["embedding_dim"], tower["dtype"], tower["normalized"]) == (
      HEAD_DIM, "float32", False)
  assert (tower["image_size"], tower["image_mode"]) == (IMAGE_SIZE, "resize")
  assert tower["image_tower"]["patch_size"] == 8
  source = manifest(lit_dataset)["source_dataset"]
  assert source["manifest_sha256"] == files.sha256(
      str(built_dataset / shards.MANIFEST))
  assert source["records"] == manifest(built_dataset)["counts"]["kept"]


def test_the_manifest_gives_back_the_tower_spec(lit_dataset, tower_workdir):
  spec, image_mode = embed.manifest_tower(
      manifest_lib.read(str(lit_dataset / shards.MANIFEST)))
  assert spec == model_loader.describe_tower(str(tower_workdir))
  assert image_mode == input_pipeline.RESIZE


def test_embedding_equals_the_trainer_tower_output(lit_dataset, built_dataset,
                                                   tower_workdir):
  config, params, _ = model_loader.load(tower_workdir)
  model = two_towers.build_model(config.model)
  to_example = input_pipeline.RecordToExample(
      image_field=records.IMAGE_ENCODED, image_size=config.data.image_size,
      image_mode=input_pipeline.RESIZE, vocab_name="en32k", text_len=16)
  shard = sorted(built_dataset.glob("*.array_record"))[1]
  data = shards.read_array_record(str(shard))[:6]
  examples = [to_example.random_map(d, np.random.default_rng(0))
              for d in data]
  batch = {name: np.stack([e[name] for e in examples])
           for name in examples[0]}
  zimg, _, extras = jax.jit(model.apply)(
      {"params": params}, batch[input_pipeline.IMAGE],
      batch[input_pipeline.TEXT])
  stored = read_records(lit_dataset)
  embeddings = np.stack([stored[records.parse_record(d).key].image_embedding
                         for d in data])
  np.testing.assert_allclose(embeddings, extras["img/features"], atol=1e-5)
  # Normalised as the two-tower model does, they are its image embeddings.
  np.testing.assert_allclose(two_towers.l2_normalize(embeddings), zimg,
                             atol=1e-5)


def test_lit_dataset_feeds_the_trainer_input_pipeline(lit_dataset):
  data_config = configs.base_config().data
  data_config.update(dict(
      train_dir=str(lit_dataset), vocab_name="en32k", text_len=16,
      image_size=IMAGE_SIZE, image_field=records.IMAGE_EMBEDDING))
  iterator = input_pipeline.make_train_iterator(data_config, 8, seed=0)
  batch = next(iterator)
  assert batch[input_pipeline.IMAGE].shape == (8, HEAD_DIM)
  assert batch[input_pipeline.TEXT].shape == (8, 16)
  stored = np.stack([r.image_embedding
                     for r in read_records(lit_dataset).values()])
  for row in batch[input_pipeline.IMAGE]:
    assert np.any(np.all(stored == row, axis=1))


def test_exported_npz_tower_writes_the_same_records(
    tmp_path, capsys, lit_dataset, built_dataset, tower_workdir):
  # The way to Dataflow: export the run as a big_vision .npz, describe it
  # with the run's config.json.
  npz = tmp_path / "siglip.npz"
  assert export.main(["--checkpoint", str(tower_workdir), "--output",
                      str(npz)]) == 0
  assert "arrays" in capsys.readouterr().out
  output = tmp_path / "lit_npz"
  assert run_embed("--dataset", built_dataset, "--checkpoint", npz,
                   "--model_config", tower_workdir / checkpoints.CONFIG_FILE,
                   "--output", output, "--batch_size", 16) == 0
  assert shard_hashes(output) == shard_hashes(lit_dataset)
  tower = manifest(output)["tower"]
  assert (tower["kind"], tower["step"]) == (model_loader.BIG_VISION, None)
  assert tower["sha256"] == files.sha256(str(npz))
  assert tower["embedding_dim"] == HEAD_DIM


def test_embedder_pads_the_last_batch_and_compiles_once(tower_workdir):
  spec = model_loader.describe_tower(str(tower_workdir))
  embedder = frozen_tower.load_embedder(spec, batch_size=4)
  images = np.random.default_rng(0).uniform(
      -1, 1, (6, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)
  together = embedder(images)
  alone = embedder(images[5:])
  assert together.shape == (6, HEAD_DIM) and together.dtype == np.float32
  np.testing.assert_allclose(alone[0], together[5], atol=1e-6)
  assert embedder.traces == 1
  with pytest.raises(ValueError, match=r"images must be \[n, 32, 32, 3\]"):
    embedder(images[:, :16])

  handler = frozen_tower.JaxImageTowerHandler(spec, batch_size=4)
  assert handler.batch_elements_kwargs() == {"min_batch_size": 4,
                                             "max_batch_size": 4}
  batch = list(images[:3])
  results = handler.run_inference(batch, embedder)
  assert len(results) == 3
  assert all(r.example is x for r, x in zip(results, batch))
  np.testing.assert_allclose(np.stack([r.inference for r in results]),
                             together[:3], atol=1e-6)
  assert handler.get_num_bytes(batch) == 3 * images[0].nbytes


def test_another_image_size_resamples_the_position_embeddings(tower_workdir):
  spec = model_loader.describe_tower(str(tower_workdir), image_size=48)
  assert spec.image_size == 48 and spec.embedding_dim == HEAD_DIM
  params = model_loader.load_tower_params(spec)
  assert params["pos_embedding"].shape == (1, 36, 32)  # 6 x 6 patches.
  embeddings = frozen_tower.Embedder(spec, params, batch_size=2)(
      np.zeros((3, 48, 48, 3), np.float32))
  assert embeddings.shape == (3, HEAD_DIM) and np.isfinite(embeddings).all()


def test_checkpoint_sha256_covers_the_step_read_and_the_config(
    tmp_path, tower_workdir):
  digest = model_loader.checkpoint_sha256(str(tower_workdir))
  step_dir = tower_workdir / checkpoints.CHECKPOINTS_DIR / str(STEP)
  assert model_loader.checkpoint_sha256(str(step_dir)) == digest
  copy = tmp_path / "copy"
  shutil.copytree(tower_workdir, copy)
  assert model_loader.checkpoint_sha256(str(copy)) == digest
  (copy / "tb").mkdir()
  (copy / "tb" / "events").write_text("logs do not count")
  assert model_loader.checkpoint_sha256(str(copy)) == digest
  config = copy / checkpoints.CONFIG_FILE
  config.write_text(config.read_text().replace('"seed": 0', '"seed": 1'))
  assert model_loader.checkpoint_sha256(str(copy)) != digest


@pytest.mark.parametrize("flags, message", [
    (["--batch_size", "0"], "--batch_size must be positive, got 0"),
    (["--num_shards", "0"], "--num_shards must be positive, got 0"),
    (["--bogus", "1"], "unrecognized arguments: --bogus"),
    (["--model_config", "{config}"],
     "a config file is only for .npz checkpoints"),
    (["--runner", "DataflowRunner"],
     "Dataflow workers cannot read the local checkpoint"),
])
def test_bad_flags_are_one_line_errors(capsys, built_dataset, tower_workdir,
                                       tower_config_file, tmp_path, flags,
                                       message):
  flags = [f.format(config=tower_config_file) for f in flags]
  assert run_embed("--dataset", built_dataset, "--checkpoint", tower_workdir,
                   "--output", tmp_path / "out", *flags) == 1
  err = capsys.readouterr().err
  assert err.startswith("error: ") and message in err
  assert len(err.strip().splitlines()) == 1


def test_bad_inputs_are_one_line_errors(capsys, tmp_path, built_dataset,
                                        lit_dataset, tower_workdir,
                                        tower_config_file):
  incomplete = tmp_path / "incomplete"
  incomplete.mkdir()
  wrong_width = tmp_path / "wide.py"
  wrong_width.write_text(tower_config_file.read_text().replace(
      "width=32, depth=1, mlp_dim=64, num_heads=2,\n      pool_type",
      "width=48, depth=1, mlp_dim=64, num_heads=2,\n      pool_type"))
  npz = tmp_path / "tower.npz"
  _, params, _ = model_loader.load(tower_workdir)
  load_big_vision.save_npz(params, str(npz))
  out = tmp_path / "out"
  cases = [
      ([tmp_path / "missing", tower_workdir], "does not exist"),
      ([incomplete, tower_workdir], "is incomplete (no COMPLETED marker)"),
      ([lit_dataset, tower_workdir], "is already a LiT dataset"),
      ([built_dataset, tmp_path / "no_run"], "does not exist"),
      ([built_dataset, incomplete], "no checkpoint in"),
      ([built_dataset, npz], "its architecture needs a config file"),
      ([built_dataset, npz, "--model_config", wrong_width],
       "checkpoint does not fit the model"),
      ([built_dataset, tower_workdir, "--output", lit_dataset],
       "already holds a completed dataset; pass --overwrite"),
  ]
  for (dataset, checkpoint, *rest), message in cases:
    argv = ["--dataset", dataset, "--checkpoint", checkpoint, *rest]
    if "--output" not in rest:
      argv += ["--output", out]
    assert run_embed(*argv) == 1, message
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, (message, err)
    assert len(err.strip().splitlines()) == 1, err


def test_image_mode_flag_takes_each_deterministic_mode():
  required = ["--dataset", "d", "--checkpoint", "c", "--output", "o"]
  for mode in (input_pipeline.RESIZE, input_pipeline.RESIZE_BILINEAR,
               input_pipeline.CENTER_CROP):
    args, _ = embed.parse_args(required + ["--image_mode", mode])
    assert args.image_mode == mode
  assert embed.parse_args(required)[0].image_mode is None
  with pytest.raises(SystemExit):
    embed.parse_args(required + ["--image_mode", input_pipeline.RANDOM_CROP])


def test_default_image_mode_is_the_tower_configs(tower_workdir, tmp_path):
  assert embed.tower_image_mode(str(tower_workdir)) == input_pipeline.RESIZE
  # A tower trained on random crops embeds central ones.
  config_file = tmp_path / "cropped.py"
  config_file.write_text(TOWER_CONFIG.replace(
      "  return config",
      f"  config.data.image_mode = {input_pipeline.RANDOM_CROP!r}\n"
      "  return config"))
  npz = tmp_path / "tower.npz"
  npz.write_bytes(b"")  # Only its config is read.
  assert embed.tower_image_mode(str(npz), str(config_file)) == (
      input_pipeline.CENTER_CROP)


def test_preprocessing_decodes_in_the_image_mode_given():
  encoded = synthetic.jpeg_square(synthetic.COLOURS["red"], 40, 60)
  record = records.Record(key="k1", text="a cat", lang="en", lang_score=1.0,
                          source="s.tar", image_encoded=encoded)
  for mode in embed.IMAGE_MODES:
    preprocess = embed._PreprocessFn(IMAGE_SIZE, mode)
    [(stripped, image)] = preprocess.process(records.serialize_record(record))
    assert stripped.image_encoded == b""
    np.testing.assert_array_equal(
        image, input_pipeline.decode_image(encoded, IMAGE_SIZE, mode))


def test_an_undecodable_image_names_its_record():
  record = records.Record(key="k1", text="a cat", lang="en", lang_score=1.0,
                          source="s.tar", image_encoded=b"<html></html>")
  preprocess = embed._PreprocessFn(IMAGE_SIZE, input_pipeline.RESIZE)
  with pytest.raises(ValueError) as raised:
    list(preprocess.process(records.serialize_record(record)))
  assert str(raised.value) == ("record 'k1': cannot decode its image: not a "
                               "recognised image format")


@pytest.mark.slow
def test_manifest_stores_the_paths_given_resolved(
    built_dataset, tower_workdir, tmp_path, monkeypatch):
  monkeypatch.chdir(built_dataset.parent)
  tower = os.path.relpath(tower_workdir, built_dataset.parent)
  assert run_embed("--dataset", built_dataset.name, "--checkpoint", tower,
                   "--output", tmp_path / "lit", "--batch_size", 16) == 0
  lit = manifest(tmp_path / "lit")
  assert (lit["options"]["dataset"], lit["options"]["checkpoint"]) == (
      str(built_dataset), str(tower_workdir))
  assert lit["source_dataset"]["path"] == str(built_dataset)
  assert lit["tower"]["checkpoint"] == str(tower_workdir)


def test_unfinished_or_damaged_checkpoints_are_refused_naming_them(
    capsys, tmp_path, built_dataset, tower_workdir):
  out = tmp_path / "out"
  for checkpoint, message in faults.refused_checkpoints(
      tower_workdir, tmp_path / "workdir", STEP, faults.truncate_metadata):
    assert run_embed("--dataset", built_dataset, "--checkpoint", checkpoint,
                     "--output", out) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err
  assert not out.exists()


def test_help_explains_every_flag(capsys):
  with pytest.raises(SystemExit) as exit_info:
    embed.main(["--help"])
  assert exit_info.value.code == 0
  out = capsys.readouterr().out
  for flag in ("--dataset", "--checkpoint", "--output", "--model_config",
               "--batch_size", "--image_size", "--image_mode", "--num_shards",
               "--overwrite", "--verbose", "Beam pipeline options"):
    assert flag in out


@pytest.mark.slow
def test_reruns_and_multi_process_runs_are_byte_identical(
    tmp_path, lit_dataset, built_dataset, tower_workdir):
  rerun = tmp_path / "rerun"
  assert run_embed("--dataset", built_dataset, "--checkpoint", tower_workdir,
                   "--output", rerun, "--batch_size", 16) == 0
  assert manifest(rerun) == manifest(lit_dataset)
  two_workers = tmp_path / "two_workers"
  assert run_embed("--dataset", built_dataset, "--checkpoint", tower_workdir,
                   "--output", two_workers, "--batch_size", 16,
                   "--direct_num_workers", 2, "--direct_running_mode",
                   "multi_processing") == 0
  assert manifest(two_workers) == manifest(lit_dataset)


@pytest.fixture(scope="module")
def gcs_source_dataset(gcs, built_dataset) -> str:
  """`built_dataset`, copied to the GCS emulator's bucket."""
  return gcs.upload_dir(built_dataset, gcs.uri("embed/dataset"))


def test_gcs_dataset_and_output_give_the_local_shards(
    gcs, gcs_dir, gcs_source_dataset, lit_dataset, tower_workdir):
  # GCS has no directory objects: the dataset is found by its files.
  output = f"{gcs_dir}/lit"
  assert run_embed("--dataset", gcs_source_dataset, "--checkpoint",
                   tower_workdir, "--output", output, "--batch_size", 16) == 0
  remote, local = json.loads(gcs.read(f"{output}/{shards.MANIFEST}")), (
      manifest(lit_dataset))
  for shard in local["shards"]:
    assert gcs.read(f"{output}/{shard['file']}") == (
        lit_dataset / shard["file"]).read_bytes()
  assert remote["source_dataset"] == {
      **local["source_dataset"], "path": gcs_source_dataset}
  assert remote["options"] == {**local["options"],
                               "dataset": gcs_source_dataset}
  paths = ("options", "source_dataset")
  assert ({k: v for k, v in remote.items() if k not in paths} ==
          {k: v for k, v in local.items() if k not in paths})
  assert verify.verify_dataset(output).ok


def test_gcs_paths_that_cannot_work_are_named(
    gcs, gcs_dir, gcs_source_dataset, built_dataset, tower_workdir, capsys):
  partial = f"{gcs_dir}/partial"
  gcs.write(f"{partial}/{shards.MANIFEST}",
            (built_dataset / shards.MANIFEST).read_bytes())
  for dataset, message in [
      (f"{gcs_dir}/missing", f"dataset directory {gcs_dir}/missing does not "
       "exist"),
      (partial, f"dataset {partial} is incomplete (no COMPLETED marker)")]:
    assert run_embed("--dataset", dataset, "--checkpoint", tower_workdir,
                     "--output", f"{gcs_dir}/out") == 1
    assert capsys.readouterr().err == f"error: {message}\n"
  # A Python config runs here, so it must be local; config.json may be remote.
  assert run_embed("--dataset", gcs_source_dataset, "--checkpoint",
                   "gs://b/t.npz",
                   "--model_config", f"{gcs_dir}/config.py",
                   "--output", f"{gcs_dir}/out") == 1
  assert capsys.readouterr().err == (
      f"error: config file {gcs_dir}/config.py: a Python config file must "
      "be local; a run's config.json may be anywhere\n")


def test_embed_is_submitted_to_dataflow(gcs, gcs_dir, gcs_source_dataset,
                                        tower_workdir, fake_dataflow,
                                        capsys):
  # As README's Dataflow command: an exported .npz and the run's config.json,
  # both in the bucket.
  npz, config = f"{gcs_dir}/siglip.npz", f"{gcs_dir}/config.json"
  assert export.main(["--checkpoint", str(tower_workdir), "--output",
                      npz]) == 0
  gcs.write(config, (tower_workdir / checkpoints.CONFIG_FILE).read_bytes())
  output = f"{gcs_dir}/lit"
  capsys.readouterr()
  assert run_embed(
      "--dataset", gcs_source_dataset, "--checkpoint", npz, "--model_config",
      config, "--output", output, "--batch_size", 16, "--no_wait",
      *dataflow_fixture.dataflow_flags(
          gcs, "--job_name", "embed-submitted", "--dataflow_endpoint",
          fake_dataflow.endpoint)) == 0
  summary = capsys.readouterr().out
  assert f"job fake-job-0 (state PENDING); it writes {output}," in summary
  [request] = fake_dataflow.jobs
  names = dataflow_fixture.submitted_transforms(request, gcs.read,
                                                "embed-submitted")
  assert {"EmbedDataset/ReadShards", "EmbedDataset/Preprocess",
          "EmbedDataset/Embed", "EmbedDataset/WriteShards",
          "EmbedDataset/Finalize"} <= names
  assert gcs.list(output) == []
