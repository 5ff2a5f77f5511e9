#!/usr/bin/env bash
# Hardening: the control plane scraping one target that serves a gzip bomb (a body that
# inflates to far more than `scrape.body_limit_bytes`), every second. Prints the control
# plane's resident memory (VmRSS) and its peak (VmHWM) every SAMPLE seconds, the scrapes by
# result, and the verdict: the memory must stay bounded by scrape.concurrency ×
# scrape.body_retain_bytes at rest, and every scrape is refused as `too_large`.
#
# usage: controlplane/benches/gzip_bomb.sh
# env:   BIN=target/release (where gpuwarden is; BUILD=1 builds it)  DURATION=150  SAMPLE=30
#        BOMB_MIB=256 (the inflated size; the limit is 16 MiB)  CP_PORT=18610  BOMB_PORT=19610
#        WORK=target/bench-gzip-bomb
# needs: python3, curl. Both processes run under `timeout` and are stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${BIN:-$ROOT/target/release}
BUILD=${BUILD:-0}
DURATION=${DURATION:-150}
SAMPLE=${SAMPLE:-30}
BOMB_MIB=${BOMB_MIB:-256}
CP_PORT=${CP_PORT:-18610}
BOMB_PORT=${BOMB_PORT:-19610}
WORK=${WORK:-$ROOT/target/bench-gzip-bomb}
rm -rf "$WORK"; mkdir -p "$WORK"
if [ "$BUILD" = 1 ]; then cargo build --release -q -p gpuwarden-controlplane --bins; fi

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# The bomb: BOMB_MIB of zeros after one valid line, gzip'd once (about 1/1000 of its size),
# served as an agent's /metrics with Content-Encoding: gzip and keep-alive.
cat > "$WORK/bomb.py" <<'EOF'
import http.server, sys, zlib
port, mib = int(sys.argv[1]), int(sys.argv[2])
c = zlib.compressobj(9, zlib.DEFLATED, 31)
parts = [c.compress(b"gpuwarden_gpu_up{gpu=\"0\"} 1\n")]
zeros = b"\0" * (1 << 20)
for _ in range(mib):
    parts.append(c.compress(zeros))
parts.append(c.flush())
body = b"".join(parts)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
print(f"bomb: {len(body)} bytes gzip, {mib} MiB inflated", flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
EOF
timeout $((DURATION + 120)) python3 "$WORK/bomb.py" "$BOMB_PORT" "$BOMB_MIB" > "$WORK/bomb.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q "bomb:" "$WORK/bomb.log" 2>/dev/null && break; sleep 0.3; done
cat "$WORK/bomb.log"

cat > "$WORK/cp.toml" <<EOF
[server]
listen = "127.0.0.1:$CP_PORT"
data_dir = "$WORK"
[database]
url = "sqlite://$WORK/gw.db"
[scrape]
interval = "1s"
timeout = "1s"
[[static_targets]]
name = "bomb"
address = "http://127.0.0.1:$BOMB_PORT"
EOF
GPUWARDEN_ADMIN_TOKEN=bench-admin-token-0123456789 timeout $((DURATION + 60)) \
  "$BIN/gpuwarden" serve --config "$WORK/cp.toml" > "$WORK/cp.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$CP_PORT/healthz" > /dev/null && break; sleep 0.2; done
cp=$(pgrep -P "$!" -x gpuwarden) # the server itself, under `timeout`

mem() { awk '/VmRSS|VmHWM/{printf "%s %.1f MiB  ", $1, $2/1024}' /proc/"$cp"/status; }
echo "t=0s      $(mem)"
for t in $(seq "$SAMPLE" "$SAMPLE" "$DURATION"); do
  sleep "$SAMPLE"
  kill -0 "$cp" 2>/dev/null || { echo "the control plane exited"; cat "$WORK/cp.log"; exit 1; }
  echo "t=${t}s $(mem)"
done
echo "scrapes by result:"
curl -s "http://127.0.0.1:$CP_PORT/metrics" | grep '^gpuwarden_cp_scrapes_total' || true
rss=$(awk '/VmRSS/{printf "%.0f", $2/1024}' /proc/"$cp"/status)
hwm=$(awk '/VmHWM/{printf "%.0f", $2/1024}' /proc/"$cp"/status)
echo "RESULT gzip_bomb ${DURATION}s rss_mib=$rss peak_mib=$hwm"
