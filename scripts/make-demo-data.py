#!/usr/bin/env python3
"""Writes the demo landing zone (demo/landing): telemetry events as a DynamoDB-Streams-fed
Lambda would land them, JSON lines, one file per minute. Deterministic: same bytes each run."""
import gzip
import json
import os
import random

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demo", "landing")
os.makedirs(out, exist_ok=True)
rng = random.Random(42)
devices = [f"dev-{i:03d}" for i in range(20)]
event_id = 0
for minute in range(12):
    day = "2026-11-01"
    name = f"events-{day}T10-{minute:02d}.json"
    lines = []
    for _ in range(25):
        event_id += 1
        lines.append(json.dumps({
            "event_id": event_id,
            "device_id": rng.choice(devices),
            "event_time": f"{day}T10:{minute:02d}:{rng.randrange(60):02d}Z",
            "temperature": round(rng.uniform(-5, 35), 2),
            "battery": rng.randrange(101),
            "online": rng.random() > 0.1,
            "location": {"lat": round(rng.uniform(48, 52), 4), "lon": round(rng.uniform(2, 8), 4)},
            "tags": rng.sample(["indoor", "outdoor", "roof", "basement", "lab"], k=rng.randrange(3)),
        }, separators=(",", ":")))
    data = ("\n".join(lines) + "\n").encode()
    sub = os.path.join(out, f"date={day}")
    os.makedirs(sub, exist_ok=True)
    if minute % 4 == 3:  # some producers compress
        with open(os.path.join(sub, name + ".gz"), "wb") as f:
            # mtime=0: the same bytes on every run
            f.write(gzip.compress(data, mtime=0))
    else:
        with open(os.path.join(sub, name), "wb") as f:
            f.write(data)
