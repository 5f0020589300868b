#!/usr/bin/env python3
"""Usage: wait_healthy.py ADDR SECONDS PID

Polls grpc.health.v1.Health/Check for service "" until SERVING, with raw bytes (no stubs,
no reflection): the empty request is b"", and SERVING is field 1 = 1, i.e. b"\\x08\\x01".
Exits 1 on timeout or if process PID dies first.
"""
import sys
import time

import grpc

addr, limit, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
deadline = time.monotonic() + limit
last = "no answer"
with grpc.insecure_channel(addr) as channel:
    check = channel.unary_unary("/grpc.health.v1.Health/Check")
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                dead = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            dead = True
        if dead:
            sys.exit(f"ssod (pid {pid}) exited before becoming healthy")
        try:
            answer = check(b"", timeout=1)
            if answer == b"\x08\x01":
                sys.exit(0)
            last = f"status bytes {answer!r}"
        except grpc.RpcError as e:
            last = f"{e.code().name}: {e.details()}"
        time.sleep(0.2)
sys.exit(f"ssod not SERVING after {limit:.0f}s ({last})")
