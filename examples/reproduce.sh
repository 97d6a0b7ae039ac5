#!/usr/bin/env bash
# Reproduce both papers for one dataset from its YAML config, each stage reading the cache of the last.
# Usage: bash examples/reproduce.sh examples/ucf101.yaml
set -euo pipefail
cfg=${1:?usage: reproduce.sh CONFIG.yaml}
lmmclf -c "$cfg" describe                      # LMM descriptions (hours; resumable: rerun after any stop)
lmmclf -c "$cfg" embed                         # CLIP image + description embeddings
lmmclf -c "$cfg" prototypes                    # class prototypes from the training split
for features in image text concat mean; do     # paper 1, Tables 1-2
  lmmclf -c "$cfg" probe --features "$features"
done
lmmclf -c "$cfg" probe --features zeroshot
lmmclf -c "$cfg" probe --features prototype-zeroshot
lmmclf -c "$cfg" finetune --alpha 0            # paper 2 baseline: finetuning w/o Reg.
lmmclf -c "$cfg" finetune                      # paper 2: LMM-Reg.-CLIP (alpha from the config)
lmmclf -c "$cfg" eval --method all             # tables, results.{json,csv,md}, accuracy-per-epoch plot
