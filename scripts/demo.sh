#!/usr/bin/env bash
# The main demo, run by `make demo`: the whole chain on the embedded demo data.
#
#   demo corpus + mini XM3600 -> vocabularies (en, multilingual) -> dataset
#   -> demo_tiny SigLIP -> a second dataset filtered by the SigLIP's
#   image-text score -> frozen-tower embeddings -> SigLiT
#   -> XM3600 reports and zero-shot colour classification for both models
#
# Environment:
#   PY        the project's Python (default .venv/bin/python)
#   DEMO_DIR  where every stage writes its output (default demo_out)
#   XLA_FLAGS default: 8 simulated CPU devices, so that training shards its
#             batch and the chunked sigmoid loss runs its ring over 8 devices
#
# Each stage reads what the stages before it wrote under $DEMO_DIR; a rerun
# starts again from scratch.
set -euo pipefail

PY="${PY:-.venv/bin/python}"
DEMO_DIR="${DEMO_DIR:-demo_out}"
export XLA_FLAGS="${XLA_FLAGS:---xla_force_host_platform_device_count=8}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

# The largest vocabularies the demo corpus supports (train_vocab names the
# limit when asked for more): its captions come from a small lexicon per
# language, nothing like the web text the 32k and 250k presets are sized for.
EN_VOCAB_SIZE=59
MULTI_VOCAB_SIZE=2141
# Each language keeps its best-scoring 95% of pairs in the filtered dataset;
# the corpus plants 3% mismatched pairs.
SCORE_KEEP_FRACTION=0.95

began=$SECONDS
stage() {
  echo
  echo "=== Stage $1 ($(( SECONDS - began )) s): $2"
}

# The output folder is replaced whole: never let it name tracked sources.
if [ -n "$(git ls-files -- "$DEMO_DIR" 2>/dev/null | head -1)" ]; then
  echo "error: DEMO_DIR=$DEMO_DIR holds files of this repository; choose another folder" >&2
  exit 2
fi
rm -rf "$DEMO_DIR"

stage 1 "demo corpus (10,000 captioned scenes, 36 languages, 5% bad, 3% mismatched), mini XM3600, zero-shot set"
"$PY" -m demo.corpus \
  --output "$DEMO_DIR/corpus" \
  --xm3600_dir "$DEMO_DIR/xm3600" \
  --zeroshot_dir "$DEMO_DIR/zeroshot" \
  --num_examples 10000 \
  --seed 0

stage 2 "SentencePiece vocabularies: English (en32k preset) and multilingual (multi250k preset)"
"$PY" -m vocabularies.train_vocab \
  --input "$DEMO_DIR/corpus/*.tar" \
  --output "$DEMO_DIR/vocab/en32k" \
  --preset en32k --vocab_size "$EN_VOCAB_SIZE"
"$PY" -m vocabularies.train_vocab \
  --input "$DEMO_DIR/corpus/*.tar" \
  --output "$DEMO_DIR/vocab/multi250k" \
  --preset multi250k --vocab_size "$MULTI_VOCAB_SIZE"

stage 3 "dataset: filter, tag languages, block the XM3600 images, tokenize, shard"
"$PY" -m pipelines.build_dataset \
  --input "$DEMO_DIR/corpus/*.tar" \
  --output "$DEMO_DIR/dataset" \
  --vocab "$DEMO_DIR/vocab/en32k" \
  --vocab "$DEMO_DIR/vocab/multi250k" \
  --blocklist "$DEMO_DIR/xm3600/images" \
  --image_size 64 \
  --num_shards 4
"$PY" -m pipelines.verify "$DEMO_DIR/dataset"

stage 4 "SigLIP: demo_tiny (multilingual), chunked sigmoid loss"
"$PY" -m trainer.train \
  --config trainer/configs/demo_tiny.py \
  --workdir "$DEMO_DIR/siglip" \
  --config.data.train_dir="$DEMO_DIR/dataset"

