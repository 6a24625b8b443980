"""Snapshots of moto's backends: taken in one moto account, restored into an empty one."""

from __future__ import annotations

import collections
import io
import json
import pickle
import zipfile

import boto3
import pytest
from moto import mock_aws

from crudstack.local.state import snapshot

REGION = "us-east-1"
ROLE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return 1\n")
    return buffer.getvalue()


def build_state():
    """A little of everything the tutorial makes; returns what to look for after a restore."""
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(TableName="items", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    for i in range(50):
        ddb.put_item(TableName="items", Item={"id": {"S": f"item-{i}"}, "n": {"N": str(i)}})
    role = boto3.client("iam", region_name=REGION).create_role(RoleName="r", AssumeRolePolicyDocument=ROLE_POLICY)
    function = boto3.client("lambda", region_name=REGION).create_function(
        FunctionName="f", Runtime="python3.12", Role=role["Role"]["Arn"], Handler="handler.handler",
        Code={"ZipFile": function_zip()})
    api_id = boto3.client("apigateway", region_name=REGION).create_rest_api(name="api")["id"]
    topic = boto3.client("sns", region_name=REGION).create_topic(Name="alerts")["TopicArn"]
    return {"function_sha": function["CodeSha256"], "api_id": api_id, "topic": topic}


def test_a_restored_snapshot_brings_back_tables_items_functions_apis_and_topics(tmp_path):
    with mock_aws():
        expected = build_state()
        path = snapshot.write(tmp_path, 42, snapshot.dumps(42, {"ours": {"deployments": [1, 2]}}))

    with mock_aws():  # a fresh, empty account
        assert boto3.client("dynamodb", region_name=REGION).list_tables()["TableNames"] == []
        loaded = snapshot.read(path)
        snapshot.install_backends(loaded.backends)

        ddb = boto3.client("dynamodb", region_name=REGION)
        assert ddb.scan(TableName="items", Select="COUNT")["Count"] == 50
        assert ddb.get_item(TableName="items", Key={"id": {"S": "item-7"}})["Item"]["n"] == {"N": "7"}
        lam = boto3.client("lambda", region_name=REGION)
        assert lam.get_function(FunctionName="f")["Configuration"]["CodeSha256"] == expected["function_sha"]
        # moto keeps functions by ARN in a weak-value map too: the restored one must be found that way
        arn = lam.get_function(FunctionName="f")["Configuration"]["FunctionArn"]
        assert lam.get_function(FunctionName=arn)["Configuration"]["FunctionName"] == "f"
        assert [a["id"] for a in boto3.client("apigateway", region_name=REGION).get_rest_apis()["items"]] == [expected["api_id"]]
        assert [t["TopicArn"] for t in boto3.client("sns", region_name=REGION).list_topics()["Topics"]] == [expected["topic"]]
        # and it keeps working: writes after the restore land in the restored objects
        ddb.put_item(TableName="items", Item={"id": {"S": "after"}})
        assert ddb.scan(TableName="items", Select="COUNT")["Count"] == 51
    assert (loaded.lsn, loaded.parts) == (42, {"ours": {"deployments": [1, 2]}})


def test_a_damaged_snapshot_file_is_refused_with_its_name(tmp_path):
    with mock_aws():
        build_state()
        path = snapshot.write(tmp_path, 1, snapshot.dumps(1, {}))
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(snapshot.SnapshotError, match="snapshot-000000000001.pickle is damaged"):
        snapshot.read(path)


def test_a_defaultdict_whose_factory_is_a_lambda_is_saved_as_one_making_the_same_values():
    saved = collections.defaultdict(lambda: {})
    saved["a"]["b"] = 1
    buffer = io.BytesIO()
    snapshot._StatePickler(buffer, {}).dump(saved)

    restored = pickle.loads(buffer.getvalue())

    assert restored == {"a": {"b": 1}} and restored["new"] == {}


def test_a_defaultdict_factory_making_something_else_is_a_clear_error():
    odd = collections.defaultdict(lambda: "x")

    with pytest.raises(pickle.PicklingError, match="cannot save a defaultdict whose factory"):
        snapshot._StatePickler(io.BytesIO(), {}).dump(odd)


def test_snapshots_are_listed_newest_first(tmp_path):
    for lsn in (3, 12, 7):
        (tmp_path / snapshot.snapshot_name(lsn)).write_bytes(b"")
    (tmp_path / ".snapshot-000000000099.pickle.1.tmp").write_bytes(b"")

    assert [lsn for lsn, _ in snapshot.list_snapshots(tmp_path)] == [12, 7, 3]
