"""Tests for trainer.train: the loop, resume, SIGTERM, divergence, the CLI.

Every run trains a two-layer model for a few steps on the synthetic dataset
with 8 simulated devices and the chunked loss; compiling dominates (seconds
per run), so these tests are marked slow and the uninterrupted reference run
is made once per module. The command-line error tests stop before any
compilation.
"""

import contextlib
import io
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from tests.fixtures import faults
from tests.fixtures import records as synthetic
from trainer import checkpoints
from trainer import train
from trainer.configs import demo_tiny
from trainer.models import load_big_vision

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOTAL_STEPS = 6
# Overrides shrinking demo_tiny to seconds per step on the synthetic data.
TINY = {
    "data.vocab_name": synthetic.VOCAB_NAME,
    "data.text_len": 8,
    "data.image_size": 16,
    "model.image.patch_size": 8,
    "model.image.width": 32,
    "model.image.depth": 1,
    "model.image.mlp_dim": 64,
    "model.image.num_heads": 2,
    "model.text.width": 32,
    "model.text.depth": 1,
    "model.text.mlp_dim": 64,
    "model.text.num_heads": 2,
    "model.text.vocab_size": 128,
    "model.out_dim": (None, 32),
    "batch_size": 16,
    "total_steps": TOTAL_STEPS,
    "optim.warmup_steps": 2,
    "log_every": 2,
    "checkpoint_every": 2,
    "keep_checkpoints": 2,
}


def tiny_config(train_dir, **overrides):
  config = demo_tiny.get_config()
  config.data.train_dir = str(train_dir)
  for key, value in {**TINY, **overrides}.items():
    *parents, leaf = key.split(".")
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return config


class Probe:
  """An evaluator recording when it runs; optionally sends SIGTERM."""

  name = "probe"

  def __init__(self, sigterm: bool = False):
    self.calls = 0
    self.sigterm = sigterm

  def run(self, params):
    self.calls += 1
    if self.sigterm:
      signal.raise_signal(signal.SIGTERM)
    return {"norm_t": float(np.asarray(params["t"])[0]),
            "calls": float(self.calls)}


def final_params(workdir):
  return checkpoints.restore_for_inference(workdir)[1]


def assert_same_params(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.fixture(scope="module")
def straight_run(records_dataset, tmp_path_factory):
  """An uninterrupted run: (workdir, console output, probe evaluator)."""
  workdir = tmp_path_factory.mktemp("straight")
  probe = Probe()
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    train.train_and_evaluate(
        tiny_config(records_dataset, eval_every=3), workdir,
        evaluators=[probe])
  return workdir, out.getvalue(), probe


@pytest.mark.slow
def test_progress_lines_report_loss_speed_data_wait_and_eta(straight_run):
  _, output, _ = straight_run
  lines = [l for l in output.splitlines() if l.startswith("step ")]
  assert [l.split(" |")[0] for l in lines] == [
      "step 2/6", "step 4/6", "step 6/6"]
  for line in lines:
    fields = line.split(" | ")
    assert fields[1].startswith("loss ") and float(fields[1][5:]) > 0
    assert fields[2].endswith(" ex/s")
    assert fields[3].startswith("data wait ") and fields[3].endswith("%")
    assert fields[4].startswith("ETA ")


@pytest.mark.slow
def test_tensorboard_holds_training_and_evaluator_scalars(straight_run):
  workdir, _, probe = straight_run
  events = event_accumulator.EventAccumulator(str(workdir / train.TB_DIR))
  events.Reload()
  tags = set(events.Tags()["scalars"])
  assert tags == {
      "train/loss", "train/grad_norm", "train/lr", "train/t", "train/b",
      "perf/examples_per_sec", "perf/data_wait_fraction",
      "probe/norm_t", "probe/calls"}
  assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6]
  assert [e.step for e in events.Scalars("probe/calls")] == [3, 6]
  assert probe.calls == 2
  # Warmup: the learning rate at step 1 (logged at 2) is half the peak.
  assert events.Scalars("train/lr")[0].value == pytest.approx(5e-4)
  # t starts at 10 and b at -10 (demo_tiny); the step-0 update is zero
  # (warmup), later ones move them.
  for tag, init in (("train/t", 10.0), ("train/b", -10.0)):
    values = [e.value for e in events.Scalars(tag)]
    assert values[0] == pytest.approx(init)
    assert values[-1] != values[0] and abs(values[-1] - init) < 1.0
  for event in events.Scalars("perf/data_wait_fraction"):
    assert 0.0 <= event.value <= 1.0


