#!/usr/bin/env bash
# Scrape ingest: the gpuwarden control plane and a real Prometheus pulling the same synthetic
# fleet of 8-GPU agents, in one run, one after the other (never both at once on 2 cores).
#
# usage: controlplane/benches/ingest.sh
# env:   BIN=target/release (where gpuwarden and gpuwarden-agent are)  PROM_N=200 PROM_INTERVAL=1s  FLEET_NS="2000 10000 20000" FLEET_INTERVAL=15s
#        WARM=20 MEASURE=60 WORK=target/bench-ingest  BUILD=1 (0: use target/release as it is)
#        CONCURRENCY=64 (scrape.concurrency of the control plane)
#        HOSTS=distinct (every target on its own loopback address, 127.1.0.1, 127.1.0.2, …, as a
#        real fleet has one host per agent) or one (every target on 127.0.0.1:SRV_PORT: a client
#        that pools connections by host reuses a few for the whole fleet, which no real fleet allows)
#        FLUSH= (database.flush_interval; empty: the product's default, 30s). MEASURE should
#        be a multiple of the flush interval, so every window holds the same number of flushes.
#        PROM_N=0 skips Prometheus and the gpuwarden run at its size.
#        Ports (on 127.0.0.1; the targets on their addresses): SRV_PORT=19200 (targets) CP_PORT=18410 PROM_PORT=19090 AGENT_PORT=19410 (body capture).
# needs: prometheus (apt-get install -y prometheus), curl, gzip, bc, python3, rustc.
# Output: RESULT lines on stdout and $WORK/results.tsv; each gpuwarden run also reports its
# failed scrapes and failed event reads (both should be 0).
#
# The targets are bodies captured from a real `gpuwarden-agent --fake-gpus 8`, served gzip'd
# with keep-alive by controlplane/benches/ingest/static_targets.rs (std only, built here with
# rustc -O) on loopback: target i at http://ADDR_i:SRV_PORT/t/i/metrics (ADDR_i its own
# address, or 127.0.0.1 with HOSTS=one), and /t/i/v1/events answering like an agent with no
# new events. Like the agent, the server closes a connection idle for 5 s. Every process
# here runs under `timeout` and is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PROM_N=${PROM_N:-200}
PROM_INTERVAL=${PROM_INTERVAL:-1s}
FLEET_NS=${FLEET_NS:-"2000 10000 20000"}
FLEET_INTERVAL=${FLEET_INTERVAL:-15s}
WARM=${WARM:-20}
MEASURE=${MEASURE:-60}
CONCURRENCY=${CONCURRENCY:-64}
HOSTS=${HOSTS:-distinct}
case $HOSTS in distinct|one) ;; *) echo "HOSTS must be distinct or one, not $HOSTS" >&2; exit 2;; esac
FLUSH=${FLUSH:-}
WORK=${WORK:-$ROOT/target/bench-ingest}
BUILD=${BUILD:-1}
SRV_PORT=${SRV_PORT:-19200}
PROM_PORT=${PROM_PORT:-19090}
CP_PORT=${CP_PORT:-18410}
AGENT_PORT=${AGENT_PORT:-19410}
CLK=$(getconf CLK_TCK)
mkdir -p "$WORK"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

proc_cpu() { awk -v c="$CLK" '{printf "%.3f", ($14+$15)/c}' /proc/"$1"/stat 2>/dev/null || echo 0; }
metric_sum() { # URL NAME [label filter]
  curl -s --max-time 10 "$1" | awk -v m="$2" -v f="${3:-}" '($1==m || index($1, m"{")==1) && (f=="" || index($1,f)) {s+=$NF} END {printf "%.6f", s}'; }
secs() { local v=$1; case $v in *ms) echo "scale=3; ${v%ms}/1000" | bc;; *s) echo "${v%s}";; *m) echo "$(( ${v%m} * 60 ))";; esac; }

BIN=${BIN:-$ROOT/target/release}
if [ "$BUILD" = 1 ]; then
  echo "== build (release)"
  cargo build --release -q -p gpuwarden-agent -p gpuwarden-controlplane --bins
