#!/usr/bin/env bash
# The photo upload benchmark (issue 12), figures side by side in one run
# (a command, not a test; run it on a quiet machine):
#
#   deploy/bench/photo-upload.sh [--count N] [--rounds R] [--prep N]
#                                [--connections C] [--bench-seconds S]
#                                [--model DIR] [--work DIR] [--perf SECONDS]
#
# 1. The corpus: N (default 200) distinct 12-megapixel JPEGs of about
#    2.5 MB, a quarter stored sideways with EXIF Orientation 6
#    (deploy/bench/gen-photos.py, made once under /var/tmp/clipd-bench).
# 2. On one core (taskset -c 0), over the first --prep files (default 30):
#    CPU ms per image to decode and preprocess, clipd --exact-decode,
#    clipd with the JPEG fast path (build/deploy/bench/photo-prep) and
#    Debian's Pillow doing the reference preprocessing (pillow-prep.py).
# 3. R rounds (default 3), each between two runs of clipd bench --batch 8
#    (the encoder alone, S seconds each, default 10): clipd serve (fast
#    path, the default) on a fresh data directory takes the corpus through
#    HTTP from build/deploy/bench/post-files (a C client that sends each
#    file with sendfile) with C connections (default 8), each photo posted
#    once, until it runs out or 60 s pass. Each round prints its photos/s
#    as a share of the mean of the two benches around it, the daemon's CPU
#    per photo by thread, and the shares of the machine's CPU (both cores)
#    that the daemon, the client (on the same cores) and the rest took,
#    and idle.
#    --perf SECONDS: perf record -g on the daemon for the first SECONDS of
#    round 1, then perf report by shared object and by symbol: where an
#    upload's CPU goes at batch 8 (perf.data stays in WORK).
#
# The model defaults to the ViT-B/32-shaped random checkpoint of
# ../shared/tools/clipweights.py (as deploy/bench/run.sh makes it).
# Prints one JSON line per measurement, then the bars: uploads >= 60% of
# clipd bench's batch-8 images/s (the median over the rounds) with no
# errors; clipd --exact-decode's CPU per photo <= Pillow's.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
count=200 nprep=30 conns=8 model="" work="$root/build/bench" perf_secs=0 rounds=3 bench_secs=10
while [ $# -gt 0 ]; do
	case "$1" in
	--count) count=$2; shift 2 ;;
	--prep) nprep=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--bench-seconds) bench_secs=$2; shift 2 ;;
	--connections) conns=$2; shift 2 ;;
	--model) model=$2; shift 2 ;;
	--work) work=$2; shift 2 ;;
	--perf) perf_secs=$2; shift 2 ;;
	-h|--help) sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "photo-upload: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
clipd=${CLIPD_BIN:-$root/build/clipd}
corpus=/var/tmp/clipd-bench/photos
say() { echo "photo-upload: $*" >&2; }
sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
[ "$perf_secs" = 0 ] || command -v perf >/dev/null ||
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf >/dev/null
/usr/bin/python3 -c 'import numpy, PIL' 2>/dev/null ||
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-numpy python3-pil >/dev/null
[ -x "$clipd" ] || { say "no $clipd (build first)"; exit 1; }
ninja -C build deploy/bench/photo-prep deploy/bench/post-files >/dev/null
mkdir -p "$work"
. "$root/deploy/bench/common.sh"

bench_model

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
say "corpus: $count photos in $corpus"
/usr/bin/python3 deploy/bench/gen-photos.py "$corpus" "$count" >&2
files=()
for i in $(seq 0 $((count - 1))); do files+=("$(printf '%s/photo-%04d.jpg' "$corpus" "$i")"); done
printf '%s\n' "${files[@]}" > "$work/photos.txt"
echo "# mean file size: $(du -cb "${files[@]}" | tail -1 | awk -v n="$count" '{printf "%.2f MB", $1 / n / 1e6}')"

