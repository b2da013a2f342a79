#!/usr/bin/env bash
# The quiet re-measure of docs/benchmarks.md's top tables: every benchmark in turn, nothing
# else running on the machine (~11 min on 2 cores). Each one's output goes to OUT/<name>.txt
# (its last line is the JSON recorded in the docs); OUT/log has start/end times and the load.
#   bash scripts/quiet_benchmarks.sh [OUT]        (default: benchmarks/out/quiet)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${1:-benchmarks/out/quiet}"
mkdir -p "$OUT"
run() {
    local name=$1; shift
    echo "$(date +%H:%M:%S) start $name (load $(cut -d' ' -f1 /proc/loadavg))" >> "$OUT/log"
    timeout 900 .venv/bin/python "$@" > "$OUT/$name.txt" 2>&1
    echo "$(date +%H:%M:%S) end $name rc=$?" >> "$OUT/log"
    tail -n 1 "$OUT/$name.txt"
    sleep 5
}
run routing benchmarks/routing.py
run telepresence benchmarks/telepresence.py --sessions 20
run api benchmarks/api.py --rate 100 --seconds 60 --peer-seconds 30
run sync benchmarks/sync.py --seconds 60 --peer-seconds 20
run simulate benchmarks/simulate.py --hours 100 --repeat 3
run telepresence_edge benchmarks/telepresence_edge.py --sessions 6 --seconds 1 --loopback
run failover benchmarks/failover.py
run ha_throughput benchmarks/ha_throughput.py
run asr benchmarks/asr.py
