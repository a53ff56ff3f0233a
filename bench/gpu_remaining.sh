#!/usr/bin/env bash
# The GPU runs behind BENCHMARKS.md and bench/history/, one device call each, from the repository root on a GPU
# machine after `pip install ".[workloads,dashboard,test]"`. Each subcommand is named for what it measures.
# Results go to $OUT (or /tmp/o). Each step has its own timeout so that one slow step cannot eat the call.
#   bash bench/gpu_remaining.sh checks     # GPU tests, start-up cost, monitor overhead, peak capture (~9 min)
#   bash bench/gpu_remaining.sh full       # finish the full-epoch study, then GPU search-cost baselines (~9 min)
#       needs results/full_epoch/gpupair.db (a copy of bench/data/h100_2026-11-27/full_epoch_no_extend.db) and
#       results/probe/gpupair.db (a copy of bench/data/h100_2026-11-27/probe_study.db), carried
#   bash bench/gpu_remaining.sh two-gpu [one,two|two,one|two,shared|extend|...]
#       kind nvidia-h100-x2: the 12-group probe in the modes given, in that order (default one,two), after one
#       warm-up import so that no run pays the cold file cache alone (~9 min at most). Modes: one (one GPU),
#       two (--gpus 0,1), shared (--gpus 0,1 with the per-worker core split off: bench/two_gpu_shared_cores.py),
#       extend (--gpus 0,1 with the extension on: the whole probe study, ~7 min at most)
set -u
OUT=${OUT:-/tmp/o}; mkdir -p "$OUT"
step() {  # step NAME TIMEOUT_S COMMAND...: run it, log its output, record its exit code and wall time
    local name=$1 limit=$2; shift 2
    local start rc; start=$(date +%s.%N)
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1; rc=$?
    echo "$name rc=$rc wall=$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")s" | tee -a "$OUT/walls.txt"
}
case "${1:-}" in
checks)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/card.txt"
    step startup 60 python3 -c "
import time; t0 = time.perf_counter(); import torch; t1 = time.perf_counter()
torch.zeros(1, device='cuda'); torch.cuda.synchronize(); t2 = time.perf_counter()
print(f'import torch {t1 - t0:.2f} s, first CUDA tensor {t2 - t1:.2f} s, torch {torch.__version__}')"
    GPUPAIR_OUT=$OUT step gpu_tests 110 python3 -m pytest -q -m gpu tests/gpu -p no:cacheprovider
    step overhead 150 python3 bench/monitor_overhead.py --workloads pytorch_resnet_cifar10/resnet20,examples/mnist
    step peak 230 python3 bench/peak_capture.py
    ;;
full)
    step full_epoch 330 python3 -m gpupair_search.search.cli.app run --study feasibility --full-epoch --no-extend \
        --results results/full_epoch --device cuda:0
    cp results/full_epoch/gpupair.db "$OUT/full_epoch.db"
    step search_cost 200 python3 bench/search_cost_gpu.py --results results/probe --budget-s 150
    ;;
two-gpu)
    nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv > "$OUT/card.txt"
    step warm_up 60 python3 -c "import torch, torchvision, optuna, gpupair_search.search.cli.app"
    IFS=, read -ra modes <<< "${2:-one,two}"
    for mode in "${modes[@]}"; do
        case "$mode" in
            one) cli=(-m gpupair_search.search.cli.app); args=(--no-extend --device cuda:0); limit=340 ;;
            two) cli=(-m gpupair_search.search.cli.app); args=(--no-extend --gpus 0,1); limit=200 ;;
            shared) cli=(bench/two_gpu_shared_cores.py); args=(--no-extend --gpus 0,1); limit=220 ;;
            extend) cli=(-m gpupair_search.search.cli.app); args=(--gpus 0,1); limit=420 ;;
            *) echo "unknown mode $mode" >&2; exit 2 ;;
        esac
        step "probe_${mode}_gpu" "$limit" \
            python3 "${cli[@]}" run --study feasibility --results "/tmp/p_$mode" "${args[@]}"
        cp "/tmp/p_$mode/gpupair.db" "$OUT/probe_${mode}_gpu.db"
        tar czf "$OUT/probe_${mode}_gpu_results.tgz" -C /tmp "p_$mode"
    done
    ;;
