"""The package Dataflow workers get: Beam's sdist, installed outside the checkout.

`--setup_file ./setup.py` makes Beam's stager build an sdist of this project;
each Dataflow worker pip-installs it and imports the project from there. This
test builds the sdist with the stager's own code, installs it into a new
virtual environment in a temporary directory, and runs `build_dataset` there
with two worker processes (each a fresh interpreter that imports the installed
copy), from a working directory outside the checkout. The output must be
byte-identical to the source tree's. The new environment borrows the
third-party packages of the running one (a `.pth` line), as the workers'
container supplies them; the project itself comes only from the sdist.
"""

import os
import pathlib
import subprocess
import sys
import sysconfig
import venv

import pytest

from apache_beam.runners.portability import stager
from tests.fixtures import dataset as dataset_fixture
from vocabularies import vocabulary

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("dataformat", "pipelines", "vocabularies", "trainer", "eval", "demo")


def _files(directory: pathlib.Path) -> dict[str, bytes]:
  return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def installed_python(tmp_path_factory) -> pathlib.Path:
  """The interpreter of a new environment holding only the staged sdist."""
  staging = tmp_path_factory.mktemp("staging")
  sdist = stager.Stager._build_setup_package(  # pylint: disable=protected-access
      str(ROOT / "setup.py"), str(staging))
  environment = tmp_path_factory.mktemp("worker_env")
  venv.EnvBuilder(with_pip=False).create(environment)
  python = environment / "bin" / "python"
  site_packages = pathlib.Path(subprocess.run(
      [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
      capture_output=True, text=True, check=True).stdout.strip())
  (site_packages / "borrowed.pth").write_text(
      sysconfig.get_paths()["purelib"] + "\n")
  subprocess.run(
      [sys.executable, "-m", "pip", "--python", str(python), "install",
       "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
       "--ignore-installed", sdist],
      check=True, capture_output=True, text=True,
      env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
  return python


def _clean_env() -> dict[str, str]:
  return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.mark.slow
def test_the_installed_packages_come_from_the_sdist(installed_python,
                                                    tmp_path):
  found = subprocess.run(
      [installed_python, "-c",
       f"import {', '.join(PACKAGES)}; "
       f"print('\\n'.join(m.__file__ for m in ({', '.join(PACKAGES)})))"],
      cwd=tmp_path, env=_clean_env(), capture_output=True, text=True,
      check=True).stdout.split()
  environment = installed_python.parents[1]
  assert len(found) == len(PACKAGES)
  for module_file in found:
    assert pathlib.Path(module_file).is_relative_to(environment), module_file
  # Every module and data file of the packages, byte for byte.
  site_packages = pathlib.Path(found[0]).parents[1]
  tracked = subprocess.run(["git", "ls-files", *PACKAGES], cwd=ROOT,
                           capture_output=True, text=True,
                           check=True).stdout.split()
  assert tracked
  missing = [f for f in tracked if not (site_packages / f).is_file()
             or (site_packages / f).read_bytes() != (ROOT / f).read_bytes()]
  assert not missing, f"not installed from the sdist: {missing}"


@pytest.mark.slow
def test_worker_processes_of_the_installed_sdist_write_the_same_bytes(
    installed_python, built_dataset, demo_corpus, xm3600_dir, en_vocab_dir,
    multi_vocab_dir, tmp_path):
  output = tmp_path / "out"
  argv = dataset_fixture.build_dataset_argv(
      demo_corpus.output_dir, output, [en_vocab_dir, multi_vocab_dir],
      xm3600_dir)
  result = subprocess.run(
      [installed_python, "-m", "pipelines.build_dataset", *argv,
       "--direct_num_workers", "2", "--direct_running_mode",
       "multi_processing"],
      cwd=tmp_path, env=_clean_env(), capture_output=True, text=True,
      timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  assert _files(output) == _files(built_dataset)


_BOTH_TOKENIZERS = """
import sys
import tokenizers
from tokenizers import Tokenizer, models, pre_tokenizers
from vocabularies import vocabulary

hf = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1, "cat": 2},
                                unk_token="[UNK]"))
hf.pre_tokenizer = pre_tokenizers.Whitespace()
ours = vocabulary.Vocabulary.load(sys.argv[1])
print(tokenizers.__file__)
print(vocabulary.__file__)
print(hf.encode("a cat a dog").ids)
print(ours.encode("a cat"))
"""



def _import_both(python: pathlib.Path, vocab_dir: pathlib.Path,
                 cwd: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
  """Where `python` finds Hugging Face's `tokenizers` and `vocabularies`."""
  result = subprocess.run([python, "-c", _BOTH_TOKENIZERS, str(vocab_dir)],
                          cwd=cwd, env=_clean_env(), capture_output=True,
                          text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  hf_file, ours_file, hf_ids, our_ids = result.stdout.splitlines()
  assert hf_ids == "[1, 2, 1, 0]"
  assert our_ids == str(vocabulary.Vocabulary.load(vocab_dir).encode("a cat"))
  return pathlib.Path(hf_file), pathlib.Path(ours_file)


# Every `transformers` install brings Hugging Face's top-level `tokenizers`;
# the project's vocabularies must neither shadow it nor be shadowed, installed
# from the sdist (as on workers) or in development mode (this checkout).
@pytest.mark.slow
def test_the_sdist_installs_beside_hugging_face_tokenizers(
    installed_python, en_vocab_dir, tmp_path):
  hf_file, ours_file = _import_both(installed_python, en_vocab_dir, tmp_path)
  assert hf_file.is_relative_to(sysconfig.get_paths()["purelib"])
  assert ours_file.is_relative_to(installed_python.parents[1])


@pytest.mark.parametrize("where", ["checkout", "elsewhere"])
def test_the_checkout_imports_beside_hugging_face_tokenizers(
    en_vocab_dir, tmp_path, where):
  cwd = ROOT if where == "checkout" else tmp_path
  hf_file, ours_file = _import_both(pathlib.Path(sys.executable),
                                    en_vocab_dir, cwd)
  assert hf_file.is_relative_to(sysconfig.get_paths()["purelib"])
  assert ours_file.is_relative_to(ROOT)
