"""The file layer: every path a user gives, local or `gs://`, goes through here.

Paths are plain strings: a local path, or a URI with a scheme (`gs://bucket/
dir`). Local paths go to the operating system; URIs to the fsspec file system
of their scheme (gcsfs for `gs://`, which follows `STORAGE_EMULATOR_HOST`).
Object stores have no directories: a "directory" exists once some object lies
under it, so callers test for a file they expect (a COMPLETED marker, a
manifest) rather than for the directory itself.
"""

from collections.abc import Iterator, Sequence
import contextlib
import glob as glob_lib
import hashlib
import json
import os
import posixpath
import re
import shutil
from typing import IO, Any

import fsspec

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_CHUNK_BYTES = 8 << 20


def is_uri(path: str) -> bool:
  """Whether `path` names a remote object (`gs://...`), not a local file."""
  return bool(_URI.match(str(path)))


def resolve(path: str | os.PathLike[str]) -> str:
  """`path` made independent of the working directory.

  URIs come back unchanged; local paths absolute and normalised, so that a
  path stored in a saved run or manifest means the same from anywhere.
  """
  path = os.fspath(path)
  return path if is_uri(path) else os.path.abspath(os.path.expanduser(path))


def join(base: str | os.PathLike[str], *parts: str) -> str:
  """`base` and `parts` joined with the separator of `base`'s kind."""
  base = os.fspath(base)
  if is_uri(base):
    return posixpath.join(base, *parts)
  return os.path.join(base, *parts)


def basename(path: str) -> str:
  return posixpath.basename(path.rstrip("/")) if is_uri(path) else (
      os.path.basename(os.path.normpath(path)))


def dirname(path: str) -> str:
  return posixpath.dirname(path.rstrip("/")) if is_uri(path) else (
      os.path.dirname(os.path.normpath(path)))


def _fs(path: str) -> tuple[fsspec.AbstractFileSystem, str]:
  try:
    fs, p = fsspec.core.url_to_fs(path)
  except (ImportError, ValueError) as e:
    raise ValueError(f"cannot open {path}: {e}") from e
  # Another process (a Beam worker, a trainer host) may have written since
  # the last listing: never answer from fsspec's listing cache.
  fs.invalidate_cache()
  return fs, p


def _with_scheme(like: str, path: str) -> str:
  # fsspec answers with paths stripped of their scheme.
  return like.split("://", 1)[0] + "://" + path.lstrip("/")


def exists(path: str) -> bool:
  """Whether a file (or, locally, a directory) is at `path`."""
  if not is_uri(path):
    return os.path.exists(path)
  fs, p = _fs(path)
  return fs.exists(p)


def isfile(path: str) -> bool:
  if not is_uri(path):
    return os.path.isfile(path)
  fs, p = _fs(path)
  return fs.isfile(p)


def isdir(path: str) -> bool:
  """Whether `path` is a directory (on an object store: holds an object)."""
  if not is_uri(path):
    return os.path.isdir(path)
  fs, p = _fs(path)
  return fs.isdir(p)


def glob(pattern: str) -> list[str]:
  """The sorted paths matching `pattern` (`*`, `?`, `[...]`), as given."""
  if not is_uri(pattern):
    return sorted(glob_lib.glob(pattern))
  fs, p = _fs(pattern)
  return sorted(_with_scheme(pattern, match) for match in fs.glob(p))


def listdir(path: str) -> list[str]:
  """The sorted names directly under the directory `path`."""
  if not is_uri(path):
    return sorted(os.listdir(path))
  fs, p = _fs(path)
  return sorted(posixpath.basename(entry.rstrip("/"))
                for entry in fs.ls(p, detail=False))


def find(directory: str) -> list[str]:
  """The sorted paths of every file under `directory`, recursively."""
  if not is_uri(directory):
    return sorted(os.path.join(root, name)
                  for root, _, names in os.walk(directory) for name in names)
  fs, p = _fs(directory.rstrip("/"))
  return sorted(_with_scheme(directory, found) for found in fs.find(p))


