"""The caches the local AWS puts into moto: each serves repeated requests, and answers stay right.

install() changes moto for the whole test process (as configure_moto does in the server); the
caches are equivalent to what they replace, so other tests are unaffected.
"""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from crudstack.local.patches import speedups as moto_speedups
from crudstack.local.patches.core import MotoChanged, replace

REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture()
def table():
    moto_speedups.install()
    with mock_aws():
        dynamodb = boto3.resource("dynamodb", region_name=REGION)
        table = dynamodb.create_table(
            TableName="Items", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
        yield table


def update(table, item_id: str, field: str, value, expected_version=None):
    """An UpdateItem shaped like PUT /items/{id}'s: the same text each time, other values."""
    condition, values = "attribute_exists(id)", {}
    if expected_version is not None:
        condition, values = "attribute_exists(id) AND #version IN (:expected0)", {":expected0": expected_version}
    return table.update_item(
        Key={"id": item_id},
        UpdateExpression=f"SET #{field} = :{field}, #version = #version + :one",
        ConditionExpression=condition,
        ExpressionAttributeNames={f"#{field}": field, "#version": "version"},
        ExpressionAttributeValues={f":{field}": value, ":one": 1, **values},
        ReturnValues="ALL_NEW",
    )["Attributes"]


def test_an_update_expression_is_parsed_once_however_often_it_is_sent(table, monkeypatch):
    from moto.dynamodb.parsing import expressions

    tokenised = []
    make_list = expressions.ExpressionTokenizer.make_list.__func__
    monkeypatch.setattr(expressions.ExpressionTokenizer, "make_list",
                        classmethod(lambda cls, text: tokenised.append(text) or make_list(cls, text)))
    field = f"f{uuid.uuid4().hex[:8]}"  # an expression no other test has sent, so not cached yet
    table.put_item(Item={"id": "a", "version": 1})

    for n in range(5):
        update(table, "a", field, f"value {n}")

    assert len([text for text in tokenised if field in text]) == 1  # moto alone parses it twice per call


def test_cached_update_expressions_apply_each_requests_own_values(table):
    table.put_item(Item={"id": "a", "version": 1})
    table.put_item(Item={"id": "b", "version": 7})

    first = update(table, "a", "name", "first")
    second = update(table, "b", "name", "second")
    third = update(table, "a", "name", "third", expected_version=2)

    assert (first["name"], first["version"]) == ("first", 2)
    assert (second["name"], second["version"]) == ("second", 8)
    assert (third["name"], third["version"]) == ("third", 3)
    assert table.get_item(Key={"id": "b"})["Item"] == {"id": "b", "name": "second", "version": 8}


def test_a_failed_condition_or_a_bad_expression_still_fails_with_a_cached_parse(table):
    table.put_item(Item={"id": "a", "version": 1})
    update(table, "a", "name", "ok", expected_version=1)

    with pytest.raises(ClientError) as stale:
        update(table, "a", "name", "stale", expected_version=1)
    for _ in range(2):  # an expression that does not parse is an error each time, never cached
        with pytest.raises(ClientError) as bad:
            table.update_item(Key={"id": "a"}, UpdateExpression="SET name = = :v",
                              ExpressionAttributeValues={":v": "x"})
        assert bad.value.response["Error"]["Code"] == "ValidationException"

    assert stale.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert table.get_item(Key={"id": "a"})["Item"]["name"] == "ok"


def test_moto_finds_each_services_handler_without_listing_its_methods_again(table):
    table.put_item(Item={"id": "a"})
    before = moto_speedups.cache_info()["method_names"]

    for _ in range(3):
        table.get_item(Key={"id": "a"})

    after = moto_speedups.cache_info()["method_names"]
    assert after.hits - before.hits >= 3
    assert after.misses == before.misses


def test_the_dispatcher_recognises_a_service_host_without_reading_the_disk(monkeypatch):
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    moto_speedups.install()
    app = DomainDispatcherApplication(create_backend_app)
    listed = []
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path=".": listed.append(path) or real_listdir(path))

    backends = [app.get_backend_for_host(host) for host in ("dynamodb", "sns", "apigateway")]

    assert backends == ["dynamodb", "sns", "apigateway"]
    assert listed == []


def test_the_server_installs_the_caches_when_it_configures_moto():
    # In a fresh interpreter: in this one, the tests above have installed them already.
    script = ("from moto.dynamodb.parsing.expressions import UpdateExpressionParser as P\n"
              "from crudstack.local.patches import configure_moto\n"
              "before = hasattr(P.make, 'cache_info')\n"
              "configure_moto()\n"
              "print(before, hasattr(P.make, 'cache_info'))\n")
    answer = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert answer.stdout.split() == ["False", "True"], answer.stderr


