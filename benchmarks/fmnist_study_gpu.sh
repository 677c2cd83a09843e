#!/usr/bin/env bash
# The Fashion-MNIST study on a GPU under the name issue 25 gives it: runs benchmarks/fmnist_study/gpu.sh (see there).
exec bash "$(dirname "$0")/fmnist_study/gpu.sh" "$@"