fi
SRC=$ROOT/controlplane/benches/ingest/static_targets.rs
# static_targets.rs is the crate root; its modules (http.rs) lie beside it.
if [ ! -x "$WORK/static_targets" ] || [ -n "$(find "$(dirname "$SRC")" -name '*.rs' -newer "$WORK/static_targets")" ]; then
  rustc -O --edition 2021 -o "$WORK/static_targets" "$SRC"
fi

echo "== capture 8 bodies from a real agent with 8 fake GPUs"
BODIES=$WORK/bodies; rm -rf "$BODIES"; mkdir -p "$BODIES"
timeout 120 "$BIN/gpuwarden-agent" --fake-gpus 8 --listen 127.0.0.1:$AGENT_PORT >"$WORK/agent.log" 2>&1 &
AG=$!
for _ in $(seq 1 100); do curl -sf -o /dev/null http://127.0.0.1:$AGENT_PORT/healthz && break; sleep 0.1; done
# One XID first, so the bodies carry XID series. A target always gets the same body, so its
# counters never move: the control plane reads /v1/events once per target (its first
# scrape), as from an agent where nothing happens.
curl -s -XPOST http://127.0.0.1:$AGENT_PORT/v1/fake/inject -d '{"gpu":2,"fault":"xid","code":13}' >/dev/null
sleep 1
for i in $(seq 0 7); do
  curl -s http://127.0.0.1:$AGENT_PORT/metrics >"$BODIES/body_$i.prom"; gzip -kf "$BODIES/body_$i.prom"; sleep 1
done
kill "$AG"; wait "$AG" 2>/dev/null || true
SPB=$(grep -vc '^#' "$BODIES/body_0.prom")
echo "samples per body: $SPB, bytes: $(wc -c <"$BODIES/body_0.prom") plain / $(wc -c <"$BODIES/body_0.prom.gz") gzip"

# target_host I: sets HOST to the address of target I (no subshell: called 10,000s of times).
target_host() { if [ "$HOSTS" = one ]; then HOST=127.0.0.1; else local a=$((0x7f010001 + $1)); HOST="$((a >> 24 & 255)).$((a >> 16 & 255)).$((a >> 8 & 255)).$((a & 255))"; fi; }
MAXN=$PROM_N; for n in $FLEET_NS; do [ "$n" -gt "$MAXN" ] && MAXN=$n; done
if [ "$HOSTS" = one ]; then SRV_ADDR=127.0.0.1; NHOSTS=1; else SRV_ADDR=127.1.0.1; NHOSTS=$MAXN; fi
TOTAL_SECS=$(( (WARM + MEASURE + 90) * (1 + 2 * $(echo $FLEET_NS | wc -w)) + 120 ))
timeout "$TOTAL_SECS" "$WORK/static_targets" "$SRV_ADDR:$SRV_PORT" "$BODIES" "$TOTAL_SECS" $((MAXN + 1024)) "$NHOSTS" >"$WORK/server.log" 2>&1 &
SRV=$!
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://$SRV_ADDR:$SRV_PORT/healthz" && break; sleep 0.1; done
echo "targets: $(head -1 "$WORK/server.log")"
printf "system\tN\tinterval\tsamples_per_s\tcpu_cores\tsamples_per_cpu_s\tscrapes_per_s\texpected_scrapes_per_s\trss_mib\n" >"$WORK/results.tsv"

