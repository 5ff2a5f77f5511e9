#!/usr/bin/env bash
# Fleet scale through the simulator: `gpuwarden simulate config/scenarios/bench/fleet-15s.toml`
# (scrape 15 s, collection 5 s, one fatal XID) at N nodes, with the CPU and memory of the
# control plane and of the fleet process (`gpuwarden-agent fleet`) over 60 s once the fleet is
# online and settled. Both share this machine's cores, as does the simulator's own reading
# of the fleet (GET /v1/nodes every 250 ms). Also: scrape lag over the window (how late each
# scheduled scrape started: gpuwarden_cp_scrape_delay_seconds, share within 100 ms and 1 s,
# and its mean), and from the report the fatal XID's detection (fault → verdict) and cordon
# (verdict → cordoned) latencies.
#
# usage: controlplane/benches/simulate.sh [N ...]     (default: 2000 5000 10000)
# env:   BIN=target/release (gpuwarden and gpuwarden-agent, built with
#        cargo build --release --bins)  WORK=target/bench-simulate
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/release}
WORK=${WORK:-target/bench-simulate}
CLK=$(getconf CLK_TCK)
mkdir -p "$WORK"
cpu() { awk -v c="$CLK" '{printf "%.2f", ($14+$15)/c}' /proc/"$1"/stat 2>/dev/null || echo 0; }
rss() { awk '/VmRSS/{print int($2/1024)}' /proc/"$1"/status 2>/dev/null || echo 0; }
for n in "${@:-2000 5000 10000}"; do
  for N in $n; do
    d=$(realpath -m "$WORK/run-$N"); rm -rf "$d"
    log="$WORK/simulate-$N.log"
    timeout 900 "$BIN/gpuwarden" simulate config/scenarios/bench/fleet-15s.toml --nodes "$N" \
      --dir "$d" --report "$WORK/report-$N.json" >"$log" 2>&1 &
    s=$!
    until grep -q "nodes online" "$log" 2>/dev/null || ! kill -0 "$s" 2>/dev/null; do sleep 1; done
    cp=$(pgrep -f "serve --config $d/controlplane.toml" | head -1 || true)
    fl=$(pgrep -f "fleet --spec $d/fleet.json" | head -1 || true)
    if [ -z "$cp" ] || [ -z "$fl" ]; then wait "$s" || true; cat "$log"; exit 1; fi
    port=$(sed -n 's/^listen = "127.0.0.1:\([0-9]*\)"/\1/p' "$d/controlplane.toml" | head -1)
    lag() { curl -fsS "http://127.0.0.1:$port/metrics" | awk '
      /^gpuwarden_cp_scrape_delay_seconds_bucket\{le="0.1"\}/ {b1=$2}
      /^gpuwarden_cp_scrape_delay_seconds_bucket\{le="1"\}/ {b2=$2}
      /^gpuwarden_cp_scrape_delay_seconds_sum/ {s=$2}
      /^gpuwarden_cp_scrape_delay_seconds_count/ {n=$2}
      END {print b1+0, b2+0, s+0, n+0}'; }
    sleep 20
    read -r l1a l1b l1s l1n < <(lag || echo 0 0 0 0)
    t1=$(date +%s.%N); c1=$(cpu "$cp"); f1=$(cpu "$fl")
    sleep 60
    t2=$(date +%s.%N); c2=$(cpu "$cp"); f2=$(cpu "$fl"); rc=$(rss "$cp"); rf=$(rss "$fl")
    read -r l2a l2b l2s l2n < <(lag || echo 0 0 0 0)
    st=0; wait "$s" || st=$?
    online=$(sed -n 's/.*nodes online after \([0-9.]*\) s.*/\1/p' "$log")
    awk -v N="$N" -v t1="$t1" -v t2="$t2" -v c1="$c1" -v c2="$c2" -v f1="$f1" -v f2="$f2" \
        -v rc="$rc" -v rf="$rf" -v on="$online" -v st="$st" \
      'BEGIN{printf "RESULT nodes %d  online after %s s  control plane %.3f cores %d MiB  fleet %.3f cores %d MiB  exit %d\n", N, on, (c2-c1)/(t2-t1), rc, (f2-f1)/(t2-t1), rf, st}'
    awk -v a="$((l2a-l1a))" -v b="$((l2b-l1b))" -v n="$((l2n-l1n))" -v s1="$l1s" -v s2="$l2s" \
      'BEGIN{if (n>0) printf "RESULT scrape lag: %d scrapes, %.2f%% started within 100 ms of due, %.2f%% within 1 s, mean %.1f ms\n", n, 100*a/n, 100*b/n, 1000*(s2-s1)/n}'
    python3 - "$WORK/report-$N.json" <<'PY' || true
import json, sys
r = json.load(open(sys.argv[1]))
for f in r["faults"]:
    for o in f["outcomes"]:
        print(f"RESULT {o['node']}: detected {o['detected_s']} s ({o['verdict']}), cordoned {o['cordoned_s']} s after the verdict")
PY
    tail -1 "$log"
  done
done
