#!/usr/bin/env python3
"""How long /healthz takes while large /predict bodies are being served.

Starts `descent serve` (the release build by default) on a free port with a fresh data folder, trains a
small digits model, then runs PREDICTORS threads that each POST a ~15 MB /predict body (28 000 rows of 64
features) over and over, while one client asks GET /healthz every 50 ms. Prints the /healthz latency
(p50, p99, max) with and without the predictions, and how many predictions were served. Exits 1 if p99
under load is above --budget-ms.

    python3 scripts/healthz_under_predict.py [--binary .build/release/descent] [--predictors 4] [--duration 30]

Standard library only; the server is stopped on exit.
"""

import argparse
import json
import os
import random
import sys
import threading
import time

from load import Client, percentile, start_server

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def healthz_latencies(client, seconds):
    """GET /healthz every 50 ms for `seconds`; the latencies in ms."""
    latencies = []
    stop_at = time.time() + seconds
    while time.time() < stop_at:
        started = time.perf_counter()
        status, _ = client.request("GET", "/healthz")
        latencies.append((time.perf_counter() - started) * 1000)
        assert status == 200, status
        time.sleep(0.05)
    return latencies


def summary(latencies):
    return f"p50 {percentile(latencies, 0.5):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms ({len(latencies)} requests)"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/release/descent"))
    parser.add_argument("--predictors", type=int, default=4)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--rows", type=int, default=28_000, help="rows per /predict body (28 000 × 64 features ≈ 15 MB)")
    parser.add_argument("--budget-ms", type=float, default=100)
    parser.add_argument("--digits", default=os.path.join(ROOT, "..", "shared", "datasets", "digits.csv"))
    args = parser.parse_args()

    port, _, stop_server = start_server(args.binary, "descent-healthz-")
    try:
        admin = Client(port)
        with open(args.digits, "rb") as f:
            status, body = admin.request("POST", "/v1/datasets?name=digits", f.read(), "text/csv")
        assert status == 201, body
        spec = {"dataset": {"name": "digits"}, "training": {"epochs": 2},
                "model": {"layers": [{"type": "dense", "units": 64, "activation": "relu"}, {"type": "dense", "units": 10}]}}
        status, body = admin.request("POST", "/v1/jobs", json.dumps(spec).encode())
        assert status == 201, body
        job = json.loads(body)["id"]
        while json.loads(admin.request("GET", f"/v1/jobs/{job}")[1])["status"] not in ("succeeded", "failed"):
            time.sleep(0.2)

        generator = random.Random(1)
        rows = [[round(generator.uniform(0, 16), 4) for _ in range(64)] for _ in range(args.rows)]
        payload = json.dumps({"inputs": rows}).encode()
        print(f"/predict body: {len(payload) / 1e6:.1f} MB, {args.rows} rows")

        idle = healthz_latencies(Client(port), 5)
        served, failures, stop = [0], [], threading.Event()

        def predict_loop():
            client = Client(port)
            while not stop.is_set():
                status, body = client.request("POST", f"/v1/jobs/{job}/predict", payload)
                if status == 200:
                    served[0] += 1
                else:
                    failures.append((status, body[:200]))

        threads = [threading.Thread(target=predict_loop) for _ in range(args.predictors)]
        for thread in threads:
            thread.start()
        time.sleep(1)  # every predictor has a body in flight
        loaded = healthz_latencies(Client(port), args.duration)
        stop.set()
        for thread in threads:
            thread.join()
        print(f"/healthz idle:                        {summary(idle)}")
        print(f"/healthz under {args.predictors} × 15 MB /predict: {summary(loaded)}")
        print(f"predictions served: {served[0]} in {args.duration:.0f} s; failures: {len(failures)} {failures[:2]}")
        if failures or percentile(loaded, 0.99) > args.budget_ms:
            sys.exit(1)
    finally:
        stop_server()

if __name__ == "__main__":
    main()
