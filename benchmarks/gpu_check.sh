#!/usr/bin/env bash
# The one device session (a lent H100/H200): the gpu-marked tests, the full zoo built on the GPU,
# then the extraction-speed, zoo and extraction benchmarks there. Output: $OUT/log.txt and the
# built zoo as $OUT/zoo.tgz.part-* (to reuse here: cat parts | tar xz -C ~/.cache/dmsec).
# The device image has torch/peft/transformers but not diffusers: it travels as a wheel in .whl/.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD DMSEC_CACHE=/tmp/dmsec-cache PYTHONUNBUFFERED=1
log="$OUT/log.txt"
section() { echo "=== $1" | tee -a "$log"; }
section gpu; nvidia-smi --query-gpu=name --format=csv,noheader | tee -a "$log"
section "gpu tests"; python3 -m pytest -q -p no:cacheprovider -m gpu tests/extract/test_gpu.py 2>&1 | tail -5 | tee -a "$log"
section "zoo build"; python3 -c "from dmsec.cli import main; main()" zoo build --device cuda 2>&1 | tail -14 | tee -a "$log"
tar cf - -C "$DMSEC_CACHE" zoo | gzip -1 | split -b 15m - "$OUT/zoo.tgz.part-"
section "extraction speed"; python3 benchmarks/extraction_speed.py --device cuda 2>&1 | tee -a "$log"
section "zoo"; python3 benchmarks/zoo.py --device cuda 2>&1 | tee -a "$log"
section "extraction"; python3 benchmarks/extraction.py --device cuda 2>&1 | tee -a "$log"
