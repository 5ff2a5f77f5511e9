#!/usr/bin/env bash
# Fleet scale through the simulator: `gpuwarden simulate config/scenarios/bench/fleet-15s.toml`
# (scrape 15 s, collection 5 s, one fatal XID) at N nodes, with the CPU and memory of the
# control plane and of the fleet process (`gpuwarden-agent fleet`) over 60 s once the fleet is
# online and settled. Both share this machine's cores, as does the simulator's own reading
# of the fleet (GET /v1/nodes every 250 ms).
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
    sleep 20
    t1=$(date +%s.%N); c1=$(cpu "$cp"); f1=$(cpu "$fl")
    sleep 60
    t2=$(date +%s.%N); c2=$(cpu "$cp"); f2=$(cpu "$fl"); rc=$(rss "$cp"); rf=$(rss "$fl")
    st=0; wait "$s" || st=$?
    online=$(sed -n 's/.*nodes online after \([0-9.]*\) s.*/\1/p' "$log")
    awk -v N="$N" -v t1="$t1" -v t2="$t2" -v c1="$c1" -v c2="$c2" -v f1="$f1" -v f2="$f2" \
        -v rc="$rc" -v rf="$rf" -v on="$online" -v st="$st" \
      'BEGIN{printf "RESULT nodes %d  online after %s s  control plane %.3f cores %d MiB  fleet %.3f cores %d MiB  exit %d\n", N, on, (c2-c1)/(t2-t1), rc, (f2-f1)/(t2-t1), rf, st}'
    tail -1 "$log"
  done
done
