"""Benchmark: the project's language identifier against langdetect and lingua.

On the contest set (benchmarks/data/langid_contest.jsonl: 20 short captions,
written for the purpose, in each of the 36 XM3600 languages and of the
neighbours they are confused with: bg, bs, ca, gl, mk, mr, ms, ne, sl, sr) it
reports, as Markdown on stdout, for the cascade (the project's default), its
fast pass alone, seeded `langdetect.detect`, and lingua over all its 75
languages in high- and low-accuracy mode, side by side:

- accuracy overall, on each confusable group and per language, and the most
  frequent confusions. Quechua has no model anywhere: its expected answer is
  `und` (for lingua, no language), and the few languages no one has a model
  for (gl; ne for lingua) count as errors for everyone;
- CPU time per caption (`time.process_time`, which counts all threads: one
  pass over the whole set per system and repeat, the systems in an order that
  rotates between repeats; the median over repeats), and the ratio to
  langdetect's;
- how well the cascade's scores are calibrated: observed accuracy per score
  bin, and the captions kept and their accuracy at a few `min_score`s.

Thresholds of the cascade were chosen on the separate dev set
(benchmarks/data/langid_dev.jsonl), never on this one.

  python -m benchmarks.langid_bench [--repeats 5] [--captions FILE]
"""

import argparse
import collections
from collections.abc import Callable, Sequence
import contextlib
import gc
import json
import os
import statistics
import time

from langdetect import detector_factory
from langdetect.lang_detect_exception import LangDetectException
import langdetect
import lingua

from dataformat import records
from pipelines import langid
from pipelines import langid_groups

DATA_DIR = os.path.join(os.path.dirname(__file__), "data")
# Short captions in langdetect's 55 languages, which the fast pass's tests use.
CAPTIONS_PATH = os.path.join(DATA_DIR, "langid_captions.jsonl")
CONTEST_PATH = os.path.join(DATA_DIR, "langid_contest.jsonl")
DEV_PATH = os.path.join(DATA_DIR, "langid_dev.jsonl")
UND = records.UNDETERMINED_LANG
# No detector has a model for Quechua; the right answer is `und`.
EXPECTED = {"quz": UND}
CALIBRATION_SCORES = (langid.DEFAULT_MIN_SCORE, 0.7, 0.9)
SCORE_BINS = (0.0, 0.5, 0.7, 0.9, 0.99, 1.0)
TOP_CONFUSIONS = 12
# The systems in the order of the tables; CASCADE is the project's.
CASCADE = "cascade"
SYSTEMS = (CASCADE, "fast", "langdetect", "lingua high", "lingua low")


def read_captions(path: str) -> list[tuple[str, str]]:
  """(true code, text) per line of a caption file."""
  with open(path, encoding="utf-8") as f:
    return [(c["lang"], c["text"])
            for c in map(json.loads, filter(str.strip, f))]


def expected_code(lang: str) -> str:
  """The answer counted right for a caption in `lang`."""
  return EXPECTED.get(lang, lang)


@contextlib.contextmanager
def _garbage_collection_off():
  """Turns garbage collection off while timing, as `timeit` does."""
  gc.collect()
  gc.disable()
  try:
    yield
  finally:
    gc.enable()


def _langdetect_code(text: str) -> str:
  try:
    return langid.to_xm3600_code(langdetect.detect(text))
  except LangDetectException:
    return UND


def _lingua_code(detector: lingua.LanguageDetector) -> Callable[[str], str]:
  def code(text: str) -> str:
    language = detector.detect_language_of(text)
    return UND if language is None else langid_groups.to_project_code(language)
  return code


def systems() -> tuple[dict[str, Callable[[str], str]], dict[str, float]]:
  """Each system's caption -> code function, and its CPU seconds to load."""
  detector_factory.DetectorFactory.seed = 0
  cascade = langid.LanguageIdentifier(min_score=0.0)
  fast = langid.LanguageIdentifier(langid.FAST_BACKEND, min_score=0.0)
  builder = lingua.LanguageDetectorBuilder.from_all_languages
  loaders = {
      CASCADE: lambda: (lambda text: cascade.identify(text).lang),
      "fast": lambda: (lambda text: fast.identify(text).lang),
      "langdetect": lambda: _langdetect_code,
      "lingua high": lambda: _lingua_code(
          builder().with_preloaded_language_models().build()),
      "lingua low": lambda: _lingua_code(
          builder().with_low_accuracy_mode()
          .with_preloaded_language_models().build()),
  }
  functions, load_seconds = {}, {}
  for name, load in loaders.items():
    start = time.process_time()
    functions[name] = load()
    load_seconds[name] = time.process_time() - start
  return functions, load_seconds


def answers_and_seconds(functions: dict[str, Callable[[str], str]],
                        texts: Sequence[str], repeats: int
                        ) -> tuple[dict[str, list[str]], dict[str, float]]:
  """Each system's answers and its median CPU seconds per caption.

  A first untimed pass gives the answers and loads what loads on first use
  (the cascade's group models, langdetect's profiles).
  """
  answers = {name: list(map(f, texts)) for name, f in functions.items()}
  names = list(functions)
  seconds = collections.defaultdict(list)
  with _garbage_collection_off():
    for repeat in range(repeats):
      for i in range(len(names)):
        name = names[(repeat + i) % len(names)]
        function = functions[name]
        start = time.process_time()
        for text in texts:
          function(text)
        seconds[name].append((time.process_time() - start) / len(texts))
  return answers, {name: statistics.median(s) for name, s in seconds.items()}


