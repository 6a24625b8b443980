"""The local console and the browser client, in a real headless Chromium (issue 15's acceptance):
the console shows the stack and its invoke URL; an item created in the browser client (opened from
outputs/, as a user double-clicks it) shows in the console's table; a stale ETag gets the 412 message,
in the client and in the console; a function error from the console's Test tab takes the function's
Errors alarm to ALARM, and its alert e-mail shows in the outbox.

With api.auth api_key, the console's writes send the stack's key and the client from outputs/ has it
filled in; with iam, the console turns its writes off and says why.

One provisioned stack (and one with api_key) and one browser for the module. Skipped only where /usr/bin/chromium is
absent (.ci/run installs it)."""

from __future__ import annotations

import json

import pytest
import requests
import yaml

from crudstack.config import ROOT
from crudstack.local.console.chromium import CHROMIUM
from tests.e2e.conftest import make_stack, provisioned

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} is not installed: apt-get install -y chromium chromium-driver")

# An event the handlers cannot take: API Gateway always sends headers as an object; a list raises in
# the handler's wrapper before it can answer, which Lambda counts as a function error (Errors metric).
BROKEN_EVENT = {"httpMethod": "GET", "path": "/items", "headers": ["Accept: application/json"], "body": None}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    monitoring = yaml.safe_load((ROOT / "config.yaml").read_text())["monitoring"]
    monitoring["alert_email"] = "ops@example.com"
    monitoring["alarms"]["period_s"] = 10  # alarms evaluated every 10 s: allowed with target local
    with provisioned(make_stack(tmp_path_factory.mktemp("console"), {"monitoring": monitoring})) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    from crudstack.local.console.chromium import Browser

    with Browser(width=1280, height=1000) as opened:
        yield opened.driver


def wait(driver, predicate, timeout: float = 20, message: str = ""):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: predicate(d), message)


def css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


# The console re-renders its tables every few seconds: each read and click is one script, so an
# element is never used after a refresh replaced it.
def text_of(driver, selector: str) -> str:
    """The element's textContent (hidden views have text too), or "" when there is none."""
    return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : ''",
                                 selector)


def click(driver, selector: str) -> None:
    assert driver.execute_script("const e = document.querySelector(arguments[0]); if (e) e.click(); return !!e", selector), \
        f"nothing to click at {selector}"


def open_console(driver, stack, view: str) -> None:
    driver.get(f"{stack.endpoint}/_console#{view}")
    wait(driver, lambda d: text_of(d, "#invoke-url") == stack.invoke_url, message="the console never showed the invoke URL")


def open_client(driver, stack) -> None:
    driver.get((stack.folder / "outputs" / "items.html").as_uri())
    wait(driver, lambda d: "GET /items: 200" in text_of(d, "#status"), message="the client did not list the items")


def create_in_client(driver, name: str) -> str:
    css(driver, "#name")[0].send_keys(name)
    click(driver, "#create")
    wait(driver, lambda d: "201 Created" in text_of(d, "#status"), message=text_of(driver, "#status"))
    return text_of(driver, "#status").split("Created ")[1].split(",")[0]


def test_the_console_shows_every_step_with_its_state_and_the_invoke_url(stack, browser):
    open_console(browser, stack, "overview")

    def state(kind: str, name: str) -> str:
        return text_of(browser, f'#steps tr[data-kind="{kind}"][data-name="{name}"] td.state')

    wait(browser, lambda d: state("table", stack.name("ItemsTable")) == "ACTIVE")
    for function in ("CreateItemFunction", "GetItemsFunction", "GetItemFunction", "UpdateItemFunction", "DeleteItemFunction"):
        assert state("function", stack.name(function)) == "Active"
    assert state("role", stack.name("LambdaDynamoDBRole")) == "exists"
    assert state("stage", "prod") == "deployed"
    assert state("SNS topic", stack.name("ItemsApiAlerts")) == "exists"
    assert state("alarm", stack.name("DeleteItemFunction-Errors")) in ("OK", "INSUFFICIENT_DATA")
    assert stack.invoke_url.startswith(stack.endpoint)


