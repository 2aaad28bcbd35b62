#!/usr/bin/env bash
# Fill .gpu_data/ (git-ignored) for benchmarks/gpu_check.sh, which runs on a GPU machine that gets
# only the working tree: MNIST's four raw files gzipped (about 11 MB) and the pure-Python wheels its
# image lacks (hydra-core, omegaconf, antlr4). Then carry `.gpu_data` to that machine.
#
#   bash benchmarks/make_gpu_data.sh [DATA_ROOT]     # DATA_ROOT holds MNIST/raw/; default $MNIST_RUNNER_DATA or ../shared/data
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-${MNIST_RUNNER_DATA:-../shared/data}}
mkdir -p .gpu_data/MNIST/raw .gpu_data/wheels
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    gzip -9 -c "$src/MNIST/raw/$f" > ".gpu_data/MNIST/raw/$f.gz"
done
python -m pip wheel --no-deps --quiet -w .gpu_data/wheels \
    hydra-core==1.3.2 omegaconf==2.3.0 antlr4-python3-runtime==4.9.3
du -sh .gpu_data