gpu-checks-job-start)
    # the GPU tests, then warm against cold job start for four built-ins (~4 min)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/card.txt"
    GPUPAIR_OUT=$OUT step gpu_tests 200 python3 -m pytest -q -m gpu tests/gpu -p no:cacheprovider
    step job_start 300 python3 bench/job_start.py --device cuda:0 --repeats 3 \
        --workloads examples/mnist,pytorch_resnet_cifar10/resnet20,Person_reID_baseline_pytorch/pcb,VulBERTa/mlp
    ;;
study)
    # the user's main command as written, timed to the verdict table; its database and table come back (~6 min)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/card.txt"
    GPUPAIR_OUT=$OUT step gpu_tests 150 python3 -m pytest -q -m gpu tests/gpu -p no:cacheprovider
    step study 440 python3 -m gpupair_search.search.cli.app run --study feasibility --results /tmp/study
    cp /tmp/study/gpupair.db "$OUT/feasibility_study.db"
    python3 -m gpupair_search.search.cli.app status --study feasibility --results /tmp/study > "$OUT/status.txt" 2>&1
    ;;
packing)
    # the 12-group study serial (--parallel 1) and packed (--parallel auto) in one call,
    # after the GPU tests (which also warm the file cache for both); then the comparison (~8 min)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/card.txt"
    GPUPAIR_OUT=$OUT step gpu_tests 150 python3 -m pytest -q -m gpu tests/gpu -p no:cacheprovider
    step study_serial 260 python3 -m gpupair_search.search.cli.app run --study feasibility --parallel 1 --results /tmp/serial
    step study_packed 200 python3 -m gpupair_search.search.cli.app run --study feasibility --parallel auto --results /tmp/packed
    cp /tmp/serial/gpupair.db "$OUT/feasibility_serial.db"; cp /tmp/packed/gpupair.db "$OUT/feasibility_packed.db"
    step compare 60 python3 bench/packing_compare.py --serial /tmp/serial --packed /tmp/packed --out "$OUT/packing_compare.json"
    ;;
matrix)
    # the 12-group study serial and packed in one call,
    # then the 110-pair matrix (packed) with what is left of the call (its database comes back, finished or not)
    begin=$(date +%s)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/card.txt"
    step study_serial 200 python3 -m gpupair_search.search.cli.app run --study feasibility --parallel 1 --results /tmp/serial
    step study_packed 200 python3 -m gpupair_search.search.cli.app run --study feasibility --parallel auto --results /tmp/packed
    cp /tmp/serial/gpupair.db "$OUT/feasibility_serial.db"; cp /tmp/packed/gpupair.db "$OUT/feasibility_packed.db"
    step compare 30 python3 bench/packing_compare.py --serial /tmp/serial --packed /tmp/packed --out "$OUT/packing_compare.json"
    left=$(( ${MATRIX_UNTIL_S:-565} - ($(date +%s) - begin) ))
    step matrix "$left" python3 -m gpupair_search.search.cli.app run --study matrix --parallel auto --results /tmp/matrix
    cp /tmp/matrix/gpupair.db "$OUT/matrix.db"
    python3 -m gpupair_search.search.cli.app status --study matrix --results /tmp/matrix > "$OUT/matrix_status.txt" 2>&1
    ;;
interference)
    # the 12 groups at their recommended batch sizes (the export of the packed study of the
    # 'matrix' step), serially with solo baselines, twice in one call; then the monitor's overhead (~9 min)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/card.txt"
    rec=bench/data/h200_2026-12-01b/recommended_pairs.json
    for run in r1 r2; do
        step "interference_$run" 215 python3 -m gpupair_search.search.cli.app run --settings "$rec" --no-extend \
            --parallel 1 --results "/tmp/$run"
        cp "/tmp/$run/gpupair.db" "$OUT/interference_$run.db"
    done
    step repeat 30 python3 bench/interference_repeat.py --results-a /tmp/r1 --results-b /tmp/r2 --settings "$rec" \
        -o "$OUT/interference_repeat.json"
    python3 -m gpupair_search.search.cli.app status --settings "$rec" --results /tmp/r1 > "$OUT/interference_status.txt" 2>&1
    step overhead 100 python3 bench/monitor_overhead.py --workloads pytorch_resnet_cifar10/resnet20 --budget-s 80
    ;;