def test_the_validator_works_on_a_copy_of_the_parse_without_deep_copying_it(table, monkeypatch):
    from moto.dynamodb.parsing.ast_nodes import UpdateExpression

    copied = []
    monkeypatch.setattr(UpdateExpression, "__reduce_ex__",
                        lambda node, protocol: copied.append(node) or object.__reduce_ex__(node, protocol),
                        raising=False)
    field = f"f{uuid.uuid4().hex[:8]}"
    table.put_item(Item={"id": "a", "version": 1})
    update(table, "a", field, "first")  # parsed, and pickled once for the copies to come
    copied.clear()

    for n in range(5):
        update(table, "a", field, f"value {n}")

    assert copied == []  # copy.deepcopy reduces the expression on every UpdateItem


def test_each_validation_pass_learns_the_node_types_it_handles_once(table, monkeypatch):
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser

    asked = []
    nodes_to_be_processed = DepthFirstTraverser.nodes_to_be_processed
    monkeypatch.setattr(DepthFirstTraverser, "nodes_to_be_processed",
                        lambda traverser: asked.append(type(traverser)) or nodes_to_be_processed(traverser))
    table.put_item(Item={"id": "a", "version": 1})
    update(table, "a", "name", "first")
    asked.clear()

    for n in range(5):
        update(table, "a", "name", f"value {n}")

    assert asked == []  # moto asks for every node of every pass: about 200 times per update


ITEM = {"id": "a", "version": 3, "count": 10, "tags": {"x", "y"}, "labels": {"p", "q"}, "list": [1, 2],
        "map": {"inner": {"deep": "v"}}}


@pytest.mark.parametrize("expression, names, values, changed", [
    ("SET #v = #v + :one, #c = #c - :one", {"#v": "version", "#c": "count"}, {":one": 1}, {"version": 4, "count": 9}),
    ("SET #l = list_append(#l, :more), created = if_not_exists(created, :now)", {"#l": "list"},
     {":more": [3], ":now": "t0"}, {"list": [1, 2, 3], "created": "t0"}),
    ("REMOVE #m.#i.deep, #l[0]", {"#m": "map", "#i": "inner", "#l": "list"}, {}, {"map": {"inner": {}}, "list": [2]}),
    ("ADD tags :t, #c :n DELETE labels :gone", {"#c": "count"}, {":t": {"z"}, ":n": 5, ":gone": {"p"}},
     {"tags": {"x", "y", "z"}, "count": 15, "labels": {"q"}}),
    ("SET #m.#i.added = :o, #m.top = :o", {"#m": "map", "#i": "inner"}, {":o": "new"},
     {"map": {"inner": {"deep": "v", "added": "new"}, "top": "new"}}),
])
def test_update_expressions_of_every_kind_still_apply_as_dynamodb_does(table, expression, names, values, changed):
    for _ in range(2):  # the second time from the caches
        table.put_item(Item=ITEM)
        args = {"ExpressionAttributeValues": values} if values else {}
        table.update_item(Key={"id": "a"}, UpdateExpression=expression, ExpressionAttributeNames=names, **args)

        assert table.get_item(Key={"id": "a"})["Item"] == {**ITEM, **changed}


@pytest.mark.parametrize("expression, names, message", [
    ("SET #v = :v, #v = :w", {"#v": "version"}, "overlap"),
    ("SET id = :v", {}, "key"),
    ("SET #v = #missing + :v", {"#v": "version", "#missing": "nothing"}, "does not exist"),
])
def test_invalid_update_expressions_are_still_refused_each_time(table, expression, names, message):
    table.put_item(Item=ITEM)
    for _ in range(2):
        with pytest.raises(ClientError) as refused:
            table.update_item(Key={"id": "a"}, UpdateExpression=expression,
                              **({"ExpressionAttributeNames": names} if names else {}),
                              ExpressionAttributeValues={":v": 1, ":w": 2} if ":w" in expression else {":v": 1})
        assert refused.value.response["Error"]["Code"] == "ValidationException"
        assert message in refused.value.response["Error"]["Message"].lower()
    assert table.get_item(Key={"id": "a"})["Item"] == ITEM


def conditional_update(table, condition: str, values: dict, name: str):
    return table.update_item(Key={"id": "a"}, UpdateExpression="SET #name = :name, #version = #version + :one",
                             ConditionExpression=condition, ExpressionAttributeNames={"#name": "name", "#version": "version"},
                             ExpressionAttributeValues={":name": name, ":one": 1, **values}, ReturnValues="ALL_NEW")


