#!/usr/bin/env bash
# Runs the original design's Python producer and consumer against a fresh `eddy serve`:
# builds Eddy, makes a venv with kafka-python, starts the server on free ports in a
# temporary directory, produces a chat, reads it back grouped by bubble, asks the server's
# context consumer for a thread, and stops the server.
#
#   ./examples/python/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p eddy
venv=target/examples-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check kafka-python==3.0.12
fi
data=$(mktemp -d)
out="$data/serve.out"
EDDY_LOG=warn ./target/release/eddy serve --data-dir "$data" --kafka-port 0 --http-port 0 > "$out" &
eddy=$!
trap 'kill $eddy 2>/dev/null; wait $eddy 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do [ "$(wc -l < "$out")" -ge 2 ] && break; sleep 0.1; done
boot=$(sed -n 's/^eddy: kafka listening on \([^,]*\).*/\1/p' "$out")
http=$(sed -n 's/^eddy: http listening on //p' "$out")
run="py$$"
"$venv/bin/python" examples/python/chat_producer.py --bootstrap "$boot" --run "$run"
"$venv/bin/python" examples/python/chat_consumer.py --bootstrap "$boot"
echo "the thread of $run-6, from the server's context consumer:"
for _ in $(seq 50); do
    if curl -sf "http://$http/context/$run-6" > "$data/ctx.json"; then break; fi
    sleep 0.2
done
"$venv/bin/python" -c 'import json,sys; [print("  %s: %s" % (m["sender_name"], m["content"])) for m in json.load(open(sys.argv[1]))["thread"]]' "$data/ctx.json"