matrix-alone)
    # the 110-pair matrix (memory only: no baselines, no steady-state window), packed with
    # --parallel auto (a core per job), timed from the command to its verdict table; database and status come back
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/card.txt"
    step matrix "${MATRIX_LIMIT_S:-555}" python3 -m gpupair_search.search.cli.app run --study matrix --parallel auto \
        --results /tmp/matrix
    cp /tmp/matrix/gpupair.db "$OUT/matrix.db"
    python3 -m gpupair_search.search.cli.app status --study matrix --results /tmp/matrix > "$OUT/matrix_status.txt" 2>&1
    ;;
interference-twice)
    # the 12 groups at their recommended batch sizes, serially with solo baselines, twice
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/card.txt"
    rec=bench/data/h200_2026-12-01b/recommended_pairs.json
    for run in r1 r2; do
        step "interference_$run" "${RUN_LIMIT_S:-275}" python3 -m gpupair_search.search.cli.app run --settings "$rec" \
            --no-extend --parallel 1 --results "/tmp/$run"
        cp "/tmp/$run/gpupair.db" "$OUT/interference_$run.db"
    done
    step repeat 30 python3 bench/interference_repeat.py --results-a /tmp/r1 --results-b /tmp/r2 --settings "$rec" \
        -o "$OUT/interference_repeat.json"
    python3 -m gpupair_search.search.cli.app status --settings "$rec" --results /tmp/r1 > "$OUT/interference_status.txt" 2>&1
    ;;
costs)
    # the fault table with packing on, the sampler's NVML cost, the monitor's overhead (epoch-
    # aware windows), and job start with where a warm start's time goes (~8 min)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/card.txt"
    step sampler_cost 40 python3 bench/sampler_cost.py --seconds 8
    step reliability 165 python3 bench/reliability.py -n 1 --device cuda:0 --runner-args "--parallel 3" \
        --faults sigkill,sigint,hang,background_dies,storage_unreachable,results_unwritable
    step overhead 145 python3 bench/monitor_overhead.py --workloads pytorch_resnet_cifar10/resnet20 --budget-s 115 \
        --max-pairs 200
    step job_start 125 python3 bench/job_start.py --device cuda:0 --repeats 2 \
        --workloads examples/mnist,pytorch_resnet_cifar10/resnet20,Person_reID_baseline_pytorch/pcb,VulBERTa/mlp
    ;;
packed-faults-overhead)
    # five packed faults (FAULTS) and the monitor's overhead on a GPU-bound batch (about 10 min, two calls' worth:
    # SKIP_FAULTS or SKIP_OVERHEAD runs one part)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/card.txt"
    [ -z "${SKIP_FAULTS:-}" ] && step reliability "${FAULTS_LIMIT_S:-560}" python3 bench/reliability.py -n 1 \
        --device cuda:0 --runner-args "--parallel 3" \
        --faults "${FAULTS:-sigint,hang,background_dies,storage_unreachable,results_unwritable}"
    [ -z "${SKIP_OVERHEAD:-}" ] && step overhead 300 python3 bench/monitor_overhead.py \
        --workloads pytorch_resnet_cifar10/resnet20 --batch-size 1024 --budget-s 260 --max-pairs 400
    ;;
sampler-parts-faults)
    # where the sampler's CPU goes (per NVML call and /proc pass), five packed faults, and the monitor's overhead
    # on a GPU-bound batch (~9.5 min)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/card.txt"
    step sampler_cost 40 python3 bench/sampler_cost.py --seconds 6 --calls 200
    step reliability "${FAULTS_LIMIT_S:-330}" python3 bench/reliability.py -n 1 --device cuda:0 \
        --runner-args "--parallel 3" --faults sigint,hang,background_dies,storage_unreachable,results_unwritable
    step overhead "${OVERHEAD_LIMIT_S:-195}" python3 bench/monitor_overhead.py \
        --workloads pytorch_resnet_cifar10/resnet20 --batch-size 1024 --budget-s "${OVERHEAD_BUDGET_S:-150}" \
        --max-pairs 400
    ;;
