"""big_vision `.npz` checkpoints: loading them into our models, writing them.

The released layout (SigLIP, mSigLIP) is one `np.savez` archive with flat
"/"-joined keys: `params/img/...`, `params/txt/...`, `params/t`, `params/b`.
NumPy has no bfloat16, so bfloat16 arrays come back from `np.load` as 2-byte
void arrays; they are viewed as bfloat16 again here.

Our parameter names are big_vision's (`trainer.models.common`), so a key maps
onto our tree by dropping `params/` and splitting on "/". Two layouts are
converted on the way:

  scanned layers   `.../encoderblock/<name>` with a leading depth axis (a
                   model trained with `scan=True`) becomes
                   `.../encoderblock_{i}/<name>`
  posemb grid      a learned ViT position embedding for another patch grid
                   (another resolution) is resampled bilinearly, as
                   big_vision's `resample_posemb` does

Everything else must match the model exactly: a missing, unexpected or
differently shaped parameter is an error naming it. `trainer.export` writes
a training run in this layout.
"""

from collections.abc import Collection, Mapping
import io
import math
from typing import Any
import zipfile

from flax import traverse_util
import flax.core
import jax
import ml_dtypes
import numpy as np
import scipy.ndimage

from dataformat import files

Params = Any

PREFIX = "params/"
NPZ_SUFFIX = ".npz"
# Top-level subtrees of a two-tower model, all loaded by default.
SUBTREES = ("img", "txt", "t", "b")
POSEMB_KEY = "img/pos_embedding"
_SCANNED_BLOCK = "encoderblock"
_LISTED_NAMES = 5


def restore_dtype(array: np.ndarray) -> np.ndarray:
  """`array`, with bfloat16 that NumPy stored as 2-byte void viewed as such.

  Raises:
    ValueError: for a void array of another item size (not a known dtype).
  """
  if array.dtype.type is not np.void:
    return array
  if array.dtype.itemsize != 2:
    raise ValueError(f"cannot restore a {array.dtype.itemsize}-byte void "
                     "array (only bfloat16, 2 bytes, is stored as void)")
  return array.view(ml_dtypes.bfloat16)


def load_npz(path: str) -> dict[str, np.ndarray]:
  """All arrays of an `.npz` file (a local path or URI), by key.

  Raises:
    ValueError: if `path` cannot be read as an `.npz` archive.
  """
  try:
    loaded = np.load(io.BytesIO(files.read_bytes(path)), allow_pickle=False)
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    raise ValueError(f"cannot read {path} as an .npz checkpoint: {e}") from e
  if not isinstance(loaded, np.lib.npyio.NpzFile):
    raise ValueError(f"{path} holds a single array, not an .npz checkpoint")
  with loaded:
    return {key: restore_dtype(loaded[key]) for key in loaded.files}


def save_npz(params: Params, path: str, prefix: str = PREFIX) -> None:
  """Writes `params` as an `.npz` in the released layout (keys `prefix`...)."""
  flat = traverse_util.flatten_dict(flax.core.unfreeze(jax.device_get(params)),
                                    sep="/")
  buffer = io.BytesIO()
  np.savez(buffer, **{prefix + key: np.asarray(value)
                      for key, value in sorted(flat.items())})
  files.write_bytes(path, buffer.getvalue())


