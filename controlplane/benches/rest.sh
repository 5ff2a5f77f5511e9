#!/usr/bin/env bash
# REST API under load: `GET /v1/nodes?limit=100` (the first page), a filtered page, one
# node (`GET /v1/nodes/{id}`), the first page while an operator writes WRITES times a second
# (`list+writes`), and 800 different pages at random offsets (`pages`: most miss
# the listing cache, so each reads SQLite and renders), each for SECS seconds with oha
# (keep-alive, CONNS connections), against a release `gpuwarden serve` on 127.0.0.1 with a
# fresh SQLite file. The load generator runs on the same machine as the server (on the
# 2-core development machine: the same 2 cores). The CI does not run it.
# Before/after a change: BUILD=0 BIN=/path/to/old/gpuwarden controlplane/benches/rest.sh,
# then the same with the new binary.
#
# usage: controlplane/benches/rest.sh
# env:   NODES=1000 REGISTERED=100 GPUS=8 CONNS=16 SECS=10 WARM=2 FILTER='pool=pool-1&status=pending'
#        WRITES=10 (per second, scenario list+writes)
#        WORK=target/bench-rest BUILD=1 (0: use target/release/gpuwarden as it is)
#        PORT=18420 OHA=oha BIN=target/release/gpuwarden (another build to compare)
# needs: oha (not packaged by Debian 12: `cargo install oha --locked --no-default-features
#        --features native-tls`, with libssl-dev; its default TLS, rustls over aws-lc, needs a
#        longer build), curl, python3.
#
# The fleet: NODES nodes created through `POST /v1/nodes` (4 pools, 2 labels each); every
# (NODES/REGISTERED)-th of them then registers with its join token and GPUS GPUs
# in its capabilities (so pages hold big and small rows, as in a real fleet) and then
# deregisters with its node token (a stopped agent), so nothing is scraped during the run.
# The registered nodes are `active` (all in pools 0 and 2), the others `pending`: the
# default FILTER matches the 250 pending nodes of pool-1, spread over the name order
# (FILTER=status=active: the 100 nodes with GPUs, 2.5 KB of JSON each).
#
# Output per scenario: one RESULT line (tab-separated, also in $WORK/results.tsv): requests
# per second, p50/p99 latency, the server's CPU per request (utime+stime of the server
# process from /proc/PID/stat over the run, all threads), oha's CPU per request, bytes per
# answer, and answers that were not 200 (must be 0). Every process runs under `timeout`
# and is stopped by PID (trap).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
NODES=${NODES:-1000}
REGISTERED=${REGISTERED:-100}
GPUS=${GPUS:-8}
CONNS=${CONNS:-16}
SECS=${SECS:-10}
WARM=${WARM:-2}
FILTER=${FILTER:-pool=pool-1&status=pending}
WRITES=${WRITES:-10}
WORK=${WORK:-$ROOT/target/bench-rest}
BUILD=${BUILD:-1}
PORT=${PORT:-18420}
OHA=${OHA:-oha}
TOKEN=bench-admin-token-000000
CLK=$(getconf CLK_TCK)
BIN=${BIN:-$ROOT/target/release/gpuwarden}
command -v "$OHA" >/dev/null || { echo "needs oha: cargo install oha --locked --no-default-features --features native-tls" >&2; exit 2; }

if [ "$BUILD" = 1 ]; then
  echo "== build (release)"
  cargo build --release -q -p gpuwarden-controlplane --bin gpuwarden
fi
rm -rf "$WORK"; mkdir -p "$WORK"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
proc_cpu() { awk -v c="$CLK" '{printf "%.4f", ($14+$15)/c}' /proc/"$1"/stat; }
# CPU seconds of the process and its waited-for children (oha runs as a child of timeout).
kids_cpu() { awk -v c="$CLK" '{printf "%.4f", ($16+$17)/c}' /proc/"$1"/stat; }

printf '[server]\nlisten = "127.0.0.1:%s"\ndata_dir = "%s"\n[database]\nurl = "sqlite://%s/gw.db"\n' \
  "$PORT" "$WORK" "$WORK" >"$WORK/cp.toml"
RUN_S=$(( 300 + NODES / 5 + 4 * (WARM + SECS + 5) ))
GPUWARDEN_ADMIN_TOKEN=$TOKEN RUST_LOG=warn \
  timeout "$RUN_S" "$BIN" serve --config "$WORK/cp.toml" >"$WORK/cp.log" 2>&1 &
WRAP=$!; PIDS+=("$WRAP")
for _ in $(seq 1 300); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" || { echo "gpuwarden serve did not start:" >&2; cat "$WORK/cp.log" >&2; exit 1; }
SRV=$(pgrep -P "$WRAP" | head -1); SRV=${SRV:-$WRAP}

echo "== $NODES nodes, $REGISTERED of them registered with $GPUS GPUs"
python3 - "$PORT" "$TOKEN" "$NODES" "$REGISTERED" "$GPUS" >"$WORK/fleet.txt" <<'PY'
import http.client, json, sys
port, token, n, registered, gpus = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
def call(method, path, tok, body=None):
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
    r = c.getresponse(); data = r.read()
    if r.status >= 300:
        sys.exit(f"{method} {path}: {r.status} {data[:300]!r}")
    return json.loads(data) if data else None