job-start-all)
    # the sampler after the energy counter went to 10 Hz (and how often the counter changes),
    # the energy GPU test, the last two packed faults, warm job start with models made on the device (all 11
    # built-ins: also a smoke test of that change), the 12-group study packed (the sampler's rate with light
    # packed pairs) (~8.5 min)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/card.txt"
    step sampler_cost 40 python3 bench/sampler_cost.py --seconds 6 --calls 200
    GPUPAIR_OUT=$OUT step gpu_energy 60 python3 -m pytest -q -m gpu tests/gpu -k energy -p no:cacheprovider
    step reliability 190 python3 bench/reliability.py -n 1 --device cuda:0 --runner-args "--parallel 3" \
        --faults background_dies,results_unwritable
    step job_start 90 python3 bench/job_start.py --device cuda:0 --repeats 2 --modes warm \
        --workloads "$(python3 -c 'import sys; sys.path.insert(0, "bench"); import benchlib; print(",".join(benchlib.GPU_WORKLOADS))')"
    step study_packed "${PACKED_LIMIT_S:-150}" python3 -m gpupair_search.search.cli.app run --study feasibility \
        --parallel auto --results /tmp/packed
    cp /tmp/packed/gpupair.db "$OUT/feasibility_packed.db"
    python3 -m gpupair_search.search.cli.app status --study feasibility --results /tmp/packed > "$OUT/packed_status.txt" 2>&1
    ;;
sampler-packed-pairs)
    # the sampler's cost and tick rate, alone and with four packed pairs (the GPU test that packs them) (~1.5 min)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/card.txt"
    step sampler_cost 30 python3 bench/sampler_cost.py --seconds 4 --calls 100
    GPUPAIR_OUT=$OUT step gpu_packed 100 python3 -m pytest -q -m gpu tests/gpu -k packed_pairs -p no:cacheprovider
    ;;
probe-steps-matrix)
    # how many probe steps a peak needs (every built-in alone at 3/5/10/30 steps), then the
    # matrix packed (jobs of a packed trial start together; verdicts clear of the limits rest on packed peaks,
    # --confirm near-limits), then the 12-group study packed, both at PROBE_STEPS (~9.5 min)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/card.txt"
    [ -z "${SKIP_PROBE_BENCH:-}" ] && step probe_steps "${PROBE_LIMIT_S:-130}" python3 bench/probe_steps.py --steps 3,5,10,30
    step matrix "${MATRIX_LIMIT_S:-260}" python3 -m gpupair_search.search.cli.app run --study matrix --parallel auto \
        --probe-steps "${PROBE_STEPS:-5}" --results /tmp/matrix
    cp /tmp/matrix/gpupair.db "$OUT/matrix.db"
    python3 -m gpupair_search.search.cli.app status --study matrix --results /tmp/matrix > "$OUT/matrix_status.txt" 2>&1
    step study_packed "${PACKED_LIMIT_S:-100}" python3 -m gpupair_search.search.cli.app run --study feasibility \
        --parallel auto --probe-steps "${PROBE_STEPS:-5}" --results /tmp/packed
    cp /tmp/packed/gpupair.db "$OUT/feasibility_packed.db"
    python3 -m gpupair_search.search.cli.app status --study feasibility --results /tmp/packed > "$OUT/packed_status.txt" 2>&1
    [ -n "${SERIAL_LIMIT_S:-}" ] && step study_serial "$SERIAL_LIMIT_S" python3 -m gpupair_search.search.cli.app run \
        --study feasibility --parallel 1 --probe-steps "${PROBE_STEPS:-5}" --results /tmp/serial
    [ -n "${SERIAL_LIMIT_S:-}" ] && cp /tmp/serial/gpupair.db "$OUT/feasibility_serial.db" && \
        python3 -m gpupair_search.search.cli.app status --study feasibility --results /tmp/serial > "$OUT/serial_status.txt" 2>&1
    ;;
packed-copies)
    # why packed heavy probes crawl (K copies of one probe at once, warm and
    # cold), the heavy built-ins' probe-step peaks, and the 12-group study serially at PROBE_STEPS (~7 min)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/card.txt"
    step packed_copies 170 python3 bench/packed_copies.py --workload Person_reID_baseline_pytorch/densenet121 \
        --copies 1,4 --steps 5 --timeout-s 40
    step probe_steps 100 python3 bench/probe_steps.py --steps 3,5,30 --models \
        pytorch_resnet_cifar10/resnet20,Person_reID_baseline_pytorch/densenet121,Person_reID_baseline_pytorch/hrnet18,Person_reID_baseline_pytorch/pcb,VulBERTa/mlp,VulBERTa/cnn,MRT-OAST/default
    step study_serial "${SERIAL_LIMIT_S:-150}" python3 -m gpupair_search.search.cli.app run --study feasibility \
        --parallel 1 --probe-steps "${PROBE_STEPS:-5}" --results /tmp/serial
    cp /tmp/serial/gpupair.db "$OUT/feasibility_serial.db"
    python3 -m gpupair_search.search.cli.app status --study feasibility --results /tmp/serial > "$OUT/serial_status.txt" 2>&1
    ;;