# gpuwarden serve with N static targets; prints one result line.
run_cp() {
  local n=$1 iv=$2 d="$WORK/cp-$1-$2"
  rm -rf "$d"; mkdir -p "$d"
  {
    printf '[server]\nlisten = "127.0.0.1:%s"\ndata_dir = "%s"\n[database]\nurl = "sqlite://%s/gw.db"\n' "$CP_PORT" "$d" "$d"
    if [ -n "$FLUSH" ]; then printf 'flush_interval = "%s"\n' "$FLUSH"; fi
    printf '[scrape]\ninterval = "%s"\ntimeout = "%s"\nconcurrency = %s\n' "$iv" "$iv" "$CONCURRENCY"
    for i in $(seq 0 $((n - 1))); do
      target_host "$i"
      printf '[[static_targets]]\nname = "gpu-node-%05d"\naddress = "http://%s:%s/t/%d"\npool = "pool-%d"\n' "$i" "$HOST" "$SRV_PORT" "$i" $((i % 4))
    done
  } >"$d/cp.toml"
  GPUWARDEN_ADMIN_TOKEN=bench-admin-token-000000 RUST_LOG=warn timeout $((WARM + MEASURE + 120)) \
    "$BIN/gpuwarden" serve --config "$d/cp.toml" >"$d/cp.log" 2>&1 &
  local wrap=$! url="http://127.0.0.1:$CP_PORT/metrics"
  for _ in $(seq 1 600); do curl -sf -o /dev/null "http://127.0.0.1:$CP_PORT/healthz" && break; sleep 0.1; done
  local pid; pid=$(pgrep -P "$wrap" | head -1); pid=${pid:-$wrap}
  sleep "$WARM"
  local t1 s1 c1 k1 t2 s2 c2 k2 rss
  t1=$(date +%s.%N); s1=$(metric_sum "$url" gpuwarden_cp_samples_ingested_total); c1=$(proc_cpu "$pid")
  k1=$(metric_sum "$url" gpuwarden_cp_scrapes_total 'result="success"')
  local d1 d1a d1b; curl -s --max-time 10 "$url" >"$d/m1"
  d1=$(metric_sum "file://$d/m1" gpuwarden_cp_scrape_delay_seconds_count)
  d1a=$(metric_sum "file://$d/m1" gpuwarden_cp_scrape_delay_seconds_bucket 'le="0.1"'); d1b=$(metric_sum "file://$d/m1" gpuwarden_cp_scrape_delay_seconds_bucket 'le="1"')
  sleep "$MEASURE"
  t2=$(date +%s.%N); s2=$(metric_sum "$url" gpuwarden_cp_samples_ingested_total); c2=$(proc_cpu "$pid")
  k2=$(metric_sum "$url" gpuwarden_cp_scrapes_total 'result="success"')
  local d2 d2a d2b; curl -s --max-time 10 "$url" >"$d/m2"
  d2=$(metric_sum "file://$d/m2" gpuwarden_cp_scrape_delay_seconds_count)
  d2a=$(metric_sum "file://$d/m2" gpuwarden_cp_scrape_delay_seconds_bucket 'le="0.1"'); d2b=$(metric_sum "file://$d/m2" gpuwarden_cp_scrape_delay_seconds_bucket 'le="1"')
  rss=$(awk '/VmRSS/{printf "%.0f", $2/1024}' /proc/"$pid"/status)
  local fails efails; fails=$(curl -s "$url" | awk '/^gpuwarden_cp_scrapes_total/ && !/success/ {s+=$NF} END {print s+0}')
  efails=$(metric_sum "$url" gpuwarden_cp_event_read_failures_total)
  kill "$pid" 2>/dev/null; wait "$wrap" 2>/dev/null || true
  awk -v N="$n" -v iv="$iv" -v ivs="$(secs "$iv")" -v t1="$t1" -v t2="$t2" -v s1="$s1" -v s2="$s2" -v c1="$c1" -v c2="$c2" -v k1="$k1" -v k2="$k2" -v rss="$rss" \
    'BEGIN{dt=t2-t1; sps=(s2-s1)/dt; cpu=(c2-c1)/dt; printf "gpuwarden\t%d\t%s\t%.0f\t%.3f\t%.0f\t%.1f\t%.1f\t%s\n", N, iv, sps, cpu, (cpu>0?sps/cpu:0), (k2-k1)/dt, N/ivs, rss}'
  echo "   (failed scrapes so far: $fails; failed event reads: $efails, logged: $(grep -c "reading the agent's events failed" "$d/cp.log" || true))" >&2
  awk -v n="$d1" -v m="$d2" -v a1="$d1a" -v a2="$d2a" -v b1="$d1b" -v b2="$d2b" 'BEGIN{d=m-n; if (d>0) printf "   (scheduled scrapes started: %d; within 100 ms of due: %.2f %%, within 1 s: %.2f %%)\n", d, 100*(a2-a1)/d, 100*(b2-b1)/d}' >&2
}