@pytest.mark.slow
def test_workdir_holds_the_config_and_the_newest_checkpoints(straight_run,
                                                             records_dataset):
  workdir, _, _ = straight_run
  saved = json.loads((workdir / checkpoints.CONFIG_FILE).read_text())
  assert saved["total_steps"] == TOTAL_STEPS
  assert saved["data"]["train_dir"] == str(records_dataset)
  steps = sorted(int(p.name) for p in
                 (workdir / checkpoints.CHECKPOINTS_DIR).iterdir())
  assert steps == [4, 6]


@pytest.mark.slow
def test_rerun_after_the_last_step_trains_nothing(straight_run,
                                                  records_dataset):
  workdir, _, _ = straight_run
  before = final_params(workdir)
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    train.train_and_evaluate(tiny_config(records_dataset), workdir)
  assert "Resuming from step 6" in out.getvalue()
  assert "step 6/6" not in out.getvalue()
  assert_same_params(final_params(workdir), before)


@pytest.mark.slow
def test_initial_params_come_from_our_workdirs_and_big_vision_npz(
    straight_run, tmp_path):
  trained = final_params(straight_run[0])
  fresh = jax.tree.map(np.zeros_like, trained)
  npz = tmp_path / "trained.npz"
  load_big_vision.save_npz(trained, str(npz))
  for checkpoint in (str(straight_run[0]), str(npz)):
    init = ml_collections.ConfigDict(dict(checkpoint=checkpoint,
                                          load=("txt", "t")))
    params = train.load_initial_params(init, fresh)
    assert_same_params(params["txt"], trained["txt"])
    np.testing.assert_array_equal(params["t"], trained["t"])
    assert_same_params(params["img"], fresh["img"])
    np.testing.assert_array_equal(params["b"], fresh["b"])


@pytest.mark.slow
def test_stop_and_resume_give_the_parameters_of_a_straight_run(
    straight_run, records_dataset, tmp_path):
  # SIGTERM arrives during step 3 (from the evaluator): the run saves step 3
  # and returns; a second run resumes there and finishes.
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    state = train.train_and_evaluate(
        tiny_config(records_dataset, eval_every=3), tmp_path,
        evaluators=[Probe(sigterm=True)])
  assert int(state.step) == 3
  assert "saved a checkpoint at step 3 and stopped" in out.getvalue()
  with contextlib.redirect_stdout(io.StringIO()):
    train.train_and_evaluate(tiny_config(records_dataset), tmp_path)
  assert_same_params(final_params(tmp_path), final_params(straight_run[0]))


@pytest.mark.slow
@pytest.mark.parametrize("before, after", [(2, 0), (0, 2)])
def test_resume_with_another_worker_count_gives_the_same_parameters(
    before, after, straight_run, records_dataset, tmp_path):
  # The data iterator's saved state does not depend on how many processes
  # made the batches.
  with contextlib.redirect_stdout(io.StringIO()):
    state = train.train_and_evaluate(
        tiny_config(records_dataset, eval_every=3,
                    **{"data.num_workers": before}), tmp_path,
        evaluators=[Probe(sigterm=True)])
    assert int(state.step) == 3
    train.train_and_evaluate(
        tiny_config(records_dataset, **{"data.num_workers": after}),
        tmp_path)
  assert_same_params(final_params(tmp_path), final_params(straight_run[0]))


@pytest.mark.slow
def test_divergence_stops_training_and_keeps_the_last_finite_checkpoint(
    records_dataset, tmp_path):
  # The step-0 learning rate is 0 (warmup), so step 1 is finite; the huge
  # learning rate then blows the parameters up at step 2.
  config = tiny_config(records_dataset, checkpoint_every=1,
                       **{"optim.lr": 1e30})
  with contextlib.redirect_stdout(io.StringIO()):
    with pytest.raises(train.NonFiniteLossError) as raised:
      train.train_and_evaluate(config, tmp_path)
  message = str(raised.value)
  assert "at step 2" in message and "non-finite" in message
  assert "the last good checkpoint is step 1" in message
  params = final_params(tmp_path)
  for leaf in jax.tree.leaves(params):
    assert np.isfinite(leaf).all()


