"""Tests for trainer.export: a training run written as a big_vision `.npz`."""

import os
import pathlib
import subprocess
import sys

import grain
import ml_collections
import numpy as np
import pytest

from tests import test_load_big_vision as npz_layout
from trainer import checkpoints
from trainer import export
from trainer.models import load_big_vision

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def run_dir(tmp_path):
  """A training workdir with one step of a tiny model, and its params."""
  model = npz_layout.make_model()
  params = npz_layout.random_params(model)
  checkpoints.save_config(ml_collections.ConfigDict({"seed": 0}), tmp_path)
  checkpointer = checkpoints.Checkpointer(tmp_path, max_to_keep=1)
  checkpointer.save(3, {"params": params},
                    iter(grain.MapDataset.range(2).to_iter_dataset()))
  checkpointer.wait()
  checkpointer.close()
  return tmp_path, model, params


def test_export_writes_a_run_in_the_released_layout(run_dir, capsys):
  workdir, model, params = run_dir
  npz = workdir / "run.npz"
  assert export.main(["--checkpoint", str(workdir), "--output",
                      str(npz)]) == 0
  assert capsys.readouterr().out.endswith(f"to {npz}\n")
  loaded = load_big_vision.load_params(str(npz),
                                       npz_layout.abstract(model))
  expected = npz_layout.flat(params)
  assert set(npz_layout.flat(loaded)) == set(expected)
  for key, value in expected.items():
    np.testing.assert_array_equal(npz_layout.flat(loaded)[key], value,
                                  err_msg=key)


def test_export_errors_are_one_line(run_dir, capsys):
  workdir, _, _ = run_dir
  npy = workdir / "run.npy"
  assert export.main(["--checkpoint", str(workdir), "--output",
                      str(npy)]) == 1
  assert capsys.readouterr().err == (
      f"error: --output must end in .npz, got {npy}\n")
  assert export.main(["--checkpoint", str(workdir / "none"), "--output",
                      str(workdir / "run.npz")]) == 1
  assert capsys.readouterr().err == (
      f"error: checkpoint path {workdir / 'none'} does not exist\n")
  assert export.main(["--checkpoint", str(workdir / "m.npz"), "--output",
                      str(workdir / "run.npz")]) == 1
  assert capsys.readouterr().err == (
      f"error: --checkpoint {workdir / 'm.npz'} is already an .npz\n")
  with pytest.raises(SystemExit) as exited:
    export.main(["--output", str(workdir / "run.npz")])
  assert exited.value.code == 2
  assert capsys.readouterr().err == (
      "error: the following arguments are required: --checkpoint\n")
  assert not (workdir / "run.npz").exists()


def test_python_m_trainer_export_is_the_command(tmp_path):
  npy = tmp_path / "run.npy"
  path = os.environ.get("PYTHONPATH")
  env = {**os.environ, "PYTHONPATH": os.pathsep.join(
      [str(ROOT)] + ([path] if path else []))}
  result = subprocess.run(
      [sys.executable, "-m", "trainer.export", "--checkpoint", str(tmp_path),
       "--output", str(npy)],
      cwd=ROOT, env=env, capture_output=True, text=True)
  assert result.returncode == 1
  assert result.stdout == ""
  assert result.stderr.splitlines()[-1] == (
      f"error: --output must end in .npz, got {npy}")