[ "$rounds" -ge 1 ] && [ "$bench_secs" -ge 2 ] || { say "--rounds and --bench-seconds: at least 1 and 2"; exit 2; }
[ "$nprep" -le "$count" ] || nprep=$count
say "decode + preprocess on one core: clipd (exact and fast) and Pillow, $nprep photos"
taskset -c 0 build/deploy/bench/photo-prep --repeat 1 "${files[@]:0:$nprep}" > "$work/photo-prep.jsonl"
taskset -c 0 /usr/bin/python3 deploy/bench/pillow-prep.py --repeat 1 "${files[@]:0:$nprep}" > "$work/pillow-prep.jsonl"
prep_json=$(/usr/bin/python3 - "$work/photo-prep.jsonl" "$work/pillow-prep.jsonl" <<'PY'
import json, statistics, sys
c = [json.loads(l) for l in open(sys.argv[1])]
p = [json.loads(l) for l in open(sys.argv[2])]
m = statistics.median
print(json.dumps({"bench": "prep", "photos": len(c), "clipd_exact_ms": round(m([r["exact_ms"] for r in c]), 1),
                  "clipd_fast_ms": round(m([r["fast_ms"] for r in c]), 1),
                  "pillow_ms": round(m([r["pillow_ms"] for r in p]), 1)}, separators=(",", ":")))
PY
)
echo "$prep_json"