run_prom() {
  local n=$1 iv=$2 d="$WORK/prom-$1"
  rm -rf "$d"; mkdir -p "$d/data"
  python3 - "$n" "$SRV_PORT" "$HOSTS" >"$d/targets.json" <<'PY'
import ipaddress, json, sys
n, port, hosts = int(sys.argv[1]), sys.argv[2], sys.argv[3]
host = lambda i: "127.0.0.1" if hosts == "one" else str(ipaddress.IPv4Address("127.1.0.1") + i)
print(json.dumps([{"targets": ["%s:%s" % (host(i), port)],
                   "labels": {"__metrics_path__": "/t/%d/metrics" % i, "instance": "gpu-node-%05d" % i,
                              "pool": "pool-%d" % (i % 4)}} for i in range(n)]))
PY
  printf 'global:\n  scrape_interval: %s\n  scrape_timeout: %s\nscrape_configs:\n  - job_name: gpu\n    file_sd_configs:\n      - files: ["%s/targets.json"]\n' "$iv" "$iv" "$d" >"$d/prometheus.yml"
  timeout $((WARM + MEASURE + 60)) prometheus --config.file="$d/prometheus.yml" --storage.tsdb.path="$d/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --storage.tsdb.retention.time=1h --log.level=warn >"$d/prometheus.log" 2>&1 &
  local wrap=$! url="http://127.0.0.1:$PROM_PORT/metrics"
  for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$PROM_PORT/-/ready" && break; sleep 0.2; done
  local pid; pid=$(pgrep -P "$wrap" | head -1); pid=${pid:-$wrap}
  sleep "$WARM"
  local t1 s1 c1 t2 s2 c2 rss k1 k2
  t1=$(date +%s.%N); s1=$(metric_sum "$url" prometheus_tsdb_head_samples_appended_total); c1=$(proc_cpu "$pid")
  k1=$(metric_sum "$url" prometheus_target_interval_length_seconds_count "interval=\"$iv\"")
  sleep "$MEASURE"
  t2=$(date +%s.%N); s2=$(metric_sum "$url" prometheus_tsdb_head_samples_appended_total); c2=$(proc_cpu "$pid")
  k2=$(metric_sum "$url" prometheus_target_interval_length_seconds_count "interval=\"$iv\"")
  rss=$(awk '/VmRSS/{printf "%.0f", $2/1024}' /proc/"$pid"/status)
  kill "$pid" 2>/dev/null; wait "$wrap" 2>/dev/null || true
  awk -v N="$n" -v iv="$iv" -v ivs="$(secs "$iv")" -v t1="$t1" -v t2="$t2" -v s1="$s1" -v s2="$s2" -v c1="$c1" -v c2="$c2" -v k1="$k1" -v k2="$k2" -v rss="$rss" \
    'BEGIN{dt=t2-t1; sps=(s2-s1)/dt; cpu=(c2-c1)/dt; printf "prometheus\t%d\t%s\t%.0f\t%.3f\t%.0f\t%.1f\t%.1f\t%s\n", N, iv, sps, cpu, (cpu>0?sps/cpu:0), (k2-k1)/dt, N/ivs, rss}'
}

if [ "$PROM_N" -gt 0 ]; then
  echo "== Prometheus, $PROM_N targets at $PROM_INTERVAL"
  line=$(run_prom "$PROM_N" "$PROM_INTERVAL"); echo "RESULT $line"; echo "$line" >>"$WORK/results.tsv"
  echo "== gpuwarden, the same $PROM_N targets at $PROM_INTERVAL"
  line=$(run_cp "$PROM_N" "$PROM_INTERVAL"); echo "RESULT $line"; echo "$line" >>"$WORK/results.tsv"
fi
for n in $FLEET_NS; do
  echo "== gpuwarden, $n targets at $FLEET_INTERVAL"
  line=$(run_cp "$n" "$FLEET_INTERVAL"); echo "RESULT $line"; echo "$line" >>"$WORK/results.tsv"
done
kill "$SRV" 2>/dev/null; wait "$SRV" 2>/dev/null || true
echo "== results ($WORK/results.tsv)"
column -t -s $'\t' "$WORK/results.tsv"
