#!/usr/bin/env python3
"""Load test of a Descent server on loopback: many concurrent clients while a job trains.

Starts `descent serve` (the release build by default) on a free port with a fresh data folder,
uploads digits, starts one long training job, then runs CLIENTS threads for DURATION seconds, each
looping over: poll GET /v1/jobs/{id} of the training job, list jobs, and now and then submit a small
job. Afterwards it waits for every accepted job to reach a terminal state and checks that none was
lost or duplicated. It prints request counts, errors, p50/p99 latency per kind of request, and the
server's resident memory sampled once a second. Exits 1 if any request failed or a job went missing.

    python3 scripts/load.py [--binary .build/release/descent] [--clients 100] [--duration 60]

Standard library only; stops by itself (the server is killed on exit, even on Ctrl-C).
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One keep-alive connection; reconnects after an error."""

    def __init__(self, port, token=None):
        self.port = port
        self.token = token
        self.connection = None

    def request(self, method, path, body=None, content_type="application/json"):
        headers = {}
        if body is not None:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                return response.status, data
            except (ConnectionError, http.client.HTTPException, OSError):
                # A keep-alive connection the server closed between requests: retry once on a fresh one.
                self.connection.close()
                self.connection = None
                if attempt == 2:
                    raise
        raise RuntimeError("unreachable")


def percentile(values, fraction):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def start_server(binary, prefix):
    """Starts `binary serve` on a free port and a fresh data folder and waits for /healthz; returns the port,
    the process and a function that stops it (SIGTERM, then SIGKILL after 15 s) and removes the folder."""
    if not os.path.exists(binary):
        sys.exit(f"no server binary at {binary}; build it with `swift build -c release --product descent`")
    data_dir = tempfile.mkdtemp(prefix=prefix)
    port = free_port()
    log = open(os.path.join(data_dir, "server.log"), "w")
    server = subprocess.Popen([binary, "serve", "--port", str(port), "--data-dir", os.path.join(data_dir, "data"),
                               "--log-level", "warning"], stdout=log, stderr=log)

    def stop_server(*_):
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(data_dir, ignore_errors=True)

    client = Client(port)
    deadline = time.time() + 30
    while True:
        try:
            if client.request("GET", "/healthz")[0] == 200:
                return port, server, stop_server
        except OSError:
            pass
        if time.time() > deadline:
            stop_server()
            sys.exit("the server did not start")
        time.sleep(0.1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/release/descent"))
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--submit-every", type=int, default=20, help="each client submits a small job every N iterations")
    parser.add_argument("--digits", default=os.path.join(ROOT, "..", "shared", "datasets", "digits.csv"))
    args = parser.parse_args()

    port, server, stop_server = start_server(args.binary, "descent-load-")
    signal.signal(signal.SIGINT, lambda *_: (stop_server(), sys.exit(130)))
    try:
        admin = Client(port)
        with open(args.digits, "rb") as f:
            status, body = admin.request("POST", "/v1/datasets?name=digits", f.read(), "text/csv")
        assert status == 201, body
        # The job that trains throughout: a wide MLP for many epochs.
        long_spec = {"name": "long", "dataset": {"name": "digits"},
                     "model": {"layers": [{"type": "dense", "units": 512, "activation": "relu"},
                                          {"type": "dense", "units": 512, "activation": "relu"}, {"type": "dense", "units": 10}]},
                     "training": {"epochs": 2000, "batch_size": 16}, "priority": 10}
        status, body = admin.request("POST", "/v1/jobs", json.dumps(long_spec).encode())
        assert status == 201, body
        long_id = json.loads(body)["id"]
        small_spec = json.dumps({"dataset": {"builtin": "moons", "samples": 200},
                                 "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 2}]},
                                 "training": {"epochs": 2}})

        latencies = {"poll": [], "list": [], "submit": []}
        errors = []
        accepted = []
        lock = threading.Lock()
        stop_at = time.time() + args.duration

        def client_loop(index):
            client = Client(port)
            rng = random.Random(index)
            iteration = 0
            while time.time() < stop_at:
                iteration += 1
                if iteration % args.submit_every == rng.randrange(args.submit_every):
                    kind, method, path, body = "submit", "POST", "/v1/jobs", small_spec.encode()
                elif iteration % 3 == 0:
                    kind, method, path, body = "list", "GET", "/v1/jobs?limit=20", None
                else:
                    kind, method, path, body = "poll", "GET", f"/v1/jobs/{long_id}", None
                start = time.perf_counter()
                try:
                    status, data = client.request(method, path, body)
                except Exception as error:  # noqa: BLE001 - every failure counts
                    with lock:
                        errors.append(f"{kind}: {error!r}")
                    continue
                elapsed = time.perf_counter() - start
                ok = status == (201 if kind == "submit" else 200)
                with lock:
                    latencies[kind].append(elapsed)
                    if not ok:
                        errors.append(f"{kind}: HTTP {status} {data[:200]!r}")
                    elif kind == "submit":
                        accepted.append(json.loads(data)["id"])

        rss = []
        threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(args.clients)]
        started = time.time()
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            value = rss_kib(server.pid)
            if value:
                rss.append(value)
            time.sleep(1)
        elapsed = time.time() - started

        # Every accepted job must end, exactly once: wait for the queue to drain.
        status, body = admin.request("POST", f"/v1/jobs/{long_id}/cancel")
        pending = set(accepted)
        drain_deadline = time.time() + 300
        final = {}
        while pending and time.time() < drain_deadline:
            for job_id in list(pending):
                status, body = admin.request("GET", f"/v1/jobs/{job_id}")
                state = json.loads(body).get("status") if status == 200 else None
                if state in ("succeeded", "failed", "cancelled"):
                    final[job_id] = state
                    pending.discard(job_id)
            time.sleep(0.5)
        listed = []
        cursor = None
        while True:
            status, body = admin.request("GET", "/v1/jobs?limit=200" + (f"&cursor={cursor}" if cursor else ""))
            page = json.loads(body)
            listed += [job["id"] for job in page["jobs"]]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        duplicated = len(listed) - len(set(listed))
        missing = [job_id for job_id in accepted if job_id not in set(listed)]

        total = sum(len(values) for values in latencies.values())
        print(f"clients {args.clients}, {elapsed:.0f} s: {total} requests ({total / elapsed:.0f}/s), {len(errors)} errors")
        for kind, values in latencies.items():
            print(f"  {kind:6} {len(values):7} requests  p50 {percentile(values, 0.5) * 1e3:7.1f} ms  "
                  f"p99 {percentile(values, 0.99) * 1e3:7.1f} ms  max {max(values, default=0) * 1e3:7.1f} ms")
        states = {state: list(final.values()).count(state) for state in set(final.values())}
        print(f"  jobs accepted {len(accepted)}, ended {len(final)} {states}, still pending {len(pending)}, "
              f"missing from the list {len(missing)}, listed twice {duplicated}")
        if rss:
            print(f"  server RSS: start {rss[0] / 1024:.0f} MiB, max {max(rss) / 1024:.0f} MiB, end {rss[-1] / 1024:.0f} MiB")
        for error in errors[:10]:
            print("  error:", error)
        failed = errors or pending or missing or duplicated
        return 1 if failed else 0
    finally:
        stop_server()


if __name__ == "__main__":
    sys.exit(main())
