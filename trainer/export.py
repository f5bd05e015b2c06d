"""Exports a training run's parameters as a big_vision `.npz`.

The released layout (`trainer.models.load_big_vision`), for big_vision, or
for `pipelines.embed` on Dataflow, whose workers cannot read a local
workdir:

  python -m trainer.export --checkpoint WORKDIR --output gs://bucket/model.npz
"""

from collections.abc import Sequence
import sys

from flax import traverse_util

from dataformat import cli
from trainer import model_loader
from trainer.models import load_big_vision


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command: 0 once the `.npz` is written, 1 on a failure.

  Bad arguments exit with 2; every error is one line on stderr.
  """
  parser = cli.ArgumentParser(
      prog="python -m trainer.export",
      description="Export the parameters of a python -m trainer.train "
      "checkpoint as a big_vision .npz in the released layout "
      "(params/img/..., params/txt/..., params/t, params/b).")
  parser.add_argument("--checkpoint", required=True, metavar="PATH",
                      help="a training workdir (its newest step) or a step "
                      "directory workdir/checkpoints/<step>, local or gs://")
  parser.add_argument("--output", required=True, metavar="FILE",
                      help=f"the {load_big_vision.NPZ_SUFFIX} file to write "
                      "(local or gs://)")
  args = parser.parse_args(argv)
  suffix = load_big_vision.NPZ_SUFFIX
  try:
    if not args.output.endswith(suffix):
      raise ValueError(f"--output must end in {suffix}, got {args.output}")
    if model_loader.checkpoint_kind(args.checkpoint) != model_loader.OURS:
      raise ValueError(f"--checkpoint {args.checkpoint} is already an "
                       f"{suffix}")
    _, params, _ = model_loader.load(args.checkpoint)
    load_big_vision.save_npz(params, args.output)
  except (ValueError, OSError) as e:
    return cli.fail(e)
  flat = traverse_util.flatten_dict(params, sep="/")
  size = sum(v.nbytes for v in flat.values())
  print(f"wrote {len(flat)} arrays ({size / 2**20:.1f} MiB) to "
        f"{args.output}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
