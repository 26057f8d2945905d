#!/usr/bin/env bash
# The encoder benchmark: clipd bench and ONNX Runtime (the reference to beat)
# on the same machine, in the same run, alternating, REPEAT rounds each;
# prints every run's JSON and then the medians side by side.
#
#   deploy/bench/encoder.sh [MODEL_DIR] [REPEAT]
#
# MODEL_DIR defaults to a ViT-B/32-shaped checkpoint with random weights,
# written once by the CLIP reference's clipweights.py (needs ../shared and
# Debian's python3-numpy). ONNX Runtime is measured by ../shared/tools/
# ort-baseline.sh (installs python3-torch and onnxruntime-node on first use).
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for these commands alone,
# so OpenBLAS picks its kernel for this CPU; the kernel is reported.
set -euo pipefail
cd "$(dirname "$0")/../.."
shared=${CLIPD_SHARED:-../shared}
model=${1:-/var/tmp/clipd-bench/vit-b-32}
repeat=${2:-3}
work=/var/tmp/clipd-bench
mkdir -p "$work"

if [ ! -f "$model/model.safetensors" ]; then
	/usr/bin/python3 -c 'import numpy' 2>/dev/null || apt-get install -y -q python3-numpy >/dev/null
	/usr/bin/python3 "$shared/tools/clipweights.py" vit-b-32-bench "$model" encoder/data/bpe_simple_vocab_16e6.txt.gz >/dev/null
fi
[ -x build/clipd ] || bash deploy/bootstrap.sh

clean=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive)
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
out="$work/results.jsonl"
: > "$out"
for i in $(seq 1 "$repeat"); do
	for b in 8 1; do
		line=$("${clean[@]}" build/clipd bench --model "$model" --batch $b --threads 2 --seconds 8)
		echo "clipd $line"
		echo "{\"who\":\"clipd\",\"r\":$line}" >> "$out"
	done
	line=$(bash "$shared/tools/ort-baseline.sh" "$work/ort" | tail -n 1)
	echo "ort $line"
	echo "{\"who\":\"ort\",\"r\":$line}" >> "$out"
done

python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(vals):
    return statistics.median(vals) if vals else float("nan")
c8 = [r["r"] for r in rows if r["who"] == "clipd" and r["r"]["batch"] == 8]
c1 = [r["r"] for r in rows if r["who"] == "clipd" and r["r"]["batch"] == 1]
o = [r["r"] for r in rows if r["who"] == "ort"]
print(f"# medians of {len(o)} rounds (clipd kernel: {c8[0]['blas_core']}, {c8[0]['blas']})")
print("| figure | clipd | ONNX Runtime 1.20 |")
print("|---|---|---|")
print(f"| images/s, batch 8 | {med([r['images_per_s'] for r in c8]):.1f} | {med([r['image_bs8_per_s'] for r in o]):.1f} |")
print(f"| images/s, batch 1 | {med([r['images_per_s'] for r in c1]):.1f} | {med([r['image_bs1_per_s'] for r in o]):.1f} |")
print(f"| text query, ms (clipd: short query; ORT: 77 tokens) | {med([r['text_query_ms'] for r in c8 + c1]):.2f} | {med([r['text_query_ms'] for r in o]):.2f} |")
print(f"| model load, ms | {med([r['load_ms'] for r in c8 + c1]):.0f} | |")
print(f"| first embedding, ms | {med([r['first_embedding_ms'] for r in c8 + c1]):.0f} | |")
print(f"| peak RSS, MB (weights {c8[0].get('weights_mb', 0):.0f} MB) | {max(r['peak_rss_mb'] for r in c8 + c1):.0f} | |")
PY
