#!/usr/bin/env bash
# The encoder benchmark: clipd bench in each of its configurations and ONNX
# Runtime (the reference to beat) on the same machine, in the same run,
# alternating, REPEAT rounds each; prints every run's JSON and then the
# medians side by side, with the bars of issue 16.
#
#   deploy/bench/encoder.sh [MODEL_DIR] [REPEAT]
#
# Per round, batch 8 then batch 1 (2 threads each), each in every
# configuration, one after the other (so avx2 and blas-haswell, whose
# ratio is a bar, run seconds apart: this machine's speed drifts by up to
# a tenth over minutes, and five rounds' medians ride out a disturbed one):
#   fp32          clipd bench (the CPU's own kernel: AVX-512 here)
#   bf16          clipd bench --precision bf16 (vdpbf16ps)
#   avx2          CLIPD_CPU=avx2 OPENBLAS_CORETYPE=Haswell: clipd's AVX2 +
#                 FMA kernel, as on a CPU without AVX-512 (OpenBLAS, which
#                 still does attention's small products, on its AVX2 kernel
#                 too)
#   blas-haswell  CLIPD_CPU=openblas OPENBLAS_CORETYPE=Haswell: the products
#                 through OpenBLAS's Haswell kernel, what an AVX2 machine ran
#                 before clipd had a kernel for it (the same shapes, the
#                 same measurement)
#   ort           ONNX Runtime 1.20, fp32
#
# MODEL_DIR defaults to a ViT-B/32-shaped checkpoint with random weights,
# written once by the CLIP reference's clipweights.py (needs ../shared and
# Debian's python3-numpy). ONNX Runtime is measured by ../shared/tools/
# ort-baseline.sh (installs python3-torch and onnxruntime-node on first use).
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for these commands alone
# (but for the Haswell core type of avx2 and blas-haswell), so OpenBLAS
# picks its kernel for this CPU; the kernel is reported. A quick check that the script works, not a
# measurement: CLIPD_BENCH_SECONDS=0.5 CLIPD_BENCH_ORT=0 \
#   deploy/bench/encoder.sh tests/data/tiny-clip-hf 1
set -euo pipefail
cd "$(dirname "$0")/../.."
shared=${CLIPD_SHARED:-../shared}
model=${1:-/var/tmp/clipd-bench/vit-b-32}
repeat=${2:-5}
seconds=${CLIPD_BENCH_SECONDS:-8}
with_ort=${CLIPD_BENCH_ORT:-1}
work=/var/tmp/clipd-bench
mkdir -p "$work"

if [ ! -f "$model/model.safetensors" ] && [ ! -f "$model/open_clip_model.safetensors" ]; then
	/usr/bin/python3 -c 'import numpy' 2>/dev/null || apt-get install -y -q python3-numpy >/dev/null
	/usr/bin/python3 "$shared/tools/clipweights.py" vit-b-32-bench "$model" encoder/data/bpe_simple_vocab_16e6.txt.gz >/dev/null
fi
[ -x build/clipd ] || bash deploy/bootstrap.sh

clean=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE -u CLIPD_CPU -u CLIPD_PRECISION OMP_WAIT_POLICY=passive)
declare -A how=(
	[fp32]=""
	[bf16]="--precision bf16"
	[avx2]="CLIPD_CPU=avx2 OPENBLAS_CORETYPE=Haswell"
	[blas-haswell]="CLIPD_CPU=openblas OPENBLAS_CORETYPE=Haswell"
)
configs=(fp32 bf16 avx2 blas-haswell)
grep -qw avx512_bf16 /proc/cpuinfo || { echo "# no AVX512_BF16 on this CPU: bf16 is not measured"; configs=(fp32 avx2 blas-haswell); }
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
out="$work/results.jsonl"
: > "$out"
for i in $(seq 1 "$repeat"); do
	for b in 8 1; do
		for c in "${configs[@]}"; do
			envs=() flags=()
			for w in ${how[$c]}; do
				case $w in *=*) envs+=("$w") ;; *) flags+=("$w") ;; esac
			done
			line=$("${clean[@]}" "${envs[@]}" build/clipd bench --model "$model" "${flags[@]}" --batch $b \
				--threads 2 --seconds "$seconds")
			echo "$c $line"
			echo "{\"who\":\"$c\",\"r\":$line}" >> "$out"
		done
	done
	if [ "$with_ort" = 1 ]; then
		line=$(bash "$shared/tools/ort-baseline.sh" "$work/ort" | tail -n 1)
		echo "ort $line"
		echo "{\"who\":\"ort\",\"r\":$line}" >> "$out"
	fi