def cli(*args, env=None):
  env = {**os.environ, "PYTHONPATH": str(ROOT),
         "XLA_FLAGS": "--xla_force_host_platform_device_count=8", **(env or {})}
  return subprocess.Popen(
      [sys.executable, "-m", "trainer.train", *args], cwd=ROOT, env=env,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def cli_overrides(train_dir, **overrides):
  config = {**TINY, **overrides, "data.train_dir": str(train_dir)}
  return [f"--config.{key}={value}" for key, value in config.items()]


@pytest.mark.slow
def test_sigterm_to_the_cli_saves_the_step_reached_and_exits_0(
    records_dataset, tmp_path):
  process = cli("--config", "trainer/configs/demo_tiny.py",
                "--workdir", str(tmp_path),
                *cli_overrides(records_dataset, log_every=1,
                               checkpoint_every=100))
  lines = []
  for line in process.stdout:
    lines.append(line)
    if line.startswith("step 2/"):
      process.send_signal(signal.SIGTERM)
  stderr = process.stderr.read()
  assert process.wait(timeout=120) == 0, stderr
  stopped = [l for l in lines if l.startswith("SIGTERM")]
  assert len(stopped) == 1 and "and stopped" in stopped[0], lines
  step = int(stopped[0].split("at step ")[1].split()[0])
  assert 2 <= step < TOTAL_STEPS
  assert not any(l.startswith(f"step {step + 1}/") for l in lines)
  steps = [int(p.name) for p in
           (tmp_path / checkpoints.CHECKPOINTS_DIR).iterdir()]
  assert steps == [step]


@pytest.mark.slow
def test_two_processes_train_like_one(straight_run, records_dataset,
                                      tmp_path):
  # Two processes of 4 CPU devices each, joined by jax.distributed: each
  # reads its half of every global batch. The batches hold the same examples
  # as in the one-process run; only reduction orders differ, which Adam can
  # turn into a step of lr either way for a near-zero gradient: parameters
  # agree to within the sum of the learning rates (< 5e-3 over 6 steps).
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4",
         "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo"}
  processes = [
      cli("--config", "trainer/configs/demo_tiny.py",
          "--workdir", str(tmp_path),
          *cli_overrides(records_dataset),
          "--config.distributed.initialize=True",
          f"--config.distributed.coordinator_address=localhost:{port}",
          "--config.distributed.num_processes=2",
          f"--config.distributed.process_id={index}", env=env)
      for index in range(2)]
  outputs = [p.communicate(timeout=300) for p in processes]
  for process, (_, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stderr[-2000:]
  assert "step 6/6" in outputs[0][0] and "step" not in outputs[1][0]
  data_iter = tmp_path / checkpoints.CHECKPOINTS_DIR / "6" / "data_iter"
  assert sorted(p.name for p in data_iter.glob("*.json")) == [
      "process_0-of-2.json", "process_1-of-2.json"]
  def losses(output):
    return [float(l.split(" | ")[1][5:]) for l in output.splitlines()
            if l.startswith("step ")]

  np.testing.assert_allclose(losses(outputs[0][0]), losses(straight_run[1]),
                             rtol=1e-4)
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=5e-3),
      final_params(tmp_path), final_params(straight_run[0]))


@pytest.mark.parametrize("args, message", [
    (["--config", "trainer/configs/nope.py", "--workdir", "w"], "nope.py"),
    (["--config", "trainer/configs/demo_tiny.py", "--workdir", "w",
      "--config.no_such_key=1"], "no_such_key"),
    (["--config", "trainer/configs/demo_tiny.py"], "--workdir"),
    (["--config", "trainer/configs/demo_tiny.py", "--workdir", "w",
      "--config.data.train_dir=/no/such/dataset"], "/no/such/dataset"),
    (["--config", "trainer/configs/released.py:so400m14_385", "--workdir",
      "w"], "unknown release preset 'so400m14_385'; known presets: b16_224,"),
    # A preset name is taken; the run then needs its dataset.
    (["--config", "trainer/configs/released.py:so400m14_384", "--workdir",
      "w"], "no training dataset"),
])
def test_cli_errors_are_one_line(args, message, tmp_path):
  process = cli(*[a.replace("w", str(tmp_path / "w")) if a == "w" else a
                  for a in args])
  stdout, stderr = process.communicate(timeout=120)
  assert process.returncode != 0
  errors = [l for l in stderr.splitlines() if l.startswith("error: ")]
  assert len(errors) == 1 and message in errors[0], stderr


