#!/usr/bin/env bash
# The torture matrix of docs/consistency.md ("Runs"): every nemesis combination below x
# seeds 1..SEEDS, DURATION seconds each, on a fresh three-site lab with relays.
# Usage: deploy/torture-matrix.sh [OUT_DIR] (env: SEEDS=5 DURATION=120 CLIENTS=4 BIN=.build/debug
# FOREIGN=1: a Paris node in every lab, its disk scanned raw afterwards)
# Prints one markdown row per run; exits 1 if any run found an anomaly or failed.
set -u
out=${1:-/tmp/agadir-torture-matrix}
seeds=${SEEDS:-5}
duration=${DURATION:-120}
clients=${CLIENTS:-4}
bin=${BIN:-.build/debug}
combos=${COMBOS:-"kill,pause skew,partition partition,link kill,skew,grow pause,link,grow,drain kill,pause,skew,partition,link,grow,drain"}
foreign=${FOREIGN:-1}
mkdir -p "$out"
status=0
echo "| nemesis | seed | operations | ok / fail / info | faults injected | anomalies | divergent partitions | residency violations | foreign fragments |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for combo in $combos; do
  for seed in $(seq 1 "$seeds"); do
    name="${combo//,/+}-s$seed"
    log="$out/$name.log"
    extra=()
    [ "$foreign" = 1 ] && extra+=(--foreign)
    "$bin/agadir-lab" torture --seed "$seed" --duration "$duration" --clients "$clients" --nemesis "$combo" \
      "${extra[@]}" --history "$out/$name.jsonl" >"$log" 2>&1
    rc=$?
    row=$(grep -E '^\| [0-9]+ \|' "$log" | tail -1)
    if [ -z "$row" ]; then
      echo "| $combo | $seed | run failed (exit $rc), see $log | | | | | | |"
      status=1
      continue
    fi
    # | seed | faults (n injected) | operations | keys | ok / fail / info | anomalies | divergent | residency |
    IFS='|' read -r _ s f ops _keys okfail anomalies divergent residency fragments _ <<<"$row"
    injected=$(echo "$f" | sed -E 's/.*\(([0-9]+) injected\).*/\1/')
    echo "| $combo | $seed |$ops|$okfail| $injected |$anomalies|$divergent|$residency|$fragments|"
    [ $rc -eq 0 ] || status=1
  done
done
exit $status
