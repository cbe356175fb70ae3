#!/usr/bin/env bash
# "S3 and SQS in five minutes" (README): the README's copy-paste steps, run for you against
# moto_server on loopback (no AWS account). It builds inlet, starts moto on a free port,
# makes a landing bucket, lets `inlet setup notifications` create the queue and the bucket
# notification, uploads the demo's files, and runs the pipeline through SQS. Everything is
# under demo/out/s3-quickstart; moto is stopped at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="$(scripts/setup-test-env.sh)"
cargo build --locked --bin inlet
target="${CARGO_TARGET_DIR:-target}"
[[ "$target" == /* ]] || target="$PWD/$target"
inlet="$target/debug/inlet"
work="$PWD/demo/out/s3-quickstart"
rm -rf "$work" && mkdir -p "$work"

port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true' EXIT
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
endpoint="http://127.0.0.1:$port"
py="$venv/bin/python"
until "$py" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1] + '/moto-api/')" "$endpoint" 2>/dev/null; do
  kill -0 $moto 2>/dev/null || { cat "$work/moto.log"; exit 1; }
  sleep 0.2
done

# 1. A landing bucket.
"$py" -c 'import boto3, sys; boto3.client("s3", endpoint_url=sys.argv[1]).create_bucket(Bucket="landing")' "$endpoint"

# 2. A pipeline that lists; set-up turns it into a notification pipeline.
cat > "$work/pipeline.toml" <<TOML
pipeline_id = "quickstart"
[source]
url = "s3://landing/events/"
path_glob = "**/*.json*"
storage_options = { aws_endpoint = "$endpoint", aws_allow_http = "true" }
[sink]
table = "table"
[checkpoint]
location = "checkpoint"
TOML
"$inlet" setup notifications --config "$work/pipeline.toml" --write-config

# 3. Files arrive: the bucket sends one event per object to the queue.
"$py" - "$endpoint" demo/landing <<'PY'
import boto3, pathlib, sys
s3, root = boto3.client("s3", endpoint_url=sys.argv[1]), pathlib.Path(sys.argv[2])
for p in sorted(root.rglob("*.json*")):
    s3.put_object(Bucket="landing", Key=f"events/{p.relative_to(root)}", Body=p.read_bytes())
PY

# 4. inlet takes them through SQS, then shows what it took and the schema it inferred.
"$inlet" run --config "$work/pipeline.toml" --available-now
"$inlet" files --config "$work/pipeline.toml" | head -5
"$inlet" schema --config "$work/pipeline.toml" show
echo
echo "The table is at $work/table; the queue and the bucket notification were made by"
echo "'inlet setup notifications' (run it again: nothing changes)."