@pytest.fixture()
def lexed_conditions(monkeypatch):
    from moto.dynamodb.comparisons import ConditionExpressionParser

    lexed = []
    lex = ConditionExpressionParser._lex_condition_expression
    monkeypatch.setattr(ConditionExpressionParser, "_lex_condition_expression",
                        lambda parser: lexed.append(parser.condition_expression) or lex(parser))
    return lexed


def test_a_condition_is_parsed_once_for_the_values_it_names_whatever_else_the_write_sends(table, lexed_conditions):
    tag = f"t{uuid.uuid4().hex[:8]}"  # a condition text no other test has sent
    table.put_item(Item={"id": "a", "version": 1})

    for n in range(5):  # :name changes every time; the condition names only :<tag>
        conditional_update(table, f"#version >= :{tag}", {f":{tag}": 1}, f"name {n}")

    assert table.get_item(Key={"id": "a"})["Item"] == {"id": "a", "name": "name 4", "version": 6}
    assert len(lexed_conditions) == 1  # moto alone lexes it twice per write: 10


def test_a_cached_condition_is_evaluated_with_the_values_it_names(table, lexed_conditions):
    tag = f"t{uuid.uuid4().hex[:8]}"
    condition = f"#version IN (:{tag})"
    table.put_item(Item={"id": "a", "version": 1})

    conditional_update(table, condition, {f":{tag}": 1}, "first")
    with pytest.raises(ClientError) as stale:  # the same text and value, from the cache: version is 2 now
        conditional_update(table, condition, {f":{tag}": 1}, "stale")
    conditional_update(table, condition, {f":{tag}": 2}, "second")  # another value: parsed again

    assert stale.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert table.get_item(Key={"id": "a"})["Item"] == {"id": "a", "name": "second", "version": 3}
    assert len(lexed_conditions) == 2


def test_a_condition_naming_a_placeholder_the_request_lacks_is_left_to_moto_each_time(table):
    table.put_item(Item={"id": "a", "version": 1})
    for _ in range(2):  # moto's own answer (a KeyError in-process, a 500 from its server), never a cached parse
        with pytest.raises(KeyError, match=":missing"):
            conditional_update(table, "#version IN (:missing)", {}, "x")
    assert table.get_item(Key={"id": "a"})["Item"] == {"id": "a", "version": 1}


def test_answers_keep_every_attribute_type_with_the_serializers_key_lookups_cached(table):
    from decimal import Decimal

    from boto3.dynamodb.types import Binary

    item = {"id": "t", "s": "text", "n": Decimal("12.5"), "b": b"\x00\xffbytes", "ss": {"a", "b"}, "ns": {1, 2},
            "bs": {b"x", b"y"}, "m": {"inner": {"deep": [1, "two", None, True]}}, "l": [{"k": "v"}, [b"z"]],
            "null": None, "bool": False}
    expected = {**item, "b": Binary(b"\x00\xffbytes"), "ns": {Decimal(1), Decimal(2)}, "bs": {Binary(b"x"), Binary(b"y")},
                "m": {"inner": {"deep": [Decimal(1), "two", None, True]}}, "l": [{"k": "v"}, [Binary(b"z")]]}
    table.put_item(Item=item)

    for _ in range(2):  # the second time from the caches
        got = table.get_item(Key={"id": "t"})["Item"]
        updated = table.update_item(Key={"id": "t"}, UpdateExpression="SET s = :s", ExpressionAttributeValues={":s": "text"},
                                    ReturnValues="ALL_NEW")["Attributes"]

        assert got == expected
        assert updated == expected


def test_the_serializer_asks_the_alias_providers_once_per_member_of_a_dynamodb_answer(table, monkeypatch):
    from moto.core import serialize

    asked = []
    has_alias = serialize.NoAlias.has_alias
    monkeypatch.setattr(serialize.NoAlias, "has_alias", lambda provider, key: asked.append(key) or has_alias(provider, key))
    table.put_item(Item={"id": "a", "name": "x", "version": 1})
    table.get_item(Key={"id": "a"})
    asked.clear()

    for _ in range(3):
        table.get_item(Key={"id": "a"})

    assert asked == []  # moto asks for each of the ten members of each attribute's value: 30 a call here


def test_a_cache_for_something_moto_no_longer_has_is_refused_by_name():
    import types

    with pytest.raises(MotoChanged, match=r"no module_a\.gone any more"):
        replace(types.SimpleNamespace(__name__="module_a"), "gone", lambda: None)
