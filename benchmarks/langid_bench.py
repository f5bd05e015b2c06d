"""Benchmark: the fast language identifier versus seeded `langdetect.detect`.

On the committed caption set (benchmarks/data/langid_captions.jsonl: 8 short
captions in each of langdetect's 55 languages, 16 for zh) it reports, as
Markdown on stdout:

- the fast backend's one-off build time (`FastModel()`, median of a few) next
  to langdetect's own profile loading;
- the median time per caption of `LanguageIdentifier().identify` (one caption
  per call) and of `langdetect.detect` with `DetectorFactory.seed = 0`, timed
  interleaved caption by caption so both see the same machine load, and their
  ratio; and the time per caption of one `identify_batch` over the whole set;
- the accuracy of each backend overall and per language, taking the best
  language (`min_score=0`) and at the default `min_score` (`und` is wrong);
- what each backend says on the Maori and Quechua captions
  (benchmarks/data/langid_unsupported.jsonl), XM3600 languages that langdetect
  has no profile for.

  python -m benchmarks.langid_bench [--repeats 5]
"""

import argparse
import collections
from collections.abc import Callable, Sequence
import json
import os
import statistics
import time

from langdetect import detector_factory
import langdetect

from pipelines import langid
from pipelines import records

DATA_DIR = os.path.join(os.path.dirname(__file__), "data")
CAPTIONS_PATH = os.path.join(DATA_DIR, "langid_captions.jsonl")
UNSUPPORTED_PATH = os.path.join(DATA_DIR, "langid_unsupported.jsonl")
BUILD_REPEATS = 3


def read_captions(path: str) -> list[tuple[str, str]]:
  """(true code, text) per line of a caption file."""
  with open(path, encoding="utf-8") as f:
    return [(c["lang"], c["text"]) for c in map(json.loads, f) if c]


def _seconds(fn: Callable[[], object]) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def build_seconds() -> dict[str, float]:
  """Median seconds to build the fast model and to load langdetect's."""
  fast = statistics.median(_seconds(langid.FastModel)
                           for _ in range(BUILD_REPEATS))

  def load_langdetect():
    detector_factory.DetectorFactory().load_profile(
        detector_factory.PROFILES_DIRECTORY)

  reference = statistics.median(_seconds(load_langdetect)
                                for _ in range(BUILD_REPEATS))
  return {"fast": fast, "langdetect": reference}


def caption_seconds(texts: Sequence[str], repeats: int) -> dict[str, float]:
  """Median seconds per caption of each way of identifying one caption.

  Each repeat times every caption with one function, then every caption with
  the other (in alternating order), so both run warm and see the same load.
  """
  detector_factory.DetectorFactory.seed = 0
  identifier = langid.LanguageIdentifier()
  functions = {"fast": identifier.identify, "langdetect": langdetect.detect}
  for function in functions.values():
    function(texts[0])
  times = {name: [[] for _ in texts] for name in functions}
  for repeat in range(repeats):
    for name in sorted(functions, reverse=repeat % 2 == 1):
      for text, text_times in zip(texts, times[name]):
        text_times.append(_seconds(lambda f=functions[name], t=text: f(t)))
  result = {name: statistics.median(map(statistics.median, per_text))
            for name, per_text in times.items()}
  result["fast_batch"] = statistics.median(
      _seconds(lambda: identifier.identify_batch(texts))
      for _ in range(repeats)) / len(texts)
  return result


def predictions(backend: str, texts: Sequence[str],
                min_score: float) -> list[langid.LanguagePrediction]:
  return langid.LanguageIdentifier(backend, min_score=min_score).identify_batch(
      texts)


def _accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
  return sum(t == p for t, p in zip(truth, predicted)) / len(truth)


