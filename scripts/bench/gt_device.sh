#!/usr/bin/env bash
# Benchmark v2 ground truth on a lent many-core machine (run from the repository root).
#
# The same scripts/bench/finetune.py --protocol 2 jobs, in many single-thread processes: NCPU
# shards on the CPU for CPU_TARGETS and NGPU shards on the GPU for GPU_TARGETS (or, with no
# GPU_TARGETS, for CPU_TARGETS too, as shards of one NCPU+NGPU split). Each process
# starts from a copy of the committed store (so what is done is skipped and a pair's seeds 1-4
# use the lr its committed seed-0 sweep chose) and the new records are gathered into
# $OUT/new.jsonl, to be appended to results/v2/groundtruth.jsonl by the caller. No new job
# starts after DEADLINE seconds; a process still running at KILL seconds is stopped (its
# unfinished job leaves no record, or a truncated last line that read_records ignores).
set -u
: "${OUT:?set OUT}" "${NCPU:=16}" "${NGPU:=0}" "${DEADLINE:=460}" "${KILL:=520}"
: "${CPU_TARGETS:?}" "${GPU_TARGETS:=}"
export PYTHONPATH=$PWD OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1
[ -d .devdata/fashion ] && export FASHION_MNIST_DIR=$PWD/.devdata/fashion
store=scripts/bench/results/v2/groundtruth.jsonl
work=$(mktemp -d)
mkdir -p "$work/bench/v2" && cp -r scripts/bench/results/v2/backbones "$work/bench/v2/"
n0=$(wc -l < "$store")
run() {  # name device shard targets...
  local name=$1 dev=$2 shard=$3; shift 3
  cp "$store" "$work/$name.jsonl"
  timeout "$KILL" python3 scripts/bench/finetune.py --protocol 2 --out "$work/bench" --store "$work/$name.jsonl" \
    --device "$dev" --shard "$shard" --threads 1 --deadline "$DEADLINE" --targets "$@" > "$work/$name.log" 2>&1 &
}
ncpu_shards=$NCPU; [ -z "$GPU_TARGETS" ] && ncpu_shards=$((NCPU + NGPU))
for ((i = 0; i < NCPU; i++)); do run "c$i" cpu "$i/$ncpu_shards" $CPU_TARGETS; done
if [ -n "$GPU_TARGETS" ]; then
  for ((i = 0; i < NGPU; i++)); do run "g$i" cuda "$i/$NGPU" $GPU_TARGETS; done
else       # no targets of their own: the GPU shards share the CPU shards' targets and numbering
  for ((i = 0; i < NGPU; i++)); do run "g$i" cuda "$((NCPU + i))/$((NCPU + NGPU))" $CPU_TARGETS; done
fi
wait
python3 - "$n0" "$OUT/new.jsonl" "$work"/*.jsonl <<'EOF'
import json, sys
n0, out, files = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
with open(out, "w") as fh:
    for f in files:
        for line in open(f).read().splitlines()[n0:]:
            try:
                fh.write(json.dumps(json.loads(line)) + "\n")
            except ValueError:
                pass                           # a line cut short by KILL
EOF
for f in "$work"/*.log; do echo "== $f"; tail -n 2 "$f"; done
echo "new records: $(wc -l < "$OUT/new.jsonl")"
