"""Each control-plane request is understood once, at the edge (crudstack/local/request.py)."""

import io

from crudstack.local import request
from crudstack.local.iam.requests import Signer, asked
from crudstack.local.state.durable import is_write


def test_the_journal_counts_reads_as_the_tool_does_head_included():
    # crudstack.aws.READ_PREFIXES starts with Get, List, Describe, Head ...: one list, not two drifting copies.
    assert is_write({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "Example_20200101.HeadThing"}, b"{}") is False


def test_resources_are_in_the_partition_botocore_places_the_region_in():
    who = Signer("AKIAEXAMPLE", "us-iso-east-1", "dynamodb", None)
    environ = {"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "DynamoDB_20120810.GetItem"}
    request_asked = asked(environ, b'{"TableName": "t"}', who, "123456789012")
    assert request_asked.resources == ("arn:aws-iso:dynamodb:us-iso-east-1:123456789012:table/t",)


def test_a_request_is_read_once_and_its_record_rides_in_the_environ():
    body = b"Action=CreateTopic&Name=t"
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/x-www-form-urlencoded",
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
               "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20260101/eu-west-1/sns/aws4_request, "
                                     "SignedHeaders=host, Signature=00"}
    first = request.understand(environ)
    assert (first.service, first.operation, first.write, first.protocol, first.access_key, first.region) == (
        "sns", "CreateTopic", True, "query", "AKIAEXAMPLE", "eu-west-1")
    assert request.of(environ) is first                      # every later layer reads the same record
    assert environ["wsgi.input"].read() == body              # and moto still finds the body


def test_dynamodb_streams_is_not_dynamodb_although_both_sign_as_dynamodb():
    environ = {"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "DynamoDBStreams_20120810.ListStreams",
               "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20260101/us-east-1/dynamodb/aws4_request"}
    assert request.parse(environ, b"{}").dynamodb is False
    environ["HTTP_X_AMZ_TARGET"] = "DynamoDB_20120810.GetItem"
    assert request.parse(environ, b"{}").dynamodb is True
