#!/usr/bin/env python3
"""Where the time of GET /items/{id} goes: the invoke URL taken apart, next to boto3's get_item.

Provisions a private stack like bench/api.py (free port, temporary state dir), then measures, in
rounds that interleave every measure (this machine is shared and noisy; medians across rounds):

  - health    requests' round trip to the local AWS's health check: the client and the HTTP server,
              nothing else (the floor under any request through the invoke URL);
  - GET       GET /items/{id} through the invoke URL (keep-alive requests.Session, as bench/api.py);
  - direct    boto3 get_item straight to the same local AWS (bench/api.py's baseline);
  - no-op GET GET /items/{id} once the function's code is a handler that answers the same shape of
              item without calling DynamoDB: the gateway, both pipe hops and the worker, without the
              handler's DynamoDB call. Measured after the others (the code swap retires the warm
              worker), with health and direct measured again beside it.

GET - no-op GET is then the handler's DynamoDB call as the worker makes it, and no-op GET - health
what the gateway, the pipes and the worker add; the last lines say what GET / direct would be if
that addition cost nothing.

    python bench/get_path.py [--rounds 3] [--requests 300] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api import Bench, percentile  # noqa: E402 - bench/ is a folder of scripts, not a package

# Answers 200 with an item of the same shape and headers as lambdas/get_item.py, without DynamoDB.
NO_OP_HANDLER = '''
import json
BODY = json.dumps({"id": "3f2b8c1e-5d4a-4f6b-9c7d-1a2b3c4d5e6f", "name": "bench item", "description": "x" * 40,
                   "createdAt": "2025-01-01T00:00:00.000Z", "updatedAt": "2025-01-01T00:00:00.000Z", "version": 1})
HEADERS = {"Content-Type": "application/json", "ETag": '"1"', "Access-Control-Allow-Origin": "*",
           "Access-Control-Expose-Headers": "ETag, Location"}

def lambda_handler(event, context):
    return {"statusCode": 200, "headers": dict(HEADERS), "body": BODY}
'''


def no_op_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("get_item.py", NO_OP_HANDLER)
    return buffer.getvalue()


def p50_rounds(bench: Bench, operations: dict[str, Callable[[int], None]], rounds: int, n: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {name: [] for name in operations}
    for _ in range(rounds):
        for name, operation in operations.items():
            results[name].append(percentile(bench.latencies(operation, n), 50) * 1000)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300, help="timed requests per measure per round")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="crudstack-bench-") as folder:
        bench = Bench(Path(folder), 20)
        try:
            web, ids = requests.Session(), bench.ids
            health_url = bench.dynamodb.meta.endpoint_url + "/_localaws/health"

            def health(i: int) -> None:
                assert web.get(health_url, timeout=30).status_code == 200

            def get(i: int) -> None:
                answer = web.get(f"{bench.url}/{ids[i % len(ids)]}", timeout=30)
                assert answer.status_code == 200, answer.text

            direct = bench.direct_get_one()
            first = p50_rounds(bench, {"health": health, "GET": get, "direct": direct}, args.rounds, args.requests)
            bench.lambda_.update_function_code(FunctionName="bench-GetItemFunction", ZipFile=no_op_zip())
            second = p50_rounds(bench, {"health": health, "no-op GET": get, "direct": direct}, args.rounds, args.requests)
        finally:
            bench.close()

    median = statistics.median
    p50 = {"health": median(first["health"]), "GET": median(first["GET"]), "direct": median(first["direct"]),
           "health (no-op phase)": median(second["health"]), "no-op GET": median(second["no-op GET"]),
           "direct (no-op phase)": median(second["direct"])}
    handler_call = p50["GET"] - p50["no-op GET"]
    layers = p50["no-op GET"] - p50["health (no-op phase)"]
    result = {
        "p50_ms": {name: round(value, 3) for name, value in p50.items()},
        "rounds_ms": {**{name: [round(x, 3) for x in v] for name, v in first.items()},
                      **{f"{name} (no-op phase)" if name != "no-op GET" else name: [round(x, 3) for x in v]
                         for name, v in second.items()}},
        "handler_dynamodb_call_ms": round(handler_call, 3),
        "gateway_pipes_worker_ms": round(layers, 3),
        "ratio_get_to_direct": round(p50["GET"] / p50["direct"], 2),
        "ratio_if_gateway_pipes_worker_were_free": round((p50["GET"] - layers) / p50["direct"], 2),
        "settings": {"rounds": args.rounds, "requests": args.requests, "python": sys.version.split()[0]},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"p50 ms, medians of {args.rounds} interleaved rounds of {args.requests} requests")
    for name, value in result["p50_ms"].items():
        print(f"  {name:22s} {value:7.3f}   rounds {result['rounds_ms'][name]}")
    print(f"the handler's DynamoDB call (GET - no-op GET):         {handler_call:.3f} ms")
    print(f"gateway, pipes and worker (no-op GET - health):        {layers:.3f} ms")
    print(f"GET / direct:                                          {result['ratio_get_to_direct']:.2f}")
    print(f"GET / direct if gateway, pipes and worker cost nothing: {result['ratio_if_gateway_pipes_worker_were_free']:.2f}")


if __name__ == "__main__":
    main()
