#!/usr/bin/env bash
# Issue 24's device run on a lent H100/H200, a few minutes: the throughput benchmark's gpu test
# (its quick path on CUDA in fp16), then the SD-1.5-sized run. Output: $OUT/throughput.txt.
# The device image has torch/peft/transformers but not diffusers: it travels as wheels in .whl/
# (how to fetch them: the docstring of benchmarks/throughput.py).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
log="$OUT/throughput.txt"
section() { echo "=== $1" | tee -a "$log"; }
section gpu; nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader | tee -a "$log"
section "gpu test"; python3 -m pytest -q -p no:cacheprovider -m gpu tests/extract/test_throughput_benchmark.py 2>&1 | tail -5 | tee -a "$log"
section "throughput"; python3 benchmarks/throughput.py 2>&1 | tee -a "$log"