def test_an_item_created_in_the_browser_client_shows_in_the_consoles_table(stack, browser):
    open_client(browser, stack)
    item_id = create_in_client(browser, "Made in Chromium")
    assert css(browser, f'#items tr[data-id="{item_id}"]')

    open_console(browser, stack, "items")
    wait(browser, lambda d: text_of(d, f'#items tr[data-id="{item_id}"] td.name') == "Made in Chromium",
         message="the console's table never showed the item")
    assert text_of(browser, f'#items tr[data-id="{item_id}"] td.version') == "1"


def test_the_browser_client_shows_the_412_when_its_etag_is_stale(stack, browser):
    open_client(browser, stack)
    item_id = create_in_client(browser, "Edited twice")
    click(browser, f'#items tr[data-id="{item_id}"] button.edit')
    wait(browser, lambda d: text_of(d, "#edit-etag") == '"1"')
    # Someone else updates the item meanwhile: the ETag the client holds is stale.
    other = requests.put(f"{stack.invoke_url}/items/{item_id}", json={"name": "Changed elsewhere"}, timeout=10)
    assert other.status_code == 200 and other.headers["ETag"] == '"2"'

    css(browser, "#edit-name")[0].send_keys(" (mine)")
    click(browser, "#save")

    wait(browser, lambda d: "412" in text_of(d, "#status"), message=text_of(browser, "#status"))
    assert 'its ETag is now "2"' in text_of(browser, "#status")
    assert requests.get(f"{stack.invoke_url}/items/{item_id}", timeout=10).json()["name"] == "Changed elsewhere"


def test_the_console_edits_with_if_match_and_shows_the_412_when_stale(stack, browser):
    created = requests.post(f"{stack.invoke_url}/items", json={"name": "Console edit"}, timeout=10).json()["item"]
    open_console(browser, stack, "items")
    row = f'#items tr[data-id="{created["id"]}"]'
    assert not css(browser, "#edit-form")[0].is_displayed()  # nothing is being edited yet
    wait(browser, lambda d: css(d, row + " button.edit"))
    click(browser, row + " button.edit")
    wait(browser, lambda d: text_of(d, "#edit-etag") == '"1"')
    css(browser, "#edit-description")[0].send_keys("first save")
    click(browser, "#edit-save")
    wait(browser, lambda d: "200 Updated" in text_of(d, "#items-message"), message=text_of(browser, "#items-message"))
    assert not css(browser, "#edit-form")[0].is_displayed()  # the form closes once saved
    assert requests.get(f"{stack.invoke_url}/items/{created['id']}", timeout=10).headers["ETag"] == '"2"'

    click(browser, row + " button.edit")
    wait(browser, lambda d: text_of(d, "#edit-etag") == '"2"')
    assert requests.put(f"{stack.invoke_url}/items/{created['id']}", json={"name": "Someone else"}, timeout=10).ok
    click(browser, "#edit-save")

    wait(browser, lambda d: "412 Precondition Failed" in text_of(d, "#items-message"),
         message=text_of(browser, "#items-message"))
    assert 'ETag is now "3"' in text_of(browser, "#items-message")


def test_the_console_deletes_an_item_through_the_api(stack, browser):
    created = requests.post(f"{stack.invoke_url}/items", json={"name": "To delete"}, timeout=10).json()["item"]
    open_console(browser, stack, "items")
    row = f'#items tr[data-id="{created["id"]}"]'
    wait(browser, lambda d: css(d, row + " button.delete"))

    click(browser, row + " button.delete")

    wait(browser, lambda d: f"200 Deleted {created['id']}" in text_of(d, "#items-message"),
         message=text_of(browser, "#items-message"))
    wait(browser, lambda d: not css(d, row), message="the deleted item stayed in the table")
    assert requests.get(f"{stack.invoke_url}/items/{created['id']}", timeout=10).status_code == 404


