"""A loopback HTTP proxy that injects faults between inlet and moto_server.

Usage: faultproxy.py TARGET_PORT STATS_FILE RATE SEED STALL_SECONDS
Prints the port it listens on (127.0.0.1) as its first line of stdout. A fraction RATE of
requests meets one fault, chosen at random (seeded) among:
  500        answered 500 InternalError, not forwarded
  503        answered 503 SlowDown, not forwarded
  reset      connection reset before forwarding
  lost       forwarded (the request takes effect), then the connection is reset: the
             answer is lost, as when a network drops a response
  truncate   forwarded, then the answer's body is cut short and the connection closed
  stall      held STALL_SECONDS before being forwarded
After each request STATS_FILE holds {"requests": N, "faults": {kind: count}} as JSON.
With DENY_DELETE=SUBSTRING in the environment, every delete of a key containing SUBSTRING
(DELETE, or a multi-object delete POST naming one) is answered 403 AccessDenied, as an IAM
policy without s3:DeleteObject there would; STATS_FILE then counts them as "denied".
With OUTAGE_FILE=PATH, every request is answered 503 ServiceUnavailable while PATH exists:
an outage the test starts and ends without restarting anything.
With KEYS_FILE=PATH, a request passes only when the access key of its SigV4 signature is
listed in PATH (lines "KEY EXPIRY", EXPIRY in Unix seconds, 0 for never; a KEY ending in
"*" is a prefix): an unknown key is answered 403 InvalidAccessKeyId, an expired one 400
ExpiredToken, as AWS does. STATS_FILE then holds "keys" {service: {key: requests}},
"rejected" {"unknown": n, "expired": n}, and "min_seconds_left": the least time any
accepted request's expiring key had left.
With COUNT_CALLS=1, STATS_FILE also holds "calls" {"BUCKET AREA KIND": n} for S3 (KIND one
of LIST, GET, HEAD, PUT, COPY, POST, DELETE; AREA `_delta_log` for a Delta log, `data`
otherwise; a LIST of a Delta log without `start-after` is `LIST-from-0`) and {"sqs - Action": n}
for SQS, as the request-cost bench (benches/cost.py) counts them; with CALL_LOG=PATH too,
each call is appended to PATH as "TIME KIND PATH?QUERY".
"""

import http.client
import http.server
import json
import os
import random
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse

KINDS = ["500", "503", "reset", "lost", "truncate", "stall"]
DENY_DELETE = os.environ.get("DENY_DELETE")
OUTAGE_FILE = os.environ.get("OUTAGE_FILE")
KEYS_FILE = os.environ.get("KEYS_FILE")
COUNT_CALLS = os.environ.get("COUNT_CALLS") == "1"
CALL_LOG = os.environ.get("CALL_LOG")
HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
lock = threading.Lock()
stats = {"requests": 0, "faults": {k: 0 for k in KINDS}, "denied": 0, "keys": {}, "rejected": {"unknown": 0, "expired": 0}, "min_seconds_left": None, "calls": {}}


def write_stats():
    """Writes STATS_FILE; the caller holds `lock`."""
    tmp = stats_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(stats, f)
    os.replace(tmp, stats_file)


def key_refusal(headers):
    """None when KEYS_FILE allows the request's signing key, else (status, code, message)."""
    if not KEYS_FILE:
        return None
    found = re.search(r"Credential=([^/]+)/[^/]+/[^/]+/([^/]+)/", headers.get("Authorization", ""))
    key, service = (found.group(1), found.group(2)) if found else ("", "unsigned")
    expiry = None
    with open(KEYS_FILE) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 2:
                continue
            name, until = parts[0], float(parts[1])
            if name == key or (name.endswith("*") and key.startswith(name[:-1])):
                expiry = until
    with lock:
        if expiry is None:
            reason = "unknown"
        elif expiry and time.time() >= expiry:
            reason = "expired"
        else:
            reason = None
            if expiry:
                left = expiry - time.time()
                if stats["min_seconds_left"] is None or left < stats["min_seconds_left"]:
                    stats["min_seconds_left"] = left
            per_service = stats["keys"].setdefault(service, {})
            per_service[key] = per_service.get(key, 0) + 1
        if reason:
            stats["rejected"][reason] += 1
        write_stats()
    if reason == "unknown":
        return (403, "InvalidAccessKeyId", f"The AWS Access Key Id {key} you provided does not exist in our records.")
    if reason == "expired":
        return (400, "ExpiredToken", "The provided token has expired.")
    return None


