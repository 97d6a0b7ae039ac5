#!/usr/bin/env bash
# The eleven CoOp datasets in one table (rows datasets, columns methods, plus the mean), with the
# settings of CONFIG (default: the built-in ones, the papers'). Register each dataset once first,
# e.g. `lmmclf datasets add dtd --root /data/coop/dtd` (the CoOp names are built-in types).
# Usage: bash examples/coop11-bench.sh [CONFIG.yaml] [--from-cache]
# Without --from-cache the missing probes and zero-shot rows are computed (CLIP only); describe and
# embed are not: a dataset without descriptions is listed with the commands that make them. Rerun
# to resume: everything computed before is read from the cache.
set -euo pipefail
cfg=${1:-}
shift || true
datasets=imagenet,caltech101,oxford_pets,stanford_cars,oxford_flowers,food101,fgvc_aircraft,sun397,dtd,eurosat,ucf101
lmmclf ${cfg:+-c "$cfg"} bench --datasets "$datasets" --method zeroshot,prototype-zeroshot,image,concat \
  --out-dir results/coop11 --clip-benchmark "$@"
