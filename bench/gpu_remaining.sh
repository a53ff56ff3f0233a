#!/usr/bin/env bash
# The GPU runs still owed to BENCHMARKS.md after 2026-11-27 (see its "missed"/"not measured" notes).
# One single-GPU call (about 10 minutes), from the repository root on the GPU machine, after the wheel
# install line of ../shared/device/wheelhouse.sh; results go to $OUT (or /tmp/o):
#   bash bench/gpu_remaining.sh
# The two-GPU comparison needs kind nvidia-h100-x2:  bash bench/gpu_remaining.sh two-gpu
set -u
OUT=${OUT:-/tmp/o}; mkdir -p "$OUT"
if [ "${1:-}" = "two-gpu" ]; then
    # the whole 12-group probe study, one GPU then two, in the same call
    for mode in one two; do
        args=(--device cuda:0); [ $mode = two ] && args=(--gpus 0,1)
        start=$(date +%s)
        timeout 280 python3 -m search.cli run --study feasibility --no-extend --results "/tmp/p_$mode" "${args[@]}" \
            > "$OUT/probe_${mode}_gpu.txt" 2>&1
        echo "$mode-gpu rc=$? wall=$(( $(date +%s) - start ))s" | tee -a "$OUT/walls.txt"
        cp "/tmp/p_$mode/gpupair.db" "$OUT/probe_${mode}_gpu.db"
    done
    exit 0
fi
timeout 90 python3 bench/monitor_overhead.py --workloads pytorch_resnet_cifar10/resnet20,examples/mnist --steps 200 --repeats 3 \
    > "$OUT/overhead.txt" 2>&1
timeout 200 python3 bench/peak_capture.py > "$OUT/peak.txt" 2>&1
# resume the full-epoch run of 2026-11-27 (copy bench/data/h100_2026-11-27/full_epoch_no_extend.db to
# results/full_epoch/gpupair.db and carry results/full_epoch): groups 9-12 are left
timeout 300 python3 -m search.cli run --study feasibility --full-epoch --no-extend --results results/full_epoch \
    --device cuda:0 > "$OUT/full_epoch.txt" 2>&1
cp results/full_epoch/gpupair.db "$OUT/full_epoch.db"
