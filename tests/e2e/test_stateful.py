"""A stateful property test of the items API through the local invoke URL.

Hypothesis runs random sequences of create / get / list (every page) / update / delete, with random
If-Match values (none, *, the current ETag, a stale or future one, a weak one), and checks each answer
against an in-memory model of what the table must hold: status, body, ETag and version.
"""

from __future__ import annotations

import pytest
import requests
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.e2e.conftest import empty_table

NAMES = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40).filter(lambda s: 0 < len(s.strip()) <= 200)
DESCRIPTIONS = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
# "current" stands for the item's ETag at the time of the call.
IF_MATCH = st.one_of(st.none(), st.just("*"), st.just("current"), st.integers(0, 6).map(lambda v: f'"{v}"'),
                     st.just('W/"1"'))


def machine_for(stack, session: requests.Session) -> type[RuleBasedStateMachine]:
    items_url = f"{stack.invoke_url}/items"
    dynamodb, table = stack.client("dynamodb"), stack.name("ItemsTable")

    class ItemsApi(RuleBasedStateMachine):
        ids = Bundle("ids")

        def __init__(self):
            super().__init__()
            empty_table(stack)  # each run starts from an empty table, as the model does
            self.model: dict[str, dict] = {}   # id -> {"name", "description", "version"}

        def if_match_header(self, item_id: str, if_match: str | None) -> dict:
            if if_match is None:
                return {}
            if if_match == "current":
                if_match = f'"{self.model[item_id]["version"]}"' if item_id in self.model else '"1"'
            return {"If-Match": if_match}

        def expected_write_status(self, item_id: str, headers: dict) -> int:
            if item_id not in self.model:
                return 404
            tag = headers.get("If-Match")
            if tag in (None, "*"):
                return 200
            return 200 if tag == f'"{self.model[item_id]["version"]}"' else 412

        def check_item(self, item: dict, item_id: str) -> None:
            wanted = self.model[item_id]
            assert (item["id"], item["name"], item["description"], item["version"]) == (
                item_id, wanted["name"], wanted["description"], wanted["version"])

        @rule(target=ids, name=NAMES, description=st.none() | DESCRIPTIONS)
        def create(self, name, description):
            body = {"name": name, **({"description": description} if description is not None else {})}
            answer = session.post(items_url, json=body, timeout=30)
            assert answer.status_code == 201, answer.text
            item = answer.json()["item"]
            self.model[item["id"]] = {"name": name.strip(), "description": description or "", "version": 1}
            self.check_item(item, item["id"])
            assert answer.headers["ETag"] == '"1"'
            return item["id"]

        @rule(item_id=ids, upper=st.booleans())
        def get(self, item_id, upper):
            asked = item_id.upper() if upper else item_id
            answer = session.get(f"{items_url}/{asked}", timeout=30)
            # An id names its item exactly (DynamoDB keys are case-sensitive): an upper-case copy is another id.
            if item_id not in self.model or asked not in self.model:
                assert answer.status_code == 404, answer.text
                return
            assert answer.status_code == 200, answer.text
            self.check_item(answer.json(), item_id)
            assert answer.headers["ETag"] == f'"{self.model[item_id]["version"]}"'

        @rule(item_id=ids, name=st.none() | NAMES, description=st.none() | DESCRIPTIONS, if_match=IF_MATCH)
        def update(self, item_id, name, description, if_match):
            body = {k: v for k, v in (("name", name), ("description", description)) if v is not None}
            if not body:
                body = {"description": ""}
            headers = self.if_match_header(item_id, if_match)
            expected = self.expected_write_status(item_id, headers)
            answer = session.put(f"{items_url}/{item_id}", json=body, headers=headers, timeout=30)
            assert answer.status_code == expected, (answer.status_code, answer.text, headers)
            if expected == 200:
                wanted = self.model[item_id]
                wanted.update({k: (v.strip() if k == "name" else v) for k, v in body.items()})
                wanted["version"] += 1
                self.check_item(answer.json(), item_id)
            if expected == 412:
                assert answer.headers["ETag"] == f'"{self.model[item_id]["version"]}"'

        @rule(item_id=ids, if_match=IF_MATCH)
        def delete(self, item_id, if_match):
            headers = self.if_match_header(item_id, if_match)
            expected = self.expected_write_status(item_id, headers)
            answer = session.delete(f"{items_url}/{item_id}", headers=headers, timeout=30)
            assert answer.status_code == expected, (answer.status_code, answer.text, headers)
            if expected == 200:
                assert answer.json() == {"message": "Item deleted", "id": item_id}
                del self.model[item_id]

        @rule(limit=st.integers(1, 12))
        def list_every_page(self, limit):
            listed, token = [], None
            while True:
                params = {"limit": limit, **({"nextToken": token} if token else {})}
                answer = session.get(items_url, params=params, timeout=30)
                assert answer.status_code == 200, answer.text
                page = answer.json()
                assert page["count"] == len(page["items"]) <= limit
                for item in page["items"]:
                    self.check_item(item, item["id"])
                listed += [item["id"] for item in page["items"]]
                token = page["nextToken"]
                if token is None:
                    break
            assert sorted(listed) == sorted(self.model), "a page skipped or repeated an item"

        @invariant()
        def versions_start_at_one(self):
            # Read the table itself (not the model): every stored item has a whole version of 1 or more,
            # and it is the version the model expects.
            stored = {}
            for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
                stored.update({item["id"]["S"]: item["version"]["N"] for item in page["Items"]})
            assert all(int(version) >= 1 for version in stored.values()), stored
            assert stored == {item_id: str(wanted["version"]) for item_id, wanted in self.model.items()}

    return ItemsApi


def test_random_sequences_of_calls_with_random_if_match_agree_with_an_in_memory_model(contract_stack):
    with requests.Session() as session:
        run_state_machine_as_test(
            machine_for(contract_stack, session),
            settings=settings(max_examples=20, stateful_step_count=25, deadline=None, database=None,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]),
        )


@pytest.fixture(autouse=True)
def _no_leftovers(contract_stack):
    yield
    empty_table(contract_stack)
