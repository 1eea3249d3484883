#!/usr/bin/env bash
# The shipped codecs' recipe (issue 34): MODEL at quality 2 (lambda 0.013) from scratch for 24 epochs, qualities 1, 3
# and 4 fine-tuned from it for FT_EPOCHS, then each Deep-Compressed to a .sqz file. One thread per process, so
# two models train side by side on the 2-core VM. Usage: benchmarks/train_codecs.sh MODEL train|compress [FT_EPOCHS]
set -euo pipefail
MODEL=$1; STEP=$2; FT_EPOCHS=${3:-4}
D=folder:../shared/data/cifar10/cifar10-train-jpg.tar
COMMON="--data $D --optimizer adam --schedule cosine --grad-clip 1.0 --batch-size 16 --flip --validation-split 0.1 --no-bf16 --out-dir runs --quiet"
export OMP_NUM_THREADS=1
if [ "$STEP" = train ]; then
[ -d runs/$MODEL-q2 ] || squeezelab train $MODEL $COMMON --rate-lambda 0.013 --lr 2e-3 --warmup-epochs 1 --epochs 24 --name $MODEL-q2
for q in 1:0.004 3:0.045 4:0.16; do
  [ -d runs/$MODEL-q${q%%:*} ] || squeezelab train $MODEL $COMMON --rate-lambda ${q#*:} --lr 5e-4 --epochs $FT_EPOCHS \
      --init-from runs/$MODEL-q2 --name $MODEL-q${q%%:*}
done
fi
[ "$STEP" = compress ] && for q in 1 2 3 4; do
  squeezelab compress runs/$MODEL-q$q --density 1.0 --prune-steps 1 --finetune-epochs 0 --conv-bits 7 \
      --centroid-epochs 1 --out runs/compress-$MODEL-q$q --overwrite --quiet
done