def unstack_scanned_layers(
    flat: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Splits scan-stacked `encoderblock/...` arrays into `encoderblock_{i}`."""
  out = {}
  for key, value in flat.items():
    parts = key.split("/")
    if _SCANNED_BLOCK not in parts:
      out[key] = value
      continue
    at = parts.index(_SCANNED_BLOCK)
    for i, layer in enumerate(value):
      out["/".join(parts[:at] + [f"{_SCANNED_BLOCK}_{i}"] + parts[at + 1:])] = (
          layer)
  return out


def resample_posemb(posemb: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
  """Position embeddings [1, n * n, D] resampled to a `grid` of patches.

  Bilinear interpolation with the corners aligned (`scipy.ndimage.zoom`,
  order 1, as big_vision), so a constant embedding stays constant.

  Raises:
    ValueError: if the embedding's patches do not form a square grid.
  """
  _, length, width = posemb.shape
  side = math.isqrt(length)
  if side * side != length:
    raise ValueError(f"position embeddings for {length} patches are not a "
                     "square grid")
  h, w = grid
  if (h, w) == (side, side):
    return posemb
  square = np.asarray(posemb, np.float32).reshape(side, side, width)
  resampled = scipy.ndimage.zoom(square, (h / side, w / side, 1), order=1)
  return resampled.reshape(1, h * w, width).astype(posemb.dtype)


def _names(keys: Collection[str]) -> str:
  keys = sorted(keys)
  shown = ", ".join(keys[:_LISTED_NAMES])
  more = len(keys) - _LISTED_NAMES
  return shown + (f" and {more} more" if more > 0 else "")


def to_params(flat: Mapping[str, np.ndarray], abstract_params: Params,
              subtrees: Collection[str] = SUBTREES) -> Params:
  """The subtrees `subtrees` of our parameter tree, from flat checkpoint keys.

  Args:
    flat: "/"-joined names (with or without the `params/` prefix) to arrays,
      as `load_npz` returns them.
    abstract_params: the model's parameter tree; only its leaves' shapes and
      dtypes are used (`jax.ShapeDtypeStruct`s or arrays).
    subtrees: the top-level names to take; checkpoint keys outside them are
      ignored.

  Returns:
    A nested dict with the structure of `abstract_params` restricted to
    `subtrees`, as NumPy arrays of the model's dtypes.

  Raises:
    ValueError: naming every missing, unexpected or misshapen parameter.
  """
  subtrees = set(subtrees)
  expected = {
      key: leaf for key, leaf in traverse_util.flatten_dict(
          flax.core.unfreeze(abstract_params), sep="/").items()
      if key.split("/", 1)[0] in subtrees}
  stripped = {key.removeprefix(PREFIX): value for key, value in flat.items()}
  found = {key: value for key, value in unstack_scanned_layers(stripped).items()
           if key.split("/", 1)[0] in subtrees}
  problems = []
  if missing := set(expected) - set(found):
    problems.append(f"{len(missing)} missing ({_names(missing)})")
  if unexpected := set(found) - set(expected):
    problems.append(f"{len(unexpected)} unexpected ({_names(unexpected)})")
  out, misshapen = {}, []
  for key in sorted(set(expected) & set(found)):
    value, want = found[key], expected[key]
    if key == POSEMB_KEY and value.shape != tuple(want.shape):
      side = math.isqrt(want.shape[1])
      value = resample_posemb(value, (side, side))
    if value.shape != tuple(want.shape):
      misshapen.append(f"{key} {value.shape} in the checkpoint, "
                       f"{tuple(want.shape)} in the model")
      continue
    out[key] = np.asarray(value, want.dtype)
  if misshapen:
    problems.append(f"shapes differ: {'; '.join(misshapen)}")
  if problems:
    raise ValueError("checkpoint does not fit the model: " +
                     "; ".join(problems))
  return traverse_util.unflatten_dict(out, sep="/")


def load_params(path: str, abstract_params: Params,
                subtrees: Collection[str] = SUBTREES) -> Params:
  """Subtrees of our parameters from a big_vision `.npz` (see `to_params`).

  For a whole two-tower model (evaluation, fine-tuning), the defaults take
  `img`, `txt`, `t` and `b`; SigLiT takes ("txt", "t", "b"), a frozen image
  tower ("img",).

  Raises:
    ValueError: if the file is unreadable or does not fit the model.
  """
  flat = load_npz(path)
  try:
    return to_params(flat, abstract_params, subtrees)
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from e
