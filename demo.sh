#!/usr/bin/env bash
# The main job on the bundled example: check and compile examples/demo.conf,
# then forward a real HTTP request through rinetd-run and show the log.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup.sh
setup_venv ""

work=/tmp/rinetdc-demo
rm -rf "$work" && mkdir -p "$work"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "== rinetdc check examples/demo.conf"
.venv/bin/rinetdc check examples/demo.conf && echo "clean"
echo "== rinetdc compile examples/demo.conf -o $work/rules.json"
.venv/bin/rinetdc compile examples/demo.conf -o "$work/rules.json"
echo "hello through rinetd-run" > "$work/index.html"

.venv/bin/python -m http.server 18080 --bind 127.0.0.1 --directory "$work" >/dev/null 2>&1 & pids+=($!)
.venv/bin/rinetd-run "$work/rules.json" 2>"$work/rinetd-run.err" & pids+=($!)

echo "== GET http://127.0.0.1:18081/ (forwarded to 127.0.0.1:18080)"
.venv/bin/python - <<'PY'
import socket, time, urllib.request
def up(port):  # wait until something listens, without sending it a request
    for attempt in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port}")
up(18080)  # the backend
for attempt in range(100):
    try:
        page = urllib.request.urlopen("http://127.0.0.1:18081/index.html", timeout=5)
        print(page.read().decode(), end="")
        break
    except OSError:  # refused until rinetd-run listens
        time.sleep(0.1)
else:
    raise SystemExit("rinetd-run did not answer")
PY
sleep 0.3
echo "== $work/rinetd.log"
cat "$work/rinetd.log"
