"""Tests for pipelines/beam_worker.py: local multi-process runs start quietly.

The commands run as a user runs them, in a subprocess, in an environment
without Beam's optional apitools (as a fresh install has: the gcp extra is
optional), where each of Beam's own worker processes would print its notice
and its start-up lines. Their stderr must hold only the command's progress.
"""

import os
import pathlib
import subprocess
import sys

import pytest

from demo import corpus as demo_corpus_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
TWO_WORKER_PROCESSES = ["--direct_num_workers", "2",
                        "--direct_running_mode", "multi_processing"]


@pytest.fixture(scope="module")
def fresh_install_env(tmp_path_factory) -> dict[str, str]:
  """The environment of a command where importing apitools fails."""
  hidden = tmp_path_factory.mktemp("without_apitools")
  (hidden / "apitools").mkdir()
  (hidden / "apitools" / "__init__.py").write_text(
      "raise ImportError('not installed')\n")
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(("TF_CPP_", "TF_ENABLE_"))}
  return {**env, "PYTHONPATH": os.pathsep.join([str(ROOT), str(hidden)])}


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> str:
  return demo_corpus_lib.generate_corpus(
      tmp_path_factory.mktemp("corpus"), num_examples=40, seed=5,
      examples_per_shard=20, bad_fraction=0.0,
      lang_mix={"en": 1.0}).output_dir


def run_command(module: str, argv: list[str], env: dict[str, str]
                ) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", module, *argv], env=env,
                        capture_output=True, text=True, timeout=600)


def test_the_environment_shows_beams_notice(fresh_install_env):
  # What each of Beam's own worker processes prints as it imports Beam.
  shown = subprocess.run([sys.executable, "-c", "import apache_beam"],
                         env=fresh_install_env, capture_output=True,
                         text=True, check=True)
  assert "apitools not found" in shown.stderr


@pytest.mark.slow
def test_build_dataset_with_worker_processes_prints_only_progress(
    fresh_install_env, small_corpus, tmp_path):
  result = run_command("pipelines.build_dataset", [
      "--input", f"{small_corpus}/*.tar", "--output",
      str(tmp_path / "dataset"), *TWO_WORKER_PROCESSES], fresh_install_env)
  assert result.returncode == 0, result.stderr
  assert result.stderr.splitlines() == [
      f"build_dataset: building {tmp_path / 'dataset'} from 2 input files"]
  assert result.stdout.startswith("read 40 examples from 2 input files")


@pytest.mark.slow
def test_train_vocab_with_worker_processes_prints_only_progress(
    fresh_install_env, small_corpus, tmp_path):
  result = run_command("vocabularies.train_vocab", [
      "--input", f"{small_corpus}/*.tar", "--output",
      str(tmp_path / "vocab"), "--preset", "en32k", "--vocab_size", "40",
      "--sample_dir", str(tmp_path / "sample"), *TWO_WORKER_PROCESSES],
                       fresh_install_env)
  assert result.returncode == 0, result.stderr
  lines = result.stderr.splitlines()
  assert len(lines) == 4 and all(
      line.startswith("train_vocab: ") for line in lines), lines
