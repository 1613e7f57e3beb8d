#!/usr/bin/env python3
"""Creates and removes containers through the Engine API on a daemon's unix socket, over one
kept-alive connection, so that the timings hold the daemon's and the storage driver's work and
not one docker CLI process per call (RUNTIMES.md, timing hints). stdlib only.

  engine.py SOCK create IMAGE N IDFILE   create N stopped containers of IMAGE (no network,
                                         command `true`), their ids into IDFILE; prints seconds
  engine.py SOCK rm IDFILE               remove those containers (and their layers); prints seconds
"""
import http.client
import json
import socket
import sys
import time

API = "/v1.41"  # Docker 20.10's API version; Docker 28 still serves it


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=300)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(300)
        self.sock.connect(self.path)


def call(conn, method, url, body=None):
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, API + url, body=data, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    if resp.status >= 300:
        raise SystemExit(f"engine.py: {method} {url}: HTTP {resp.status}: {payload.decode(errors='replace').strip()}")
    return json.loads(payload) if payload else None


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    sock, cmd = argv[1], argv[2]
    conn = UnixConnection(sock)
    if cmd == "create" and len(argv) == 6:
        image, n, idfile = argv[3], int(argv[4]), argv[5]
        spec = {"Image": image, "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}}
        ids = []
        t0 = time.monotonic()
        for _ in range(n):
            ids.append(call(conn, "POST", "/containers/create", spec)["Id"])
        secs = time.monotonic() - t0
        with open(idfile, "w") as f:
            f.write("\n".join(ids) + "\n")
    elif cmd == "rm" and len(argv) == 4:
        with open(argv[3]) as f:
            ids = [line.strip() for line in f if line.strip()]
        t0 = time.monotonic()
        for cid in ids:
            call(conn, "DELETE", f"/containers/{cid}?force=1&v=1")
        secs = time.monotonic() - t0
    else:
        raise SystemExit(__doc__)
    print(f"{secs:.6f}")


if __name__ == "__main__":
    main(sys.argv)
