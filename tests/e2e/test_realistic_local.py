"""local.behaviour: realistic: provision and teardown against the local AWS meet the model of a real
account (crudstack/realistic.py) on the wall clock, its state kept in the state dir between runs."""

from __future__ import annotations

import json
import time

from tests.e2e.conftest import make_stack, provisioned


def test_a_provision_right_after_a_teardown_waits_for_the_table_the_model_still_deletes(tmp_path):
    stack = make_stack(tmp_path / "stack", {"local": {"behaviour": "realistic", "behaviour_scale": 0.5}})
    with provisioned(stack):
        model_state = stack.state_dir / "realistic.json"
        made = json.loads(model_state.read_text())
        assert stack.name("ItemsTable") in made["tables"]          # the model saw the table made ...
        assert any(stack.name("") in role for role in made["roles"])  # ... and the role
        # issue 20's behaviours run here too: the new REST API lagged in GetRestApis, its changes were serialized
        assert any(key.startswith("GetRestApis ") for key in made["list_lag"])
        assert made["api_busy"]

        down = stack.run("teardown.py", "--yes", "--delete-data", "--keep-running")
        assert down.returncode == 0, down.stderr
        gone_at = json.loads(model_state.read_text())["deleting"][stack.name("ItemsTable")][0]
        assert gone_at > time.time()                                 # still DELETING when provision starts

        again = stack.provision("--json")

        assert again.returncode == 0, again.stderr
        assert time.time() >= gone_at                                # it waited the deletion out
        assert json.loads(again.stdout)["steps"][0]["outcome"] == "created"
        table = stack.client("dynamodb").describe_table(TableName=stack.name("ItemsTable"))["Table"]
        assert table["TableStatus"] == "ACTIVE"
