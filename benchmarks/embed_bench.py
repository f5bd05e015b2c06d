"""Benchmark: the embedding pipeline's throughput versus the bare jitted tower.

Builds two datasets from the demo corpus (N/4 and N examples, the smaller a
prefix of the larger), writes a randomly initialised image tower as a
big_vision `.npz` per tower setting, and measures in turn, `--repeats` times:

- pipeline: `pipelines.embed` end to end on each dataset (in-process
  FnApiRunner, one worker): read shards, parse, decode and resize, Beam's
  RunInference, write shards and the manifest; wall time of `embed.embed`,
  which includes the launcher's checks and the worker's model load and
  compilation;
- bare: the same jitted tower (`frozen_tower.Embedder`, same batch size) on
  the same N images, already decoded, batched as the pipeline batches them
  and compiled beforehand;
- decode: `trainer.input_pipeline.decode_image` on the same N records.

The pipeline's steady-state cost per image is the difference of its two
runs divided by the difference in images, which cancels the fixed costs
(Beam start-up, model load, compilation); its throughput over the bare
tower's is the ratio the issue asks for (goal: at least 0.8). Fixed cost and
the end-to-end ratio on N images are reported too, and per image where the
time goes: tower, decode and resize, and the rest (Beam, parsing, writing).

  python -m benchmarks.embed_bench [--num_examples 256] [--repeats 3] \\
      [--towers tiny,ti16] [--batch_size 32]
"""

import argparse
import contextlib
import io
import pathlib
import statistics
import tempfile
import time

import jax
import numpy as np

from dataformat import files
from dataformat import records
from dataformat import shards
from demo import corpus as demo_corpus
from pipelines import build_dataset
from pipelines import embed
from pipelines import frozen_tower
from trainer import input_pipeline
from trainer.models import load_big_vision
from trainer.models import vit

# name -> (config module in trainer/configs, its image tower's variant).
TOWERS = {
    "tiny": ("demo_tiny", None),  # 64 px, 8 px patches, width 96, 4 layers.
    "ti16": ("siglip_b16", "Ti/16"),  # 224 px.
    "s16": ("siglip_b16", "S/16"),
    "b16": ("siglip_b16", "B/16"),  # The SigLIP B/16 image tower.
}
CORPUS_IMAGE_SIZE = (320, 240)  # Stored as is (shorter side under 256).
CONFIG_TEMPLATE = '''
from trainer.configs import {module}


def get_config():
  config = {module}.get_config()
  config.model.image.variant = {variant!r}
  return config
'''


def _make_dataset(root: pathlib.Path, name: str,
                  num_examples: int) -> tuple[str, int]:
  """(directory, record count) of a dataset built from the demo corpus."""
  corpus, output = root / f"{name}_corpus", root / name
  demo_corpus.generate_corpus(corpus, num_examples=num_examples, seed=0,
                              image_size=CORPUS_IMAGE_SIZE, bad_fraction=0.0)
  with contextlib.redirect_stdout(io.StringIO()):
    if build_dataset.main(["--input", str(corpus / "*.tar"), "--output",
                           str(output), "--num_shards", "4"]) != 0:
      raise RuntimeError(f"building the {name} dataset failed")
  return str(output), files.read_json(
      str(output / shards.MANIFEST))["counts"]["kept"]


def _make_tower(root: pathlib.Path, name: str) -> tuple[str, str]:
  """(config file, .npz checkpoint) of a randomly initialised tower."""
  module, variant = TOWERS[name]
  config_file = root / f"{name}_config.py"
  config_file.write_text(CONFIG_TEMPLATE.format(module=module,
                                                variant=variant))
  config = frozen_tower.load_config_file(str(config_file))
  # These configs' image towers have no head (model.out_dim[0] is None).
  tower = vit.Model(**config.model.image.to_dict())
  size = config.data.image_size
  params = jax.jit(tower.init)(
      jax.random.key(0), np.zeros((1, size, size, 3), np.float32))["params"]
  npz = root / f"{name}.npz"
  load_big_vision.save_npz({"img": params}, str(npz))
  return str(config_file), str(npz)


def _run_pipeline(dataset: str, config_file: str, npz: str, output: str,
                  batch_size: int) -> float:
  args, beam_argv = embed.parse_args([
      "--dataset", dataset, "--checkpoint", npz, "--model_config",
      config_file, "--output", output, "--batch_size", str(batch_size),
      "--overwrite"])
  start = time.perf_counter()
  embed.embed(args, beam_argv)
  return time.perf_counter() - start