every = n // registered if registered else 0
ids = []
for i in range(n):
    name = "gpu-node-%05d" % i
    node = call("POST", "/v1/nodes", token, {"name": name, "pool": "pool-%d" % (i % 4),
                "labels": {"rack": "r%03d" % (i // 40), "zone": "z%d" % (i % 3)}})
    ids.append(node["id"])
    if every and i % every == 0:
        caps = {"gpus": [{"index": g, "uuid": "GPU-%08x-1111-2222-3333-%012x" % (i, g),
                          "model": "NVIDIA H100 80GB HBM3", "memory_bytes": 85899345920}
                         for g in range(gpus)],
                "driver_version": "550.54.15", "cuda_version": "12.4", "hostname": name,
                "ips": ["10.0.%d.%d" % (i // 250, i % 250)], "os": "Ubuntu 22.04",
                "backend": "nvml", "agent_version": "0.1.0"}
        join = call("POST", "/v1/nodes/%s/token" % node["id"], token, {})["token"]
        reg = call("POST", "/v1/nodes/register", join, {"name": name,
                   "address": "http://127.0.0.1:9/", "capabilities": caps})
        call("DELETE", "/v1/nodes/" + reg["node_id"], reg["node_token"])
print(ids[n // 2])
PY
ONE=$(tail -1 "$WORK/fleet.txt")
printf "scenario\tpath\trequests_per_s\tp50_ms\tp99_ms\tserver_cpu_us_per_req\toha_cpu_us_per_req\tbytes_per_answer\tnot_200\n" >"$WORK/results.tsv"

# One scenario: NAME PATH [oha options]; prints its RESULT line. With --rand-regex-url,
# PATH is a regular expression and the answer's size is that of its first page.
scenario() {
  local name=$1 path=$2 url="http://127.0.0.1:$PORT$2" out="$WORK/oha-$1.json"; shift 2
  local first=$url; [ $# -gt 0 ] && first="http://127.0.0.1:$PORT/v1/nodes?limit=100"
  local bytes; bytes=$(curl -s -H "Authorization: Bearer $TOKEN" -o "$WORK/answer-$name.json" -w '%{http_code} %{size_download}' "$first")
  [ "${bytes%% *}" = 200 ] || { echo "GET $first answered ${bytes%% *}" >&2; exit 1; }
  # (oha takes the dots of a --rand-regex-url literally)
  timeout $((WARM + 30)) "$OHA" --no-tui "$@" -c "$CONNS" -z "${WARM}s" -H "Authorization: Bearer $TOKEN" "$url" >/dev/null
  local c1 k1 c2 k2 me=$BASHPID
  c1=$(proc_cpu "$SRV"); k1=$(kids_cpu "$me")
  timeout $((SECS + 30)) "$OHA" --no-tui "$@" --output-format json -c "$CONNS" -z "${SECS}s" \
    -H "Authorization: Bearer $TOKEN" "$url" >"$out"
  c2=$(proc_cpu "$SRV"); k2=$(kids_cpu "$me")
  python3 - "$name" "$path" "$out" "$c1" "$c2" "$k1" "$k2" "${bytes#* }" <<'PY'
import json, sys
name, path, out = sys.argv[1:4]
c1, c2, k1, k2 = map(float, sys.argv[4:8]); size = int(sys.argv[8])
r = json.load(open(out)); s = r["summary"]; lat = r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
ok = int(codes.get("200", 0)); bad = sum(int(v) for k, v in codes.items() if k != "200")
# Requests still in flight when the time is up are cut off by oha: not failures.
bad += sum(int(v) for k, v in r.get("errorDistribution", {}).items() if "deadline" not in k)
n = max(ok + bad, 1)
print("%s\t%s\t%.0f\t%.3f\t%.3f\t%.1f\t%.1f\t%d\t%d" % (name, path, ok / s["total"],
      lat["p50"] * 1e3, lat["p99"] * 1e3, (c2 - c1) / n * 1e6, (k2 - k1) / n * 1e6, size, bad))
PY
}

run() { # NAME PATH [oha options]
  echo "== $1: GET $2, $CONNS connections, ${SECS}s"
  local line; line=$(scenario "$@"); echo "RESULT $line"; echo "$line" >>"$WORK/results.tsv"
}
run list "/v1/nodes?limit=100"
run filtered "/v1/nodes?$FILTER&limit=100"
run one "/v1/nodes/$ONE"
# The first page again while an operator writes WRITES times a second (each write empties
# the cache: the next request reads and renders).
python3 - "$PORT" "$TOKEN" "$ONE" "$WRITES" "$((WARM + SECS + 5))" >"$WORK/writer.log" 2>&1 <<'PY' &
import http.client, json, sys, time
port, token, node, rate, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
end, n = time.time() + secs, 0
while rate > 0 and time.time() < end:
    c.request("POST", "/v1/nodes/%s/expected-gpus" % node, body=json.dumps({"gpus": 1 + n % 8}),
              headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    r = c.getresponse(); r.read(); n += 1
    if r.status != 200:
        sys.exit("write: %d" % r.status)
    time.sleep(1 / rate)
print("writes:", n)
PY
WRITER=$!; PIDS+=("$WRITER")
run list+writes "/v1/nodes?limit=100"
wait "$WRITER"
# 800 different pages at random offsets: the cache holds 64 of them, so most requests read
# the database and render (the cost after every write).
run pages '/v1/nodes\?limit=100&offset=[1-8][0-9]{2}' --rand-regex-url
echo "== results ($WORK/results.tsv; server: $(nproc) CPUs shared with oha)"
column -t -s $'\t' "$WORK/results.tsv"
