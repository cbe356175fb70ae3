"""A loopback stand-in for Unity Catalog (the documented REST endpoints inlet calls), and an
S3 gate in front of moto_server that accepts only the credentials the catalog vended, and
only until they expire. Records every catalog request.

Usage: unity_mock.py MOTO_PORT SETUP_JSON LOG_FILE
SETUP_JSON: {"token": T, "ttl_seconds": N, "tables": {full_name: table}, "deny": {full_name: message},
             "client_id": ID, "client_secret": S}
Prints "UC_PORT S3_PORT" on its first line of stdout. LOG_FILE gets one JSON line per
catalog request ({"method", "path", "body"}) and per S3 request the gate refused
({"s3": "refused", "reason"}).
"""

import http.server
import json
import os
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultproxy import Server, forward, send_back  # noqa: E402

moto_port = int(sys.argv[1])
setup = json.loads(sys.argv[2])
log_file = sys.argv[3]
lock = threading.Lock()
tables = dict(setup.get("tables", {}))
issued = {}  # access key id -> expiry (ms)
counter = [0]


def log(entry):
    with lock, open(log_file, "a") as f:
        f.write(json.dumps(entry) + "\n")


def vend():
    with lock:
        counter[0] += 1
        n = counter[0]
        expires = int(time.time() * 1000) + int(setup.get("ttl_seconds", 3600) * 1000)
        key = f"UCVENDED{n:06d}"
        issued[key] = expires
    return {
        "aws_temp_credentials": {
            "access_key_id": key,
            "secret_access_key": f"vended-secret-{n}",
            "session_token": f"vended-session-{n}",
        },
        "expiration_time": expires,
    }


class Catalog(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path
        if path == "/oidc/v1/token":
            import base64

            expected = base64.b64encode(f"{setup.get('client_id')}:{setup.get('client_secret')}".encode()).decode()
            log({"method": self.command, "path": path, "body": None})
            if self.headers.get("Authorization") != f"Basic {expected}":
                return self.answer(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
            return self.answer(200, {"access_token": setup["token"], "token_type": "Bearer", "expires_in": 3600})
        body = json.loads(raw) if raw else None
        log({"method": self.command, "path": path, "body": body})
        if self.headers.get("Authorization") != f"Bearer {setup['token']}":
            return self.answer(401, {"error_code": "UNAUTHENTICATED", "message": "Invalid access token."})
        prefix = "/api/2.1/unity-catalog/"
        if not path.startswith(prefix):
            return self.answer(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": path})
        rest = path[len(prefix):]
        if rest.startswith("tables/"):
            name = rest[len("tables/"):]
            if name in setup.get("deny", {}):
                return self.answer(403, {"error_code": "PERMISSION_DENIED", "message": setup["deny"][name]})
            if name not in tables:
                return self.answer(404, {"error_code": "TABLE_DOES_NOT_EXIST", "message": f"Table '{name}' does not exist."})
            if self.command == "PATCH":
                tables[name]["columns"] = body.get("columns", [])
            return self.answer(200, tables[name])
        if rest == "tables" and self.command == "POST":
            name = f"{body['catalog_name']}.{body['schema_name']}.{body['name']}"
            table = dict(body, full_name=name, table_id=str(uuid.uuid4()))
            tables[name] = table
            return self.answer(200, table)
        if rest in ("temporary-table-credentials", "temporary-path-credentials"):
            return self.answer(200, vend())
        return self.answer(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": path})

    do_GET = do_POST = do_PATCH = do_DELETE = handle_any


class S3Gate(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def refuse(self, status, code, message):
        log({"s3": "refused", "reason": code})
        data = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                f"<Message>{message}</Message></Error>").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        auth = self.headers.get("Authorization", "")
        key = auth.split("Credential=", 1)[1].split("/", 1)[0] if "Credential=" in auth else ""
        with lock:
            expiry = issued.get(key)
        if expiry is None:
            return self.refuse(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
        if time.time() * 1000 > expiry:
            return self.refuse(400, "ExpiredToken", "The provided token has expired.")
        resp, data = forward(self, moto_port, body)
        if send_back(self, resp, data):
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


catalog = Server(("127.0.0.1", 0), Catalog)
gate = Server(("127.0.0.1", 0), S3Gate)
threading.Thread(target=gate.serve_forever, daemon=True).start()
print(catalog.server_address[1], gate.server_address[1], flush=True)
catalog.serve_forever()
