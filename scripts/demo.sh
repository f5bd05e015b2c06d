#!/usr/bin/env bash
# The main demo, run by `make demo`: every stage on the embedded demo data.
#
# Environment:
#   PY        the project's Python (default .venv/bin/python)
#   DEMO_DIR  where every stage writes its output (default demo_out)
#
# Each stage reads what the stages before it wrote under $DEMO_DIR.
set -euo pipefail

PY="${PY:-.venv/bin/python}"
DEMO_DIR="${DEMO_DIR:-demo_out}"

stage() {
  echo
  echo "=== Stage $1: $2"
}

stage 1 "demo corpus (10,000 captioned scenes, 36 languages) and mini XM3600"
"$PY" -m pipelines.demo_corpus \
  --output "$DEMO_DIR/corpus" \
  --xm3600_dir "$DEMO_DIR/xm3600" \
  --num_examples 10000 \
  --seed 0 \
  --overwrite
echo "corpus shards: $DEMO_DIR/corpus (summary in $DEMO_DIR/corpus/corpus.json)"
echo "mini XM3600:   $DEMO_DIR/xm3600"
