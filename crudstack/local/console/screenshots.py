"""`python -m crudstack.local.console.screenshots [--port 4606] [--out docs/console]`: the README's
pictures of the local console and the browser client.

Provisions a demo stack (the repository's config.yaml, stack "demo", alarms every 10 s, alerts
e-mailed) into a fresh local AWS on --port with a temporary state dir, uses it as a person would
(items created and edited, one edit with a stale ETag, a function error from the Test tab, which sets
off its Errors alarm and mails the alert), takes one PNG per console page in headless Chromium, then
tears the stack down and stops that local AWS. Needs /usr/bin/chromium and /usr/bin/chromedriver.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from crudstack.config import ROOT
from crudstack.local.console.chromium import Browser, missing

STACK = "demo"
# API Gateway always sends headers as an object: a list makes the handler raise (a function error).
BROKEN_EVENT = {"httpMethod": "GET", "path": "/items", "headers": ["Accept: application/json"], "body": None}
PAGES = (("overview", "stack"), ("items", "dynamodb"), ("lambda", "lambda"), ("cloudwatch", "cloudwatch"),
         ("outbox", "sns-outbox"))


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, dict, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={**({"Content-Type": "application/json"} if data else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


def run(script: str, config: Path, *args: str, cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    subprocess.run([sys.executable, str(ROOT / script), "--config", str(config), *args], cwd=cwd, env=env, check=True,
                   stdin=subprocess.DEVNULL, timeout=300)


def use_the_stack(endpoint: str, invoke_url: str) -> None:
    """What a person does in a first session: create, list, edit; one stale edit; one broken test event."""
    ids = []
    for name, description in (("Widget", "A test item"), ("Gadget", "Blue, 12 cm"), ("Gizmo", ""),
                              ("Sprocket", "Spare part"), ("Doohickey", "Made in the browser client")):
        status, headers, body = http("POST", f"{invoke_url}/items", {"name": name, "description": description})
        assert status == 201, body
        ids.append(body["item"]["id"])
    for _ in range(3):
        http("GET", f"{invoke_url}/items")
    http("PUT", f"{invoke_url}/items/{ids[0]}", {"description": "Renamed twice"}, {"If-Match": '"1"'})
    http("PUT", f"{invoke_url}/items/{ids[0]}", {"description": "stale"}, {"If-Match": '"1"'})  # 412
    status, _, body = http("POST", f"{endpoint}/_console/api/invoke?region=us-east-1&function={STACK}-GetItemFunction",
                           BROKEN_EVENT, {"Origin": endpoint})
    assert status == 200 and body["functionError"], body


def wait_for(predicate, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise SystemExit(f"screenshots: gave up waiting for {what}")


def shoot(driver: Any, path: Path, width: int = 1200) -> None:
    height = min(1100, driver.execute_script("return document.documentElement.scrollHeight") + 20)
    driver.set_window_size(width, height)
    time.sleep(0.3)
    driver.save_screenshot(str(path))
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


def text(driver: Any, selector: str) -> str:
    return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.textContent : ''", selector)


def take(endpoint: str, outputs: Path, invoke_url: str, out: Path) -> None:
    alarm = f"{STACK}-GetItemFunction-Errors"
    with Browser(width=1200, height=900) as browser:
        driver = browser.driver
        for view, name in PAGES:
            driver.set_window_size(1200, 900)
            driver.get(f"{endpoint}/_console#{view}")
            wait_for(lambda: text(driver, "#invoke-url") == invoke_url, 30, "the console's overview")
            if view == "items":
                wait_for(lambda: text(driver, "#items tbody"), 15, "the items")
            elif view == "lambda":
                driver.execute_script("document.querySelector('#function-select').value = arguments[0];"
                                      "document.querySelector('#function-select').dispatchEvent(new Event('change'));"
                                      "document.querySelector('#test-event').value = arguments[1];"
                                      "document.querySelector('#test-run').click();",
                                      f"{STACK}-GetItemFunction", json.dumps(BROKEN_EVENT))
                wait_for(lambda: "failed" in text(driver, "#test-result"), 30, "the test invoke")
                wait_for(lambda: "REPORT" in text(driver, "#log-lines"), 15, "the log lines")
            elif view == "cloudwatch":
                wait_for(lambda: "ALARM" in text(driver, f'#alarms tr[data-alarm="{alarm}"] td.state'), 90, alarm)
            elif view == "outbox":
                wait_for(lambda: alarm in text(driver, "#outbox"), 30, "the alert e-mail")
                driver.execute_script("document.querySelector('#outbox details').open = true")
            shoot(driver, out / f"{name}.png")
        driver.set_window_size(1200, 900)
        driver.get((outputs / "items.html").as_uri())
        wait_for(lambda: "GET /items: 200" in text(driver, "#status"), 30, "the browser client's list")
        first = driver.execute_script("return document.querySelector('#items tbody tr').dataset.id")
        driver.execute_script("document.querySelector('#items tbody tr button.edit').click()")
        wait_for(lambda: text(driver, "#edit-etag"), 15, "the edit form")
        http("PUT", f"{invoke_url}/items/{first}", {"description": "changed in another tab"})
        driver.execute_script("document.querySelector('#save').click()")
        wait_for(lambda: "412" in text(driver, "#status"), 15, "the 412 message")
        shoot(driver, out / "browser-client.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crudstack.local.console.screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=4606, help="a free port for the demo's local AWS (default 4606)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console", help="where the PNGs go")
    args = parser.parse_args(argv)
    why = missing()
    if why:
        print(f"screenshots: no browser: {why}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="crudstack-screenshots-") as folder:
        folder_path = Path(folder)
        settings = yaml.safe_load((ROOT / "config.yaml").read_text())
        settings.update(stack=STACK, target="local", region="us-east-1")
        settings["local"].update(port=args.port, state_dir=str(folder_path / "state"))
        settings["monitoring"]["alert_email"] = "ops@example.com"
        settings["monitoring"]["alarms"]["period_s"] = 10
        config = folder_path / "config.yaml"
        config.write_text(yaml.safe_dump(settings, sort_keys=False))
        outputs = folder_path / "outputs"
        run("provision.py", config, "--quiet", "--outputs", str(outputs), cwd=folder_path)
        try:
            endpoint = f"http://127.0.0.1:{args.port}"
            invoke_url = json.loads((outputs / "stack.json").read_text())["invoke_url"]
            use_the_stack(endpoint, invoke_url)
            take(endpoint, outputs, invoke_url, args.out)
        finally:
            run("teardown.py", config, "--yes", "--delete-data", "--quiet", cwd=folder_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