@pytest.mark.parametrize("overrides, code, message", [
    ([], 1, "no training dataset: set data.train_dir "
            "(--config.data.train_dir=DIR)"),
    (["--config.batchsize=8"], 2,
     "a --config override names an unknown key: 'batchsize'; Did you mean "
     '"batch_size" instead of "batchsize"?'),
    (["--config.data.trian_dir=x"], 2,
     "a --config override names an unknown key: 'trian_dir'; Did you mean "
     '"train_dir" instead of "trian_dir"?'),
])
def test_cli_mistakes_end_in_their_one_line_error(overrides, code, message,
                                                 tmp_path):
  process = cli("--config", "trainer/configs/demo_tiny.py",
                "--workdir", str(tmp_path / "run"), *overrides)
  stdout, stderr = process.communicate(timeout=120)
  assert (process.returncode, stderr) == (code, f"error: {message}\n")
  assert not (tmp_path / "run").exists()


def test_cli_help_explains_the_flags():
  process = cli("--help")
  stdout, stderr = process.communicate(timeout=60)
  assert process.returncode == 0
  text = stdout + stderr
  assert "--config" in text and "--workdir" in text and "resumes" in text


@pytest.mark.slow
@pytest.mark.parametrize("fault", [faults.truncate_state_data,
                                   faults.interrupt_save])
def test_resume_skips_a_damaged_or_unfinished_newest_step(
    fault, straight_run, records_dataset, tmp_path):
  # The straight run kept steps 4 and 6; step 6 is lost to the fault, so the
  # run resumes from 4, trains 5 and 6 again and ends where it ended.
  workdir = shutil.copytree(straight_run[0], tmp_path / "run")
  step_dirs = workdir / checkpoints.CHECKPOINTS_DIR
  fault(step_dirs / "6")
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    train.train_and_evaluate(tiny_config(records_dataset), workdir)
  assert f"Resuming from step 4 ({step_dirs})" in out.getvalue()
  assert "step 6/6" in out.getvalue()
  if fault is faults.truncate_state_data:
    assert err.getvalue().startswith(
        "warning: checkpoint step 6 cannot be restored (")
    assert err.getvalue().endswith(
        f"); moved it to {step_dirs / '6.damaged'}\n")
    assert sorted(p.name for p in step_dirs.iterdir()) == [
        "4", "6", "6.damaged"]
  else:
    assert err.getvalue() == ""
    assert sorted(p.name for p in step_dirs.iterdir()) == ["4", "6"]
  assert_same_params(final_params(workdir), final_params(straight_run[0]))


@pytest.mark.slow
def test_a_full_disk_stops_training_with_one_error_and_no_saved_step(
    records_dataset, tmp_path):
  workdir = tmp_path / "run"
  step_dirs = workdir / checkpoints.CHECKPOINTS_DIR
  out = io.StringIO()
  with faults.small_tmpfs(step_dirs, 64 << 10):
    with contextlib.redirect_stdout(out):
      with pytest.raises(OSError) as raised:
        train.train_and_evaluate(tiny_config(records_dataset), workdir)
    assert not [p for p in step_dirs.iterdir() if p.name.isdigit()]
  message = str(raised.value)
  assert message.startswith(
      f"writing checkpoint step 2 in {step_dirs} failed: ")
  assert "No space left on device" in message and "\n" not in message
  assert "saved" not in out.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("damage", [faults.TRUNCATED, faults.FLIPPED])
def test_the_cli_refuses_a_damaged_shard_with_one_line(
    damage, records_dataset, tmp_path):
  # A truncated shard fails at start-up, a changed record when it is read.
  dataset = shutil.copytree(records_dataset, tmp_path / "dataset")
  shard = dataset / "train-00001-of-00002.array_record"
  faults.damage_shard(shard, damage)
  process = cli("--config", "trainer/configs/demo_tiny.py",
                "--workdir", str(tmp_path / "run"),
                *cli_overrides(dataset))
  stdout, stderr = process.communicate(timeout=300)
  assert process.returncode == 1
  assert "Traceback" not in stderr
  [error] = [l for l in stderr.splitlines() if l.startswith("error: ")]
  assert error.startswith(f"error: dataset shard {shard} is damaged: ")
  assert not (tmp_path / "run" / checkpoints.CHECKPOINTS_DIR / "6").exists()