def makedirs(path: str) -> None:
  """Creates local directory `path` and its parents; nothing for URIs."""
  if not is_uri(path):
    os.makedirs(path, exist_ok=True)


@contextlib.contextmanager
def open_file(path: str, mode: str = "rb") -> Iterator[IO[Any]]:
  """`path` opened in `mode` ("rb", "wb", "r", "w"); text is UTF-8."""
  encoding = None if "b" in mode else "utf-8"
  if not is_uri(path):
    with open(path, mode, encoding=encoding) as f:
      yield f
    return
  with fsspec.open(path, mode, encoding=encoding) as f:
    yield f


def read_bytes(path: str) -> bytes:
  with open_file(path, "rb") as f:
    return f.read()


@contextlib.contextmanager
def _writing(path: str) -> Iterator[None]:
  """Turns a failed write (a full disk) into an OSError naming `path`."""
  try:
    yield
  except OSError as e:
    raise OSError(f"writing {path} failed: {e}") from e


def write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path`, creating local parent directories.

  Raises:
    OSError: naming `path`, if writing fails (a full disk).
  """
  if not is_uri(path):
    makedirs(os.path.dirname(os.path.abspath(path)))
  with _writing(path), open_file(path, "wb") as f:
    f.write(data)


def read_text(path: str) -> str:
  return read_bytes(path).decode("utf-8")


def write_text(path: str, text: str) -> None:
  write_bytes(path, text.encode("utf-8"))


def read_json(path: str) -> Any:
  """The JSON value in `path`.

  Raises:
    ValueError: if the file is not valid JSON (line and column named).
  """
  try:
    return json.loads(read_text(path))
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is not valid JSON: {e.msg} at line {e.lineno} "
                     f"column {e.colno}") from e


def write_json(path: str, value: Any) -> None:
  """Writes `value` as indented JSON, keys in their given order."""
  write_text(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def concatenate(sources: Sequence[str], destination: str) -> str:
  """Writes the files `sources`, in order, into one; returns its SHA-256.

  Raises:
    OSError: naming `destination`, if writing fails (a full disk).
  """
  sha = hashlib.sha256()
  if not is_uri(destination):
    makedirs(os.path.dirname(os.path.abspath(destination)))
  with _writing(destination), open_file(destination, "wb") as dst:
    for source in sources:
      with open_file(source, "rb") as src:
        while chunk := src.read(_CHUNK_BYTES):
          sha.update(chunk)
          dst.write(chunk)
  return sha.hexdigest()


def copy(source: str, destination: str) -> str:
  """Copies one file between any two paths; returns its SHA-256."""
  return concatenate([source], destination)


def sha256(path: str) -> str:
  """The SHA-256 of the file at `path`, hex."""
  digest = hashlib.sha256()
  with open_file(path, "rb") as f:
    while chunk := f.read(_CHUNK_BYTES):
      digest.update(chunk)
  return digest.hexdigest()


def remove(path: str) -> None:
  """Removes the file at `path`; a missing file is not an error."""
  if not is_uri(path):
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)
    return
  fs, p = _fs(path)
  if fs.exists(p):
    fs.rm(p)


def rmtree(path: str) -> None:
  """Removes `path` and everything under it; a missing path is no error."""
  if not is_uri(path):
    shutil.rmtree(path, ignore_errors=True)
    return
  fs, p = _fs(path)
  if fs.exists(p):
    fs.rm(p, recursive=True)


def rename(source: str, destination: str) -> None:
  """Moves the file or directory `source` to `destination` (same store).

  Object stores have no rename: every object under `source` is copied, then
  deleted (through this process, so any store and emulator serves it).
  """
  if not is_uri(source):
    os.rename(source, destination)
    return
  source, destination = source.rstrip("/"), destination.rstrip("/")
  for path in find(source):  # A single file finds itself.
    copy(path, destination + path[len(source):])
  rmtree(source)