# The rounds: clipd bench, then an upload run, then clipd bench again, ...
# Each round's uploads are compared with the mean of the benches on either
# side of it: this machine's speed drifts by a fifth over minutes, and a
# single bench before the uploads can land in a fast spell or a slow one.
bench_ips() {
	local j
	j=$(run "$clipd" bench --model "$model" --batch 8 --seconds "$bench_secs")
	echo "$j" >&3
	echo "$j" | sed -n 's/.*"images_per_s":\([0-9.]*\).*/\1/p'
}
# CPU time of the daemon's threads by name (decode, encoder, commit,
# MHD-worker, ...), before and after: where an upload's CPU goes.
thread_cpu() {
	for t in /proc/"$pid"/task/*; do
		printf '%s\t%s\n' "$(cat "$t/comm" 2>/dev/null)" "$(cut -d')' -f2 "$t/stat" 2>/dev/null | awk '{print $12 + $13}')"
	done
}
# And the machine's: busy and idle ticks of all its cores (/proc/stat), and
# the CPU seconds of this shell's children, which over the run is the client's:
# the load generator shares the cores with the daemon.
machine_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
# (times in this shell itself: in a subshell it would count the subshell's children)
children_s() { tail -n 1 "$1" | sed 's/m/ /g; s/s//g' | awk '{ print $1 * 60 + $2 + $3 * 60 + $4 }'; }

exec 3>&1  # bench_ips prints each bench's JSON line here, from inside $(...)
say "clipd bench --batch 8 (the encoder alone), before round 1"
b0=$(bench_ips)
ratios=()
for r in $(seq 1 "$rounds"); do
	# A fresh daemon and data directory each round: the same photos are
	# new to it. As long as the photos last at 80% of the encoder's
	# speed (each is posted once), 5 to 60 s: responses after that are
	# not counted.
	bench_serve photo-data
	up_secs=$(awk -v n="$count" -v r="$b0" 'BEGIN { s = int(n / (0.8 * (r > 0 ? r : 1))); if (s > 60) s = 60; if (s < 5) s = 5; print s }')
	say "round $r: upload, $conns connections, up to ${up_secs} s"
	perf_pid=""
	if [ "$perf_secs" != 0 ] && [ "$r" = 1 ]; then
		perf record -g -o "$work/perf.data" -p "$pid" -- sleep "$perf_secs" 2> "$work/perf.log" &
		perf_pid=$!
	fi
	thread_cpu > "$work/threads-before.tsv"
	times > "$work/times-before"
	machine0=$(machine_ticks)
	upload_json=$(build/deploy/bench/post-files --connections "$conns" --seconds "$up_secs" "$url" "$work/photos.txt")
	machine1=$(machine_ticks)
	times > "$work/times-after"
	thread_cpu > "$work/threads-after.tsv"
	[ -z "$perf_pid" ] || wait "$perf_pid" || true
	counters=$(curl -s "$url/info" | sed -n 's/.*"encoder":{"image":\({[^}]*}\).*/\1/p')
	bench_stop_all
	say "clipd bench --batch 8 after round $r"
	b1=$(bench_ips)
	line=$(/usr/bin/python3 - "$work/threads-before.tsv" "$work/threads-after.tsv" "$upload_json" "$(getconf CLK_TCK)" \
		"$machine0" "$machine1" "$(children_s "$work/times-before")" "$(children_s "$work/times-after")" \
		"$r" "$b0" "$b1" "${counters:-null}" <<'PY'
import collections, json, sys
def load(path):
    d = collections.Counter()
    for line in open(path):
        name, _, ticks = line.rstrip("\n").partition("\t")
        if ticks.strip():
            d[name] += int(ticks)
    return d
before, after = load(sys.argv[1]), load(sys.argv[2])
up, hz = json.loads(sys.argv[3]), int(sys.argv[4])
n = max(up.get("created", 0), 1)
ms = {k: round((after[k] - before.get(k, 0)) * 1000 / hz / n, 1) for k in after if after[k] > before.get(k, 0)}
(busy0, idle0), (busy1, idle1) = [map(int, sys.argv[i].split()) for i in (5, 6)]
total = max(busy1 - busy0 + idle1 - idle0, 1)
daemon = sum(after[k] - before.get(k, 0) for k in after)
client = (float(sys.argv[8]) - float(sys.argv[7])) * hz
share = lambda t: round(100 * t / total, 1)
b0, b1 = float(sys.argv[10] or 0), float(sys.argv[11] or 0)
bench = (b0 + b1) / 2
print(json.dumps({"bench": "upload_round", "round": int(sys.argv[9]), **{k: v for k, v in up.items() if k != "bench"},
                  "bench_before": b0, "bench_after": b1,
                  "pct_of_bench": round(100 * up.get("images_per_s", 0) / bench, 1) if bench > 0 else None,
                  "daemon_cpu_ms_per_photo": round(sum(ms.values()), 1),
                  "by_thread": dict(sorted(ms.items(), key=lambda kv: -kv[1])),
                  "machine_cpu_pct": {"daemon": share(daemon), "client": share(client),
                                      "other": share(busy1 - busy0 - daemon - client), "idle": share(idle1 - idle0)},
                  "encoder_image_counters": json.loads(sys.argv[12])}, separators=(",", ":")))
PY
)
	echo "$line"
	ratios+=("$line")
	b0=$b1
done

if [ "$perf_secs" != 0 ]; then
	echo "# perf (round 1): CPU of the daemon by shared object, then the top symbols"
	# (head closes the pipe early: under pipefail that would end the script)
	perf report -i "$work/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^#' | grep . | head -15 || true
	perf report -i "$work/perf.data" --no-children --sort sym --stdio 2>/dev/null | grep -v '^#' | grep '%' | head -30 || true
fi

printf '%s\n' "${ratios[@]}" | /usr/bin/python3 -c '
import json, statistics, sys
rounds = [json.loads(l) for l in sys.stdin if l.strip()]
prep = json.loads(sys.argv[1])
pct = statistics.median(r["pct_of_bench"] or 0 for r in rounds)
errors = sum(r["not_201"] + r["socket_errors"] for r in rounds)
ex, pil = prep["clipd_exact_ms"], prep["pillow_ms"]
print("bars: uploads %s%% of the benches around them, median %.0f%% over %d rounds (>= 60%%: %s), errors %d (0: %s); "
      "clipd --exact-decode %.1f ms <= Pillow %.1f ms: %s" % (
      ", ".join("%.0f" % (r["pct_of_bench"] or 0) for r in rounds), pct, len(rounds),
      "yes" if pct >= 60 else "NO", errors, "yes" if errors == 0 else "NO", ex, pil, "yes" if ex <= pil else "NO"))
' "$prep_json"