def forward(handler, port, body):
    """Sends the request `handler` holds (with `body`) to 127.0.0.1:`port`; returns the
    response and its body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP}
    if body or handler.command in ("PUT", "POST"):
        headers["Content-Length"] = str(len(body))
    conn.request(handler.command, handler.path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp, data


def send_back(handler, resp, data):
    """Answers `handler` with a forwarded response; returns False for HEAD (no body)."""
    handler.send_response(resp.status, resp.reason)
    for k, v in resp.getheaders():
        if k.lower() not in HOP and k.lower() != "content-length":
            handler.send_header(k, v)
    if handler.command == "HEAD":
        handler.send_header("Content-Length", resp.getheader("Content-Length") or "0")
        handler.end_headers()
        return False
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    return True


def call_kind(command, path, headers, body):
    """The request as "BUCKET AREA KIND" (S3) or "sqs - Action" (SQS)."""
    target = headers.get("X-Amz-Target", "")
    if target.startswith("AmazonSQS."):
        return "sqs - " + target.split(".", 1)[1]
    if command == "POST" and (body.startswith(b"Action=") or b"&Action=" in body[:400]):
        action = urllib.parse.parse_qs(body.decode(errors="replace")).get("Action", ["?"])[0]
        return "sqs - " + action
    url = urllib.parse.urlsplit(path)
    query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
    bucket, _, key = urllib.parse.unquote(url.path).lstrip("/").partition("/")
    log = "_delta_log/" in "/" + key or "_delta_log" in query.get("prefix", [""])[0]
    area = "_delta_log" if log else "data"
    if command == "GET" and not key:
        kind = "LIST-from-0" if log and "start-after" not in query else "LIST"
    elif command == "PUT":
        kind = "COPY" if headers.get("x-amz-copy-source") else "PUT"
    elif command == "POST":
        kind = "DELETE" if "delete" in query else "POST"
    else:
        kind = command
    return f"{bucket} {area} {kind}"


def count_call(handler, body):
    if not COUNT_CALLS:
        return
    kind = call_kind(handler.command, handler.path, handler.headers, body)
    with lock:
        stats["calls"][kind] = stats["calls"].get(kind, 0) + 1
        if CALL_LOG:
            with open(CALL_LOG, "a") as log:
                log.write(f"{time.time():.3f} {kind} {handler.path}\n")


def choose():
    with lock:
        stats["requests"] += 1
        kind = rng.choice(KINDS) if rng.random() < rate else None
        if kind:
            stats["faults"][kind] += 1
        write_stats()
        return kind


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reset(self):
        # SO_LINGER 0: close sends RST, as a dropped connection does.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def error(self, status, code, message):
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>fault</RequestId></Error>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def denied(self, body):
        if not DENY_DELETE:
            return False
        if self.command == "DELETE" and DENY_DELETE in self.path:
            return True
        return self.command == "POST" and "delete" in self.path.split("?", 1)[-1] and DENY_DELETE.encode() in body

    def handle_any(self):
        body = self.read_body()
        if OUTAGE_FILE and os.path.exists(OUTAGE_FILE):
            return self.error(503, "ServiceUnavailable", "Service is unavailable.")
        refusal = key_refusal(self.headers)
        if refusal:
            return self.error(*refusal)
        if self.denied(body):
            with lock:
                stats["denied"] += 1
            return self.error(403, "AccessDenied", "Access Denied")
        count_call(self, body)
        kind = choose()
        if kind == "500":
            return self.error(500, "InternalError", "We encountered an internal error. Please try again.")
        if kind == "503":
            return self.error(503, "SlowDown", "Please reduce your request rate.")
        if kind == "reset":
            return self.reset()
        if kind == "stall":
            threading.Event().wait(stall_seconds)
        resp, data = forward(self, target_port, body)
        if kind == "lost":
            return self.reset()
        if not send_back(self, resp, data):
            return
        if kind == "truncate" and len(data) > 1:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            return self.reset()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that hung up on a stall or fault is expected


if __name__ == "__main__":
    target_port = int(sys.argv[1])
    stats_file = sys.argv[2]
    rate = float(sys.argv[3])
    rng = random.Random(int(sys.argv[4]))
    stall_seconds = float(sys.argv[5])
    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
