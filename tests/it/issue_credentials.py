"""A `credential_process` for the expiring-credential test: each call issues a new access
key valid for LIFETIME seconds and records "KEY EXPIRY" in KEYS_FILE, which faultproxy.py
reads to refuse unknown and expired keys.

Usage: issue_credentials.py KEYS_FILE LIFETIME
"""

import datetime
import fcntl
import json
import sys
import time

keys_file, lifetime = sys.argv[1], float(sys.argv[2])
with open(keys_file, "a+") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    f.seek(0)
    issued = sum(1 for line in f if line.startswith("AKIDEXP"))
    key = f"AKIDEXP{issued + 1:05d}"
    expiry = time.time() + lifetime
    f.write(f"{key} {expiry}\n")
expiration = datetime.datetime.fromtimestamp(expiry, datetime.timezone.utc)
print(json.dumps({
    "Version": 1,
    "AccessKeyId": key,
    "SecretAccessKey": "secret-" + key,
    "SessionToken": "token-" + key,
    "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
}))
