#!/usr/bin/env bash
# The offline plumbing demo: every stage, through the real command line, on generated images and
# tiny randomly initialised models. The numbers it prints mean nothing (random models).
# Usage: bash examples/demo.sh [OUT_DIR]     (default demo-out; delete it to start again)
set -euo pipefail
out=${1:-demo-out}
export LMMCLF_CACHE="$out/cache" LMMCLF_CONFIG_DIR="$out/user-config"   # keep the demo out of your own cache
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

lmmclf demo "$out"
cfg="$out/demo.yaml"
lmmclf -c "$cfg" datasets info
lmmclf -c "$cfg" describe
lmmclf -c "$cfg" describe                      # a second run finds everything cached
lmmclf -c "$cfg" embed
lmmclf -c "$cfg" prototypes
for features in image text concat mean zeroshot prototype-zeroshot; do
  lmmclf -c "$cfg" probe --features "$features"
done
lmmclf -c "$cfg" finetune --alpha 0
lmmclf -c "$cfg" finetune --alpha 0.01
lmmclf -c "$cfg" eval --method all --compare concat,image
lmmclf cache ls
lmmclf -c "$cfg" predict "$out/data/test" --method concat --top-k 2   # use what you trained on images
lmmclf -c "$cfg" report                      # a static site of it all: open the index.html it prints
echo "Demo finished: results in $out/results, the report in $out/results/report/index.html (a plumbing demo: random models, meaningless accuracy)."
