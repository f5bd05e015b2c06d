"""The trainer, its exporter and XM3600 evaluation on gs:// paths.

The bucket is the GCS emulator of `tests/fixtures/gcs.py`. A run on gs://
executes the same programs on the same batches as a local run, so their
parameters are compared bit for bit.
"""

import contextlib
import io
import json
import pathlib

import grain
import jax
import ml_collections
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from dataformat import shards as shards_lib
from eval import xm3600
from tests import test_train
from tests import test_xm3600
from tests.test_xm3600 import run  # pylint: disable=unused-import
from trainer import checkpoints
from trainer import export
from trainer import model_loader
from trainer import train
from trainer.models import load_big_vision

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gcs_records(gcs, records_dataset) -> str:
  """The synthetic training dataset, copied to the bucket."""
  return gcs.upload_dir(records_dataset, gcs.uri("train_gcs", "records"))


@pytest.fixture(scope="module")
def gcs_run(gcs, run) -> str:
  """test_xm3600's step-3 run, saved on the bucket by the trainer's code."""
  workdir, config, params = run
  del workdir
  return str(test_xm3600.save_run(gcs.uri("train_gcs", "xm3600_run"),
                                  config, params, test_xm3600.STEP))


def test_dataset_shards_keep_the_gs_uri(gcs, gcs_records, records_dataset):
  # pathlib turned gs://bucket/ds into gs:/bucket/ds.
  shards = shards_lib.dataset_shards(gcs_records, "train")
  assert shards == [f"{gcs_records}/{name}" for name in sorted(
      p.name for p in records_dataset.glob("train-*.array_record"))]
  missing = gcs.uri("train_gcs", "no_dataset")
  with pytest.raises(ValueError, match=f"^dataset directory {missing} does "
                     "not exist$"):
    shards_lib.dataset_shards(missing, "train")


def test_a_gs_workdir_makes_no_local_folder(gcs, gcs_dir, tmp_path,
                                            monkeypatch):
  # pathlib turned --workdir gs://bucket/wd into a local ./gs:/bucket/wd.
  monkeypatch.chdir(tmp_path)
  config = ml_collections.ConfigDict(dict(seed=1, data=dict(train_dir=".")))
  path = checkpoints.save_config(config, gcs_dir)
  checkpointer = checkpoints.Checkpointer(gcs_dir, max_to_keep=1)
  assert checkpointer.directory == f"{gcs_dir}/checkpoints"
  checkpointer.close()
  assert path == f"{gcs_dir}/config.json"
  saved = json.loads(gcs.read(path))
  assert saved["data"]["train_dir"] == str(tmp_path)
  assert checkpoints.load_config(gcs_dir).seed == 1
  assert list(tmp_path.iterdir()) == []


def _tb_scalars(gcs, workdir: str, tmp_path) -> dict[str, list[int]]:
  local = tmp_path / "tb"
  local.mkdir()
  for name, data in gcs.read_dir(f"{workdir}/{train.TB_DIR}").items():
    (local / name).write_bytes(data)
  events = event_accumulator.EventAccumulator(str(local))
  events.Reload()
  return {tag: [e.step for e in events.Scalars(tag)]
          for tag in events.Tags()["scalars"]}


@pytest.mark.slow
def test_a_killed_run_on_gcs_resumes_and_ends_as_the_local_run(
    gcs, gcs_records, records_dataset, tmp_path):
  workdir = gcs.uri("train_gcs", "killed_run")
  local = tmp_path / "local"
  with contextlib.redirect_stdout(io.StringIO()):
    train.train_and_evaluate(test_train.tiny_config(records_dataset), local)
  process = test_train.cli(
      "--config", "trainer/configs/demo_tiny.py", "--workdir", workdir,
      *test_train.cli_overrides(gcs_records, log_every=1))
  lines = []
  for line in process.stdout:
    lines.append(line)
    if line.startswith("step 5/"):
      process.kill()  # No SIGTERM: nothing is saved on the way out.
      break
  process.communicate(timeout=60)
  assert process.returncode == -9, lines
  assert not (ROOT / "gs:").exists()
  # Step 2 is complete (step 4's save waits for it); 4 may be unfinished.
  done = checkpoints.complete_steps(f"{workdir}/{checkpoints.CHECKPOINTS_DIR}")
  assert done[0] == 2 and set(done) <= {2, 4}
  saved = json.loads(gcs.read(f"{workdir}/{checkpoints.CONFIG_FILE}"))
  assert saved["data"]["train_dir"] == gcs_records

  out = io.StringIO()
  probe = test_train.Probe()
  with contextlib.redirect_stdout(out):
    train.train_and_evaluate(
        test_train.tiny_config(gcs_records, eval_every=3), workdir,
        evaluators=[probe])
  assert f"Resuming from step {done[-1]}" in out.getvalue()
  assert "step 6/6" in out.getvalue()
  test_train.assert_same_params(test_train.final_params(workdir),
                                test_train.final_params(local))
  assert checkpoints.complete_steps(
      f"{workdir}/{checkpoints.CHECKPOINTS_DIR}") == [4, 6]
  scalars = _tb_scalars(gcs, workdir, tmp_path)
  assert scalars["probe/calls"] == [s for s in (3, 6) if s > done[-1]]
  assert 6 in scalars["train/loss"]


