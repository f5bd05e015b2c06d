"""Per-example cost at scale: the slope between a run on part of a corpus and
a run on all of it.

A build's cost is a fixed part (interpreter, imports, Beam's start, the
manifest and plot) plus a per-example part. Some one-time costs depend on the
data: lingua loads the models of a language outside the confusable groups
(Czech, Italian, Swahili, ...) the first time a caption makes it a candidate,
0.2 to 1 s each. A run on a handful of examples misses them, so subtracting
it leaves them in the per-example figure (about 0.65 ms an example in a
2,000-example run). By a quarter of a corpus every language it holds has
come up, so the slope from that run to the whole is what a long build pays
per example.
"""

import os
import pathlib

from pipelines.readers import dispatch

PART = 0.25


def first_part(corpus: pathlib.Path, output: pathlib.Path,
               pattern: str = "*.tar") -> int:
  """Links the first PART of `corpus`'s shards (at least one, not all) into
  `output`; returns how many examples they hold."""
  shards = sorted(corpus.glob(pattern))
  if len(shards) < 2:
    raise ValueError(f"{corpus} has {len(shards)} shard(s): a part needs 2 "
                     "or more")
  output.mkdir(parents=True)
  count = 0
  for shard in shards[:min(len(shards) - 1,
                           max(1, round(len(shards) * PART)))]:
    os.symlink(shard.resolve(), output / shard.name)
    count += sum(1 for _ in dispatch.read_examples(str(shard)))
  return count


def per_example(whole: float, part: float, n_whole: int, n_part: int) -> float:
  """The cost of one more example, from the costs of the two runs."""
  return (whole - part) / (n_whole - n_part)
