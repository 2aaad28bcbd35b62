#!/usr/bin/env bash
# The GPU check, within 5 minutes on one GPU: the tests marked `cuda`, then 10 epochs of LeNet-5 on
# MNIST without and with torch.compile, printing seconds and test accuracy: eager (channels-last, the
# default), eager NCHW, eager with bf16 autocast, compiled, and compiled with CUDA graphs; then the
# fast preset (experiment=mnist_fast, one epoch) over 5 seeds: its time to 99% beside tuomaso/
# train_mnist_fast's 0.76 s on a GTX 1660 Ti (its 30-seed mean, 99.04%).
# `--bench` adds benchmarks/benchmark.py on the GPU (about 2 more minutes).
#
# It expects .gpu_data/ from benchmarks/make_gpu_data.sh (carried to the machine: MNIST gzipped and
# the wheels of hydra-core/omegaconf/antlr4), unpacks MNIST there and installs the wheels if needed.
# Results go to stdout and to $OUT (when set) or .gpu_data/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
py=${PYTHON:-python3}
out=${OUT:-$root/.gpu_data/out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 MNIST_RUNNER_DATA=$root/.gpu_data

[ -d .gpu_data/MNIST/raw ] || { echo "no .gpu_data/MNIST/raw: run benchmarks/make_gpu_data.sh and carry .gpu_data" >&2; exit 2; }
for gz in .gpu_data/MNIST/raw/*.gz; do
    [ -f "${gz%.gz}" ] || gunzip -k "$gz"
done
if ! "$py" -c "import hydra, omegaconf" 2>/dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --target /tmp/mnist_runner_site .gpu_data/wheels/*.whl
    export PYTHONPATH=/tmp/mnist_runner_site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH}
"$py" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('GPU:', torch.cuda.get_device_name(), '| torch', torch.__version__)"

echo "== tests marked cuda"  # in one process: no pytest-xdist here, so not pyproject's -n auto
"$py" -m pytest -q -o addopts=-ra -m cuda -p no:cacheprovider tests/ 2>&1 | tee "$out/gpu_tests.txt" || echo "SOME CUDA TESTS FAILED"

echo "== 10 epochs of LeNet-5 on MNIST"
report() {  # name folder start-time end-time
    "$py" - "$@" <<'PY'
import csv, json, sys
name, folder, wall = sys.argv[1], sys.argv[2], float(sys.argv[4]) - float(sys.argv[3])
s = json.load(open(f"{folder}/summary.json"))
rows = list(csv.DictReader(open(f"{folder}/metrics.csv")))
epochs = [float(r["epoch_seconds"]) for r in rows]
print(f"{name:<16} status {s['status']}  wall {wall:6.1f} s  epochs {sum(epochs):6.2f} s "
      f"(first {epochs[0]:.2f}, median {sorted(epochs)[len(epochs) // 2]:.2f})  test acc {s['final']['test_acc']:.4f}")
PY
}
for variant in "eager:" "eager_nchw:trainer.channels_last=false" "amp:trainer.amp=true" \
               "compile:trainer.compile=true" "compile_graphs:trainer.compile=reduce-overhead"; do
    name=${variant%%:*}
    folder=$out/run_$name
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$py" -m mnist_runner device=cuda trainer.epochs=10 trainer.progress=false report.plots=false \
        hydra.run.dir="$folder" ${variant#*:} > "$folder.log" 2>&1 || { echo "$name FAILED:"; tail -25 "$folder.log"; continue; }
    t1=$(date +%s.%N)
    report "$name" "$folder" "$t0" "$t1" | tee -a "$out/gpu_runs.txt"
done

echo "== the fast preset (experiment=mnist_fast), 5 seeds; tuomaso/train_mnist_fast: 0.76 s to 99.04% on a GTX 1660 Ti"
for seed in 0 1 2 3 4; do
    folder=$out/fast_$seed
    t0=$(date +%s.%N)
    "$py" -m mnist_runner experiment=mnist_fast device=cuda seed=$seed trainer.progress=false \
        hydra.run.dir="$folder" > "$folder.log" 2>&1 || { echo "fast seed $seed FAILED:"; tail -25 "$folder.log"; continue; }
    t1=$(date +%s.%N)
    report "fast seed $seed" "$folder" "$t0" "$t1" | tee -a "$out/gpu_runs.txt"
done

if [ "${1:-}" = "--bench" ]; then
    echo "== benchmark.py on the GPU"
    "$py" benchmarks/benchmark.py --device cuda --only training --models lenet_full,lenet_subset --repeats 2 \
        --threads 1 --out "$out/BENCHMARKS_gpu.md"
fi