def _accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
  return sum(map(str.__eq__, truth, predicted)) / len(truth)


def _groups() -> dict[str, frozenset[str]]:
  """Named confusable groups, plus Maori, as the tables show them."""
  groups = {"/".join(sorted(g)): g for g in langid_groups.CONFUSABLE_GROUPS}
  groups["mi"] = frozenset({"mi"})
  groups["quz (-> und)"] = frozenset({"quz"})
  return groups


def accuracy_lines(captions: Sequence[tuple[str, str]],
                   answers: dict[str, list[str]],
                   seconds: dict[str, float]) -> list[str]:
  """Markdown: overall, per group, per language, confusions and CPU time."""
  langs = [lang for lang, _ in captions]
  truth = [expected_code(lang) for lang in langs]
  header = "| | " + " | ".join(SYSTEMS) + " |"
  rule = "|---|" + "---|" * len(SYSTEMS)
  reference = seconds["langdetect"]
  lines = [
      f"Contest set: {len(captions)} captions, {len(set(langs))} languages.",
      "", header, rule,
      "| accuracy, all captions | " + " | ".join(
          f"{_accuracy(truth, answers[s]):.3f}" for s in SYSTEMS) + " |",
      "| CPU us per caption (median of repeats) | " + " | ".join(
          f"{seconds[s] * 1e6:.0f}" for s in SYSTEMS) + " |",
      "| CPU time / langdetect's | " + " | ".join(
          f"{seconds[s] / reference:.3f}" for s in SYSTEMS) + " |"]
  for name, group in _groups().items():
    rows = [i for i, lang in enumerate(langs) if lang in group]
    cells = [_accuracy([truth[i] for i in rows], [answers[s][i] for i in rows])
             for s in SYSTEMS]
    lines.append(f"| {name} ({len(rows)}) | "
                 + " | ".join(f"{c:.3f}" for c in cells) + " |")
  lines += ["", "Per language:", "", header, rule]
  for lang in sorted(set(langs)):
    rows = [i for i, l in enumerate(langs) if l == lang]
    cells = [_accuracy([truth[i] for i in rows], [answers[s][i] for i in rows])
             for s in SYSTEMS]
    lines.append(f"| {lang} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
  lines += ["", f"Most frequent confusions (true -> answer: count), top "
            f"{TOP_CONFUSIONS}:", "", "| system | confusions |", "|---|---|"]
  for s in SYSTEMS:
    pairs = collections.Counter((t, a) for t, a in zip(truth, answers[s])
                                if t != a).most_common(TOP_CONFUSIONS)
    lines.append(f"| {s} | " + ", ".join(f"{t}->{a}: {n}"
                                         for (t, a), n in pairs) + " |")
  return lines


def calibration_lines(captions: Sequence[tuple[str, str]]) -> list[str]:
  """Markdown: the cascade's reliability table and min_score trade-off."""
  truth = [expected_code(lang) for lang, _ in captions]
  predictions = langid.LanguageIdentifier(min_score=0.0).identify_batch(
      [text for _, text in captions])
  lines = ["The cascade's scores: captions tagged a language (not `und`) per "
           "score bin, their mean score and the share tagged right:", "",
           "| score bin | captions | mean score | accuracy |", "|---|---|---|---|"]
  for low, high in zip(SCORE_BINS, SCORE_BINS[1:]):
    rows = [(t, p) for t, p in zip(truth, predictions) if p.lang != UND and
            (low <= p.score < high or (high == 1.0 and p.score == 1.0))]
    if rows:
      lines.append(f"| [{low}, {high}{']' if high == 1.0 else ')'} | "
                   f"{len(rows)} | "
                   f"{statistics.mean(p.score for _, p in rows):.3f} | "
                   f"{_accuracy(*zip(*((t, p.lang) for t, p in rows))):.3f} |")
  lines += ["", "| min_score | captions kept (not `und`) | accuracy on them |",
            "|---|---|---|"]
  for threshold in CALIBRATION_SCORES:
    kept = [(t, p.lang) for t, p in zip(truth, predictions)
            if p.score >= threshold and p.lang != UND]
    lines.append(f"| {threshold} | {len(kept) / len(truth):.3f} | "
                 f"{_accuracy(*zip(*kept)):.3f} |")
  return lines


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=5,
                      help="timed passes over the set per system (the median "
                      "is kept)")
  parser.add_argument("--captions", default=CONTEST_PATH, metavar="FILE",
                      help="JSON lines of {lang, text} (default: the contest "
                      "set)")
  args = parser.parse_args(argv)
  if args.repeats < 1:
    parser.error(f"--repeats must be positive, got {args.repeats}")
  captions = read_captions(args.captions)
  functions, load_seconds = systems()
  answers, seconds = answers_and_seconds(
      functions, [text for _, text in captions], args.repeats)
  lines = [*accuracy_lines(captions, answers, seconds), "",
           "CPU seconds to load each system (the cascade and langdetect load "
           "their models on first use, during the untimed first pass): "
           + ", ".join(f"{s} {load_seconds[s]:.2f}" for s in SYSTEMS), "",
           *calibration_lines(captions)]
  print("\n".join(lines))


if __name__ == "__main__":
  main()