memory-verdicts-one-epoch)
    # the matrix packed; the 12-group study packed, then serially, memory
    # verdicts only (no baselines, no window); the heavy built-ins' probe-step peaks (~9.5 min)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/card.txt"
    step matrix "${MATRIX_LIMIT_S:-250}" python3 -m gpupair_search.search.cli.app run --study matrix --parallel auto \
        --results /tmp/matrix
    cp /tmp/matrix/gpupair.db "$OUT/matrix.db"
    python3 -m gpupair_search.search.cli.app status --study matrix --results /tmp/matrix > "$OUT/matrix_status.txt" 2>&1
    for mode in packed serial; do
        [ "$mode" = packed ] && parallel=auto limit=${PACKED_LIMIT_S:-80} || parallel=1 limit=${SERIAL_LIMIT_S:-130}
        step "study_$mode" "$limit" python3 -m gpupair_search.search.cli.app run --study feasibility --parallel "$parallel" \
            --no-baselines --min-window-s 0 --results "/tmp/$mode"
        cp "/tmp/$mode/gpupair.db" "$OUT/feasibility_$mode.db"
        python3 -m gpupair_search.search.cli.app status --study feasibility --results "/tmp/$mode" > "$OUT/${mode}_status.txt" 2>&1
    done
    step probe_steps "${PROBE_LIMIT_S:-80}" python3 bench/probe_steps.py --steps 3,5,30 --models \
        pytorch_resnet_cifar10/resnet20,Person_reID_baseline_pytorch/densenet121,Person_reID_baseline_pytorch/hrnet18,Person_reID_baseline_pytorch/pcb,VulBERTa/mlp,VulBERTa/cnn,MRT-OAST/default
    ;;
tick-gaps|tick-gaps-nvml-stall|study-memory-sigkill)
    # tick-gaps: where the packed sampler's missing ticks go. The matrix packed,
    # its runner under bench/gc_log.py (every garbage collection and every sampler tick timed) beside a witness
    # sampler in a process of its own (bench/nvml_witness.py); then the 12-group study serially and packed, compared;
    # then, with what is left of the call, the fault table's SIGKILL packed (~9 min). Archived after each step.
    # tick-gaps-nvml-stall: the same, with nvml_stall.py first (does NVML's query stall while other processes create
    # CUDA contexts?); run it with MATRIX_LIMIT_S=300 STUDY_LIMIT_S=90.
    # study-memory-sigkill: no matrix; the 12-group study serially and packed as benchmarked, then the fault table's SIGKILL.
    name=$1; final=$OUT; OUT=/tmp/$name; mkdir -p "$OUT"; begin=$(date +%s)
    archive() { cp "$OUT/walls.txt" "$final/walls.txt"; tar czf "$final/$name.tgz" -C /tmp "$name"; }
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/card.txt"
    step warm_up 60 python3 -c \
        "import torch, torchvision, timm, transformers, sklearn, optuna, plotly, gpupair_search.search.cli.app"
    if [ "$name" = tick-gaps-nvml-stall ]; then  # first, does NVML's query stall while other processes create contexts?
        step nvml_stall 60 python3 bench/nvml_stall.py --seconds 25 -o "$OUT/nvml_stall.json"
    fi
    if [ "$name" != study-memory-sigkill ]; then
        python3 bench/nvml_witness.py -o "$OUT/matrix_witness.json" --seconds 300 2> "$OUT/witness.txt" & witness=$!
        step matrix "${MATRIX_LIMIT_S:-240}" python3 bench/gc_log.py -o "$OUT/matrix_gc.json" \
            --ticks "$OUT/matrix_ticks.json" -- run --study matrix --parallel auto --results /tmp/matrix
        kill -TERM "$witness"; wait "$witness"
        cp /tmp/matrix/gpupair.db "$OUT/matrix.db"
        python3 bench/tick_gaps.py --ticks "$OUT/matrix_ticks.json" --gc "$OUT/matrix_gc.json" \
            --witness "$OUT/matrix_witness.json" -o "$OUT/matrix_gaps.json" > /dev/null 2>&1
        archive
    fi
    for mode in serial packed; do
        parallel=1; [ "$mode" = packed ] && parallel=auto
        step "study_$mode" "${STUDY_LIMIT_S:-80}" python3 -m gpupair_search.search.cli.app run --study feasibility \
            --parallel "$parallel" --no-baselines --min-window-s 0 --results "/tmp/$mode"
        cp "/tmp/$mode/gpupair.db" "$OUT/feasibility_$mode.db"
        archive
    done
    step compare 30 python3 bench/packing_compare.py --serial /tmp/serial --packed /tmp/packed \
        --out "$OUT/packing_compare.json"
    archive
    left=$(( ${CALL_S:-555} - ($(date +%s) - begin) ))
    if [ "$left" -gt 140 ]; then
        step reliability "$left" python3 bench/reliability.py -n 1 --device cuda:0 --runner-args "--parallel 3" \
            --faults sigkill
        archive
    fi
    ;;