def test_a_damaged_step_on_gcs_is_set_aside(gcs, gcs_dir):
  state = {"a": np.arange(4.0)}
  data_iter = iter(grain.MapDataset.range(4).to_iter_dataset())
  checkpointer = checkpoints.Checkpointer(gcs_dir, max_to_keep=3)
  for step in (2, 4):
    checkpointer.save(step, jax.tree.map(lambda x: x * step, state),
                      data_iter)
  checkpointer.close()
  step_dir = f"{gcs_dir}/{checkpoints.CHECKPOINTS_DIR}/4"
  for name, data in gcs.read_dir(f"{step_dir}/{checkpoints.STATE}/d").items():
    gcs.write(f"{step_dir}/{checkpoints.STATE}/d/{name}", data[:50])
  checkpointer = checkpoints.Checkpointer(gcs_dir, max_to_keep=3)
  assert checkpointer.latest_step() == 4
  restored = checkpointer.restore_latest(
      jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state),
      data_iter)
  checkpointer.close()
  assert restored.step == 2
  np.testing.assert_array_equal(restored.state["a"], state["a"] * 2)
  [message] = restored.damaged
  assert message.endswith(f"; moved it to {step_dir}.damaged")
  # orbax lists the steps anew (its gcsfs instance forgot its listing).
  assert checkpointer.all_steps() == [2]
  names = {name.split("/")[0] for name in
           gcs.list(f"{gcs_dir}/{checkpoints.CHECKPOINTS_DIR}")}
  assert names == {"2", "4.damaged"}


def test_a_local_run_copied_to_gcs_resumes_there(gcs, gcs_dir, tmp_path):
  # orbax writes its commit marker into a local step too (before renaming
  # it from its temporary name), so a copy (`gsutil cp -r`) keeps it.
  state = {"a": np.arange(4.0)}
  data_iter = iter(grain.MapDataset.range(8).to_iter_dataset())
  checkpointer = checkpoints.Checkpointer(str(tmp_path), max_to_keep=3)
  for step in (2, 4):
    next(data_iter)
    checkpointer.save(step, jax.tree.map(lambda x: x * step, state),
                      data_iter)
  checkpointer.close()
  gcs.upload_dir(tmp_path, gcs_dir)
  copied = f"{gcs_dir}/{checkpoints.CHECKPOINTS_DIR}"
  assert checkpoints.complete_steps(copied) == [2, 4]
  checkpointer = checkpoints.Checkpointer(gcs_dir, max_to_keep=3)
  resumed_iter = iter(grain.MapDataset.range(8).to_iter_dataset())
  restored = checkpointer.restore_latest(
      jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state),
      resumed_iter)
  checkpointer.close()
  assert (restored.step, restored.damaged) == (4, [])
  np.testing.assert_array_equal(restored.state["a"], state["a"] * 4)
  assert next(resumed_iter) == next(data_iter) == 2
  assert {name.split("/")[0] for name in gcs.list(copied)} == {"2", "4"}


def test_export_to_gcs_and_load_it_back(gcs, gcs_run, gcs_dir, run, capsys):
  _, _, params = run
  npz = f"{gcs_dir}/model.npz"
  assert export.main(["--checkpoint", gcs_run, "--output", npz]) == 0
  assert capsys.readouterr().out.endswith(f"to {npz}\n")
  # The run's config.json describes the .npz, wherever both are.
  loaded_config, loaded, provenance = model_loader.load(
      npz, f"{gcs_run}/{checkpoints.CONFIG_FILE}")
  assert loaded_config.model.to_dict() == model_loader.load(
      gcs_run)[0].model.to_dict()
  test_train.assert_same_params(loaded, jax.device_get(params))
  assert (provenance.kind, provenance.path) == (model_loader.BIG_VISION, npz)
  assert export.main(["--checkpoint", npz, "--output",
                      f"{gcs_dir}/again.npz"]) == 1
  assert "is already an .npz" in capsys.readouterr().err


def test_init_checkpoint_from_gcs(gcs_run, gcs_dir, run):
  _, _, params = run
  params = jax.device_get(params)
  npz = f"{gcs_dir}/init.npz"
  load_big_vision.save_npz(params, npz)
  fresh = jax.tree.map(np.zeros_like, params)
  for checkpoint in (gcs_run, npz):
    init = ml_collections.ConfigDict(dict(checkpoint=checkpoint,
                                          load=("txt", "t")))
    loaded = train.load_initial_params(init, fresh)
    test_train.assert_same_params(loaded["txt"], params["txt"])
    test_train.assert_same_params(loaded["img"], fresh["img"])


def test_xm3600_evaluates_a_gcs_checkpoint_as_the_local_one(
    gcs_run, run, xm3600_dir, tmp_path, capsys):
  workdir, _, _ = run
  reports = {}
  for name, checkpoint in (("local", str(workdir)), ("gcs", gcs_run)):
    output = tmp_path / name
    assert xm3600.main(["--data_dir", str(xm3600_dir), "--checkpoint",
                        checkpoint, "--output", str(output),
                        "--lang", "de,en"]) == 0, capsys.readouterr().err
    reports[name] = json.loads((output / xm3600.RESULTS_FILE).read_text())
  assert reports["gcs"]["checkpoint"] == {
      "path": gcs_run, "kind": "ours", "step": test_xm3600.STEP}
  for key in ("languages", "mean", "vocabulary", "data"):
    assert reports["gcs"][key] == reports["local"][key], key
