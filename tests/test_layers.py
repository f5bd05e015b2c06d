"""The package layers hold: the import-linter contracts, and a light trainer."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
  # This checkout's packages win over any installed copy, also for grimp.
  path = os.environ.get("PYTHONPATH")
  return {**os.environ, "PYTHONPATH": os.pathsep.join(
      [str(ROOT)] + ([path] if path else []))}


def test_importing_the_trainer_loads_neither_beam_nor_matplotlib():
  result = subprocess.run(
      [sys.executable, "-c",
       "import sys, trainer.train; print(sorted({m.split('.')[0] for m in "
       "sys.modules} & {'apache_beam', 'matplotlib', 'eval', 'pipelines'}))"],
      cwd=ROOT, env=_env(), capture_output=True, text=True, check=True)
  assert result.stdout.strip() == "[]"


def test_the_import_contracts_are_kept():
  lint_imports = pathlib.Path(sys.executable).parent / "lint-imports"
  result = subprocess.run(
      [str(lint_imports), "--config", str(ROOT / "pyproject.toml"),
       "--no-cache"],
      cwd=ROOT, env=_env(), capture_output=True, text=True)
  assert result.returncode == 0, result.stdout + result.stderr
  assert "Contracts: 4 kept, 0 broken." in result.stdout
