"""Issue 13's acceptance, through the local invoke URL of a provisioned stack: many requests at once are
all served (they wait for a warm worker rather than fail), and reserved concurrency throttles as AWS does.

The stack keeps the default pool of 10 workers per function (local.lambda_concurrency), so 50 PUTs and
100 GETs are five and ten times the pool. Its code is lambdas/ plus a test-only handler behind GET /block
with `reserved_concurrency: 2`: each request writes a file and then waits for a release file, so the two
requests that hold the reservation are known to be running before the third is sent.
"""

from __future__ import annotations

import collections
import concurrent.futures
import shutil
import threading
import time

import pytest
import requests
import yaml

from crudstack.config import ROOT
from tests.e2e.conftest import alive, make_stack, provisioned

BLOCKING_HANDLER = '''\
"""Test-only: hold the request until the file named by ?release exists (never shipped in lambdas/)."""
import json
import os
import time


def lambda_handler(event, context):
    query = event.get("queryStringParameters") or {}
    open(query["mine"], "w").close()
    deadline = time.time() + 25
    while not os.path.exists(query["release"]) and time.time() < deadline:
        time.sleep(0.01)
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"pid": os.getpid(), "released": os.path.exists(query["release"])})}
'''


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("concurrency")
    code = folder / "lambdas"
    shutil.copytree(ROOT / "lambdas", code, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (code / "blocking.py").write_text(BLOCKING_HANDLER, encoding="utf-8")
    settings = yaml.safe_load((ROOT / "config.yaml").read_text())["lambda"]
    settings["code_dir"] = str(code)
    settings["functions"]["BlockingFunction"] = {"handler": "blocking.lambda_handler", "route": "GET /block",
                                                 "reserved_concurrency": 2}
    with provisioned(make_stack(folder / "stack", {"lambda": settings})) as built:
        assert built.client("lambda").get_function_concurrency(
            FunctionName=built.name("BlockingFunction"))["ReservedConcurrentExecutions"] == 2
        yield built


def at_once(count: int, call) -> list:
    """call(i) from `count` threads released together; their results in order."""
    start = threading.Barrier(count)

    def one(i: int):
        start.wait()
        return call(i)

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def create(url: str) -> dict:
    answer = requests.post(url, json={"name": "Contested"}, timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.json()["item"]


def test_fifty_concurrent_puts_with_one_if_match_give_exactly_one_200_and_forty_nine_412s(stack):
    items = f"{stack.invoke_url}/items"
    url = f"{items}/{create(items)['id']}"

    statuses = at_once(50, lambda n: requests.put(url, json={"name": f"writer {n}"}, headers={"If-Match": '"1"'},
                                                  timeout=60).status_code)

    assert collections.Counter(statuses) == {200: 1, 412: 49}
    final = requests.get(url, timeout=30)
    assert final.json()["version"] == 2 and final.headers["ETag"] == '"2"'


def test_a_hundred_concurrent_gets_are_all_answered_200(stack):
    items = f"{stack.invoke_url}/items"
    item = create(items)

    answers = at_once(100, lambda n: requests.get(f"{items}/{item['id']}", timeout=60))

    assert collections.Counter(a.status_code for a in answers) == {200: 100}
    assert {a.json()["id"] for a in answers} == {item["id"]}


def test_with_reserved_concurrency_2_the_third_concurrent_request_is_api_gateways_500(stack, tmp_path):
    release = tmp_path / "release"
    marks = [tmp_path / f"running-{n}" for n in range(3)]
    block = f"{stack.invoke_url}/block"

    def hold(n: int) -> requests.Response:
        return requests.get(block, params={"mine": str(marks[n]), "release": str(release)}, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        holding = [pool.submit(hold, n) for n in range(2)]
        deadline = time.monotonic() + 30
        while not all(mark.exists() for mark in marks[:2]):
            assert time.monotonic() < deadline, "the two requests holding the reservation never ran"
            time.sleep(0.02)

        third = hold(2)
        release.touch()
        first, second = (future.result(timeout=60) for future in holding)

    assert third.status_code == 500
    assert third.json() == {"message": "Internal server error"}
    assert not marks[2].exists(), "the throttled request never reached the function"
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["released"] and second.json()["released"]


def test_updating_a_function_through_the_local_aws_stops_its_idle_worker_at_once(stack, tmp_path):
    release = tmp_path / "release"
    release.touch()
    answer = requests.get(f"{stack.invoke_url}/block", params={"mine": str(tmp_path / "m"), "release": str(release)},
                          timeout=60)
    pid = answer.json()["pid"]
    assert alive(pid)

    stack.client("lambda").update_function_configuration(FunctionName=stack.name("BlockingFunction"), MemorySize=256)

    deadline = time.monotonic() + 10  # the idle timeout is 10 minutes: only the write can have stopped it
    while alive(pid):
        assert time.monotonic() < deadline, f"worker {pid} of the updated function is still running"
        time.sleep(0.05)
