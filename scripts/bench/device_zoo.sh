#!/usr/bin/env bash
# The zoo tier of the ground truth on a lent GPU machine (see finetune.py, "Second tier").
#
#   scripts/bench/device_zoo.sh MEMBER[,MEMBER...] DEADLINE_S COMMIT
#
# Expects, carried next to the tree in .zoo-carry/: zoo/catalog + zoo/repos/<member> (from
# `proximity zoo build`) and fashion-mnist/t10k-*.gz. Runs 4 processes on the one GPU, each
# over 3 of the 12 targets, starting no job after DEADLINE_S; each writes $OUT/zoo-<i>.jsonl
# (resumable: stores carried in .zoo-carry/stores/ are continued; merge them into scripts/bench/results/groundtruth-zoo.jsonl).
set -u
members=${1//,/ }
deadline=$2
export BENCH_CODE_VERSION=$3 PROXIMITY_DATA_DIR=$PWD/.zoo-carry FASHION_MNIST_DIR=$PWD/.zoo-carry/fashion-mnist
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PROXIMITY_CACHE_DIR=/tmp/proximity-cache
python3 -c "import torch, timm, proximity; print(torch.__version__, timm.__version__, torch.cuda.get_device_name())" || exit 1
groups=("stripes-new-angles stripes-low-contrast-inverted blobs-new-scales" "shapes-new fashion-5-small fashion-inverted"
        "digits digits-small grey-photos" "textures microscopy stripes-fine-angles")
for i in 0 1 2 3; do
  [ -f ".zoo-carry/stores/zoo-$i.jsonl" ] && cp ".zoo-carry/stores/zoo-$i.jsonl" "$OUT/"   # resume an earlier call
  python3 scripts/bench/finetune.py --tier zoo --device cuda --deadline "$deadline" --backbones $members \
    --targets ${groups[$i]} --store "$OUT/zoo-$i.jsonl" > "$OUT/log-$i.txt" 2>&1 &
done
wait
tail -n 3 "$OUT"/log-*.txt