def _encoded_images(dataset: str) -> list[bytes]:
  """The images of `dataset` in shard and key order."""
  return [records.parse_record(data).image_encoded
          for path in sorted(pathlib.Path(dataset).glob("*.array_record"))
          for data in shards.read_array_record(str(path))]


def _time(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def _bench_tower(root: pathlib.Path, name: str, small: str, large: str,
                 n_small: int, n_large: int, batch_size: int,
                 repeats: int) -> dict[str, float]:
  config_file, npz = _make_tower(root, name)
  spec = frozen_tower.describe_tower(
      npz, frozen_tower.load_config_file(config_file))
  embedder = frozen_tower.load_embedder(spec, batch_size)
  encoded = _encoded_images(large)

  def decode():
    return np.stack([input_pipeline.decode_image(e, spec.image_size)
                     for e in encoded])

  images = decode()
  embedder(images[:batch_size])  # Compiles.
  times = {"small": [], "large": [], "bare": [], "decode": []}
  for _ in range(repeats):
    # Interleaved, so that load from elsewhere on the machine falls on all.
    times["small"].append(_run_pipeline(small, config_file, npz,
                                        str(root / "out"), batch_size))
    times["large"].append(_run_pipeline(large, config_file, npz,
                                        str(root / "out"), batch_size))
    times["bare"].append(_time(lambda: embedder(images)))
    times["decode"].append(_time(decode))
  med = {k: statistics.median(v) for k, v in times.items()}
  per_image = (med["large"] - med["small"]) / (n_large - n_small)
  tower = med["bare"] / n_large
  decode_per_image = med["decode"] / n_large
  return {
      "image_size": spec.image_size,
      "embedding_dim": spec.embedding_dim,
      "bare_ips": n_large / med["bare"],
      "pipeline_ips": 1 / per_image,
      "ratio": tower / per_image,
      "end_to_end_ips": n_large / med["large"],
      "end_to_end_ratio": tower * n_large / med["large"],
      "fixed_s": med["small"] - n_small * per_image,
      "tower_ms": 1e3 * tower,
      "decode_ms": 1e3 * decode_per_image,
      "rest_ms": 1e3 * (per_image - tower - decode_per_image),
      "runs": {k: [round(x, 2) for x in v] for k, v in times.items()},
  }


def main() -> None:
  parser = argparse.ArgumentParser(
      description="Embedding throughput of pipelines.embed versus the bare "
      "jitted image tower on the same images.")
  parser.add_argument("--num_examples", type=int, default=256,
                      help="images in the larger dataset (the smaller has a "
                      "quarter of them)")
  parser.add_argument("--repeats", type=int, default=3,
                      help="measurements of each kind; medians are reported")
  parser.add_argument("--towers", default="tiny,ti16",
                      help=f"comma-separated, from {sorted(TOWERS)}")
  parser.add_argument("--batch_size", type=int, default=32,
                      help="images per tower call")
  args = parser.parse_args()
  towers = args.towers.split(",")
  unknown = sorted(set(towers) - set(TOWERS))
  if unknown:
    parser.error(f"unknown towers {unknown}; choose from {sorted(TOWERS)}")
  n_large, n_small = args.num_examples, args.num_examples // 4
  with tempfile.TemporaryDirectory() as tmp:
    root = pathlib.Path(tmp)
    small, n_small = _make_dataset(root, "small", n_small)
    large, n_large = _make_dataset(root, "large", n_large)
    rows = {name: _bench_tower(root, name, small, large, n_small, n_large,
                               args.batch_size, args.repeats)
            for name in towers}
  width, height = CORPUS_IMAGE_SIZE
  print(f"{n_small} and {n_large} images ({width}x{height} JPEGs), batch "
        f"{args.batch_size}, medians of {args.repeats}\n")
  print("| tower | px | D | bare img/s | pipeline img/s (steady) | ratio | "
        "end-to-end img/s | ratio | fixed s | tower ms/img | decode ms/img | "
        "rest ms/img |")
  print("|---" * 12 + "|")
  for name, r in rows.items():
    print(f"| {name} | {r['image_size']} | {r['embedding_dim']} | "
          f"{r['bare_ips']:.1f} | {r['pipeline_ips']:.1f} | {r['ratio']:.2f} "
          f"| {r['end_to_end_ips']:.1f} | {r['end_to_end_ratio']:.2f} | "
          f"{r['fixed_s']:.1f} | {r['tower_ms']:.2f} | {r['decode_ms']:.2f} | "
          f"{r['rest_ms']:.2f} |")
  print()
  for name, r in rows.items():
    print(f"{name} seconds per run: {r['runs']}")


if __name__ == "__main__":
  main()