def accuracy_tables(captions: Sequence[tuple[str, str]]) -> list[str]:
  """Markdown: overall accuracy, then accuracy per language."""
  truth = [lang for lang, _ in captions]
  texts = [text for _, text in captions]
  best = {b: [p.lang for p in predictions(b, texts, 0.0)]
          for b in langid.BACKENDS}
  default = {b: [p.lang for p in predictions(b, texts, langid.DEFAULT_MIN_SCORE)]
             for b in langid.BACKENDS}
  lines = [
      f"| backend | accuracy, best language | accuracy at min_score="
      f"{langid.DEFAULT_MIN_SCORE} | `und` at min_score="
      f"{langid.DEFAULT_MIN_SCORE} |",
      "|---|---|---|---|"]
  for b in langid.BACKENDS:
    und = default[b].count(records.UNDETERMINED_LANG)
    lines.append(f"| {b} | {_accuracy(truth, best[b]):.3f} | "
                 f"{_accuracy(truth, default[b]):.3f} | {und} |")
  lines += ["", "Per language (best language; captions per language in "
            "brackets):", "",
            "| lang | fast | langdetect | fast's mistakes | langdetect's "
            "mistakes |", "|---|---|---|---|---|"]
  by_lang = collections.defaultdict(list)
  for i, lang in enumerate(truth):
    by_lang[lang].append(i)
  for lang in sorted(by_lang):
    idx = by_lang[lang]
    cells = []
    for b in langid.BACKENDS:
      cells.append(_accuracy([lang] * len(idx), [best[b][i] for i in idx]))
    mistakes = [", ".join(sorted(best[b][i] for i in idx
                                 if best[b][i] != lang)) or "-"
                for b in langid.BACKENDS]
    lines.append(f"| {lang} ({len(idx)}) | {cells[0]:.2f} | {cells[1]:.2f} | "
                 f"{mistakes[0]} | {mistakes[1]} |")
  return lines


def unsupported_table(captions: Sequence[tuple[str, str]]) -> list[str]:
  """Markdown: what each backend outputs on languages it has no profile for."""
  lines = ["| lang | fast | langdetect |", "|---|---|---|"]
  for lang in sorted({lang for lang, _ in captions}):
    texts = [text for code, text in captions if code == lang]
    cells = []
    for b in langid.BACKENDS:
      counts = collections.Counter(
          p.lang for p in predictions(b, texts, langid.DEFAULT_MIN_SCORE))
      cells.append(", ".join(f"{code} x{n}" for code, n in
                             sorted(counts.items(), key=lambda x: (-x[1], x[0]))))
    lines.append(f"| {lang} ({len(texts)}) | {cells[0]} | {cells[1]} |")
  return lines


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=5,
                      help="timed calls per caption (the median is kept)")
  args = parser.parse_args(argv)
  if args.repeats < 1:
    parser.error(f"--repeats must be positive, got {args.repeats}")
  captions = read_captions(CAPTIONS_PATH)
  texts = [text for _, text in captions]
  build = build_seconds()
  times = caption_seconds(texts, args.repeats)
  us = 1e6
  lines = [
      f"Caption set: {len(captions)} captions, "
      f"{len({lang for lang, _ in captions})} codes.", "",
      "| measurement | fast | langdetect | ratio |", "|---|---|---|---|",
      f"| one-off build / profile load (s) | {build['fast']:.2f} | "
      f"{build['langdetect']:.2f} | |",
      f"| median per caption, one call per caption (us) | "
      f"{times['fast'] * us:.1f} | {times['langdetect'] * us:.1f} | "
      f"{times['langdetect'] / times['fast']:.1f}x |",
      f"| per caption, one identify_batch over the set (us) | "
      f"{times['fast_batch'] * us:.1f} | | "
      f"{times['langdetect'] / times['fast_batch']:.1f}x |",
      "", *accuracy_tables(captions), "",
      "Unsupported XM3600 languages, at the default min_score:", "",
      *unsupported_table(read_captions(UNSUPPORTED_PATH))]
  print("\n".join(lines))


if __name__ == "__main__":
  main()