stage 5 "score filter: the dataset again, each language keeping its best ${SCORE_KEEP_FRACTION} by the SigLIP's image-text score"
"$PY" -m pipelines.build_dataset \
  --input "$DEMO_DIR/corpus/*.tar" \
  --output "$DEMO_DIR/dataset_scored" \
  --vocab "$DEMO_DIR/vocab/en32k" \
  --vocab "$DEMO_DIR/vocab/multi250k" \
  --blocklist "$DEMO_DIR/xm3600/images" \
  --image_size 64 \
  --num_shards 4 \
  --score_model "$DEMO_DIR/siglip" \
  --score_name siglip_demo \
  --score_keep_fraction "$SCORE_KEEP_FRACTION"
"$PY" -m demo.score_check \
  --corpus "$DEMO_DIR/corpus" \
  --dataset "$DEMO_DIR/dataset_scored" \
  --score_name siglip_demo

stage 6 "frozen-tower embeddings: the SigLIP image tower over the dataset"
"$PY" -m pipelines.embed \
  --dataset "$DEMO_DIR/dataset" \
  --checkpoint "$DEMO_DIR/siglip" \
  --output "$DEMO_DIR/lit_dataset" \
  --batch_size 256

stage 7 "SigLiT: a new text tower against the frozen image embeddings"
"$PY" -m trainer.train \
  --config trainer/configs/demo_siglit.py \
  --workdir "$DEMO_DIR/siglit" \
  --config.data.train_dir="$DEMO_DIR/lit_dataset"

stage 8 "XM3600 retrieval, 36 languages, both models"
for model in siglip siglit; do
  "$PY" -m eval.xm3600 \
    --data_dir "$DEMO_DIR/xm3600" \
    --checkpoint "$DEMO_DIR/$model" \
    --output "$DEMO_DIR/reports/$model" > /dev/null
done

for model in siglip siglit; do
  echo
  echo "=== XM3600 recall (%), $model ($DEMO_DIR/reports/$model/xm3600.md)"
  cat "$DEMO_DIR/reports/$model/xm3600.md"
done

stage 9 "zero-shot classification: the colour of a shape, 10 classes, 36 languages, both models"
for model in siglip siglit; do
  "$PY" -m eval.zeroshot \
    --data_dir "$DEMO_DIR/zeroshot/images" \
    --classes "$DEMO_DIR/zeroshot/classes/{lang}.txt" \
    --templates name \
    --checkpoint "$DEMO_DIR/$model" \
    --output "$DEMO_DIR/reports/$model" > /dev/null
done

echo
echo "=== Zero-shot top-1 (%), mean over the languages ($DEMO_DIR/reports/*/zeroshot.md)"
for model in siglip siglit; do
  "$PY" - "$model" "$DEMO_DIR/reports/$model/zeroshot.json" <<'PYEOF'
import json
import sys

model, path = sys.argv[1:]
with open(path, encoding="utf-8") as f:
  report = json.load(f)
mean, chance = report["mean"], report["chance"]
print(f"{model:<7} top-1 {100 * mean['top1']:5.1f} (chance "
      f"{100 * chance['top1']:.1f})   top-5 {100 * mean['top5']:5.1f} (chance "
      f"{100 * chance['top5']:.1f})   {report['num_images']} images, "
      f"{report['num_classes']} classes, {mean['num_languages']} languages")
PYEOF
done

cat <<EOF

Done in $(( SECONDS - began )) s. Artefacts under $DEMO_DIR/:
  corpus/        raw webdataset shards (corpus.json: the defects planted)
  xm3600/        mini XM3600: captions.jsonl + images/
  zeroshot/      zero-shot set: images/<colour>/*.jpg + classes/<lang>.txt
  vocab/         en32k/ and multi250k/ (.model + vocab.json)
  dataset/       ArrayRecord shards, manifest.json, rejected.jsonl, stats.png
  dataset_scored/ the same, with score/siglip_demo and the low-scoring pairs rejected
  siglip/        SigLIP run: config.json, checkpoints/, TensorBoard logs
  lit_dataset/   the dataset's text + SigLIP image embeddings (manifest names the tower)
  siglit/        SigLiT run: config.json, checkpoints/, TensorBoard logs
  reports/       siglip/ and siglit/: xm3600.json, xm3600.md, xm3600_r1.png,
                 zeroshot.json, zeroshot.md, zeroshot_top1.png
TensorBoard: $PY -m tensorboard.main --logdir $DEMO_DIR
EOF