done

python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(vals):
    return statistics.median(vals) if vals else float("nan")
def runs(who, batch=None):
    return [r["r"] for r in rows if r["who"] == who and (batch is None or r["r"].get("batch") == batch)]
names = [w for w in ("fp32", "bf16", "avx2", "blas-haswell") if runs(w)]
ort = runs("ort")
fig = {}
for w in names:
    fig[w] = {"b8": med([r["images_per_s"] for r in runs(w, 8)]), "b1": med([r["images_per_s"] for r in runs(w, 1)]),
              "q": med([r["text_query_ms"] for r in runs(w)]), "load": med([r["load_ms"] for r in runs(w)]),
              "first": med([r["first_embedding_ms"] for r in runs(w)]), "rss": max(r["peak_rss_mb"] for r in runs(w))}
if ort:
    fig["ort"] = {"b8": med([r["image_bs8_per_s"] for r in ort]), "b1": med([r["image_bs1_per_s"] for r in ort]),
                  "q": med([r["text_query_ms"] for r in ort])}
cols = names + (["ort"] if ort else [])
first = runs(names[0], 8)[0]
print(f"# medians of {len(runs(names[0], 8))} rounds (kernels: "
      + ", ".join(f"{w} {runs(w, 8)[0].get('kernel', '?')}" for w in names)
      + f"; {first['blas']} {first['blas_core']} for the rest)")
label = {"fp32": "clipd fp32", "bf16": "clipd bf16", "avx2": "clipd AVX2 kernel", "blas-haswell": "OpenBLAS Haswell",
         "ort": "ONNX Runtime 1.20 fp32"}
print("| figure | " + " | ".join(label[c] for c in cols) + " |")
print("|---" * (len(cols) + 1) + "|")
def row(name, key, fmt):
    print(f"| {name} | " + " | ".join(fmt.format(fig[c][key]) if key in fig[c] else "" for c in cols) + " |")
row("images/s, batch 8", "b8", "{:.1f}")
row("images/s, batch 1", "b1", "{:.1f}")
row("text query, ms (clipd: short query; ORT: 77 tokens)", "q", "{:.2f}")
row("model load, ms", "load", "{:.0f}")
row("first embedding, ms", "first", "{:.0f}")
row("peak RSS, MB", "rss", "{:.0f}")
def bar(what, value, ok):
    print(f"- {what}: {value} {'(bar met)' if ok else '(BAR NOT MET)'}")
print()
if "bf16" in fig:
    r = fig["bf16"]["b8"] / fig["fp32"]["b8"]
    bar("bf16 / fp32 images/s at batch 8 (>= 1.7)", f"{r:.2f}", r >= 1.7)
    if ort:
        r = fig["bf16"]["b8"] / fig["ort"]["b8"]
        bar("bf16 / ONNX Runtime images/s at batch 8 (>= 2)", f"{r:.2f}", r >= 2)
    bar("bf16 text query, ms (<= 2.5)", f"{fig['bf16']['q']:.2f}", fig["bf16"]["q"] <= 2.5)
if "avx2" in fig and "blas-haswell" in fig:
    for key, what in (("b8", "images/s at batch 8"), ("b1", "images/s at batch 1")):
        r = fig["avx2"][key] / fig["blas-haswell"][key]
        # each round's two runs, seconds apart: how much the ratio moves
        b = 8 if key == "b8" else 1
        pairs = [a["images_per_s"] / o["images_per_s"] for a, o in zip(runs("avx2", b), runs("blas-haswell", b))]
        spread = ", ".join(f"{x:.2f}" for x in pairs)
        bar(f"AVX2 kernel / OpenBLAS Haswell {what} (>= 1.15)", f"{r:.2f} (round by round: {spread})", r >= 1.15)
    r = fig["blas-haswell"]["q"] / fig["avx2"]["q"]
    bar("AVX2 kernel / OpenBLAS Haswell text queries per second (>= 1.15)", f"{r:.2f}", r >= 1.15)
PY