def test_a_function_error_from_the_test_tab_sets_off_its_errors_alarm_and_mails_the_alert(stack, browser):
    function = stack.name("GetItemFunction")
    alarm = stack.name("GetItemFunction-Errors")
    open_console(browser, stack, "lambda")
    from selenium.webdriver.support.ui import Select

    Select(css(browser, "#function-select")[0]).select_by_value(function)
    event = css(browser, "#test-event")[0]
    event.clear()
    event.send_keys(json.dumps(BROKEN_EVENT))
    click(browser, "#test-run")
    wait(browser, lambda d: "failed (Unhandled)" in text_of(d, "#test-result"), message=text_of(browser, "#test-result"))
    assert "AttributeError" in text_of(browser, "#test-result")
    wait(browser, lambda d: "[ERROR] AttributeError" in text_of(d, "#log-lines"), message="no error in the function's logs")
    assert "REPORT RequestId" in text_of(browser, "#log-lines")

    browser.get(f"{stack.endpoint}/_console#cloudwatch")
    wait(browser, lambda d: text_of(d, f'#alarms tr[data-alarm="{alarm}"] td.state') == "ALARM", timeout=60,
         message=f"{alarm} never went to ALARM")
    assert "to ALARM" in text_of(browser, f'#alarms tr[data-alarm="{alarm}"] td.history')
    assert css(browser, '.chart[data-title="Errors"] svg path')  # the error is drawn
    assert text_of(browser, f'.chart[data-title="Errors"] li[data-alarm="{alarm}"] span') == "ALARM"

    browser.get(f"{stack.endpoint}/_console#outbox")
    wait(browser, lambda d: f'ALARM: "{alarm}"' in text_of(d, "#outbox"), timeout=30,
         message="the alert e-mail never showed in the outbox")


# -- api.auth: the console's writes and the browser client with api_key, and iam's writes turned off -----------


@pytest.fixture(scope="module")
def keyed_stack(tmp_path_factory):
    api = yaml.safe_load((ROOT / "config.yaml").read_text())["api"]
    api["auth"] = "api_key"
    with provisioned(make_stack(tmp_path_factory.mktemp("console-keyed"), {"api": api})) as running:
        yield running


def test_with_api_key_the_console_creates_through_the_api_sending_the_stacks_key(keyed_stack, browser):
    key = keyed_stack.document["auth"]["api_key"]["value"]
    assert requests.get(f"{keyed_stack.invoke_url}/items", timeout=10).status_code == 403   # the key is needed
    open_console(browser, keyed_stack, "items")
    wait(browser, lambda d: "as x-api-key" in text_of(d, "#items-auth"), message=text_of(browser, "#items-auth"))

    css(browser, "#create-name")[0].send_keys("Made with a key")
    click(browser, "#create-submit")

    wait(browser, lambda d: "201 Created" in text_of(d, "#items-message"), message=text_of(browser, "#items-message"))
    listed = requests.get(f"{keyed_stack.invoke_url}/items", headers={"x-api-key": key}, timeout=10).json()["items"]
    assert [item["name"] for item in listed] == ["Made with a key"]


def test_with_api_key_the_browser_client_from_outputs_lists_with_the_key_filled_in(keyed_stack, browser):
    open_client(browser, keyed_stack)   # waits for its first GET /items to answer 200

    assert css(browser, "#api-key")[0].get_attribute("value") == keyed_stack.document["auth"]["api_key"]["value"]


def test_with_iam_the_console_says_writes_need_signing_and_turns_them_off(keyed_stack, browser):
    config = yaml.safe_load(keyed_stack.config_path.read_text())
    config["api"]["auth"] = "iam"
    keyed_stack.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert keyed_stack.provision().returncode == 0

    open_console(browser, keyed_stack, "items")

    wait(browser, lambda d: "api.auth: iam" in text_of(d, "#items-auth"), message=text_of(browser, "#items-auth"))
    assert "must be signed (SigV4" in text_of(browser, "#items-auth")
    wait(browser, lambda d: css(d, "#items tr button.edit"))   # the item made above, still listed (Scan)
    for control in ("#create-submit", "#create-name", "#items tr button.edit", "#items tr button.delete"):
        assert browser.execute_script("return document.querySelector(arguments[0]).disabled", control), control