memory-verdicts|memory-verdicts-startup|memory-verdicts-warm)
    # memory-verdicts: the 110-pair matrix packed, to its last verdict; then the 12-group study serially and packed (memory verdicts),
    # compared (~9.5 min). What is done so far is archived after each step ($OUT/$1.tgz), so a call cut short
    # still brings it back. MATRIX_LAST=1 runs the matrix after the 12-group study; STUDY_MODES=serial, one mode.
    # memory-verdicts-startup: the same, with the start-up's parts timed first (bench/startup_parts.py).
    # memory-verdicts-warm: after one import of the libraries (the machine's file cache warm, as on any run but its
    # first), then the matrix, then the 12-group study serially and packed.
    name=$1; final=$OUT; OUT=/tmp/$name; mkdir -p "$OUT"
    archive() { cp "$OUT/walls.txt" "$final/walls.txt"; tar czf "$final/$name.tgz" -C /tmp "$name"; }
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/card.txt"
    [ "$name" = memory-verdicts-warm ] && step warm_up 60 python3 -c \
        "import torch, torchvision, timm, transformers, sklearn, optuna, plotly, gpupair_search.search.cli.app"
    [ "$name" = memory-verdicts-startup ] && step startup_parts "${STARTUP_LIMIT_S:-45}" python3 bench/startup_parts.py \
        -o "$OUT/startup_parts.json"
    matrix() {
        step matrix "${MATRIX_LIMIT_S:-330}" python3 -m gpupair_search.search.cli.app run --study matrix --parallel auto \
            --results /tmp/matrix
        cp /tmp/matrix/gpupair.db "$OUT/matrix.db"
        python3 -m gpupair_search.search.cli.app status --study matrix --results /tmp/matrix > "$OUT/matrix_status.txt" 2>&1
        archive
    }
    [ -z "${MATRIX_LAST:-}" ] && matrix
    for mode in ${STUDY_MODES:-serial packed}; do
        [ "$mode" = serial ] && parallel=1 limit=${SERIAL_LIMIT_S:-110} || parallel=auto limit=${PACKED_LIMIT_S:-100}
        step "study_$mode" "$limit" python3 -m gpupair_search.search.cli.app run --study feasibility --parallel "$parallel" \
            --no-baselines --min-window-s 0 --results "/tmp/$mode"
        cp "/tmp/$mode/gpupair.db" "$OUT/feasibility_$mode.db"
        python3 -m gpupair_search.search.cli.app status --study feasibility --results "/tmp/$mode" > "$OUT/${mode}_status.txt" 2>&1
        archive
    done
    [ -d /tmp/packed ] && step compare 30 python3 bench/packing_compare.py --serial /tmp/serial --packed /tmp/packed \
        --out "$OUT/packing_compare.json" && archive
    [ -n "${MATRIX_LAST:-}" ] && matrix
    ;;
*)
    echo "usage: bash bench/gpu_remaining.sh checks|full|two-gpu [MODE,MODE...]|gpu-checks-job-start|study|packing|matrix|interference|matrix-alone|interference-twice|costs|packed-faults-overhead|sampler-parts-faults|job-start-all|sampler-packed-pairs|probe-steps-matrix|packed-copies|memory-verdicts-one-epoch|tick-gaps|tick-gaps-nvml-stall|study-memory-sigkill|memory-verdicts|memory-verdicts-startup|memory-verdicts-warm" >&2; exit 2 ;;
esac
