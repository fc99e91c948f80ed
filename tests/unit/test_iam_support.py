"""The IAM test's own machinery, without AWS: the template resolver and the mapping of a botocore
call to the IAM requests it makes (tests/support/sam_template.py, tests/support/iam_calls.py)."""

from __future__ import annotations

import pytest

from tests.support.iam_calls import Recorder
from tests.support.sam_template import NO_VALUE, Resolver

TEMPLATE = {
    "Parameters": {
        "TableName": {"Type": "String"},
        "Region": {"Type": "String", "Default": ""},
        "Keys": {"Type": "CommaDelimitedList", "Default": ""},
    },
    "Conditions": {
        "HasRegion": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Region"}, ""]}]},
    },
    "Resources": {
        "State": {"Type": "AWS::DynamoDB::Table"},
        "Dlq": {"Type": "AWS::SQS::Queue"},
        "Fn": {"Type": "AWS::Lambda::Function"},
    },
}


def test_resolver_fills_subs_conditions_and_drops_no_value() -> None:
    r = Resolver(TEMPLATE, {"TableName": "orders"}, {"State": "state-1", "Dlq": "dlq-1"})
    region = {"Fn::If": ["HasRegion", {"Ref": "Region"}, {"Ref": "AWS::Region"}]}
    sub = {
        "Fn::Sub": [
            "arn:${AWS::Partition}:dynamodb:${R}:${AWS::AccountId}:table/${TableName}",
            {"R": region},
        ]
    }
    assert r.resolve(sub) == "arn:aws:dynamodb:us-east-1:123456789012:table/orders"
    assert r.resolve({"Fn::GetAtt": ["State", "Arn"]}).endswith(":table/state-1")
    assert r.resolve({"Fn::GetAtt": ["Dlq", "QueueName"]}) == "dlq-1"
    assert r.resolve({"Ref": "Dlq"}).endswith("/123456789012/dlq-1")
    assert r.resolve(["a", {"Ref": "AWS::NoValue"}, "b"]) == ["a", "b"]
    assert r.resolve({"K": {"Ref": "AWS::NoValue"}}) == {}
    assert r.resolve({"Ref": "AWS::NoValue"}) is NO_VALUE
    assert r.resolve({"Fn::Join": ["", {"Ref": "Keys"}]}) == ""
    r2 = Resolver(TEMPLATE, {"TableName": "t", "Region": "eu-west-1"}, {})
    assert ":eu-west-1:" in r2.resolve(sub)
    assert r2.resolve({"Fn::Sub": "${Fn.Arn}"}) == (
        "arn:aws:lambda:us-east-1:123456789012:function:dynashift-test-Fn"
    )


def test_a_call_maps_to_the_resources_iam_checks() -> None:
    rec = Recorder()
    region = "us-east-1"
    writes = rec.requests(
        "dynamodb", region, "BatchWriteItem", {"RequestItems": {"a": [], "b": []}}
    )
    assert [(a, r.rsplit("/", 1)[1]) for a, r, _ in writes] == [
        ("dynamodb:BatchWriteItem", "a"),
        ("dynamodb:BatchWriteItem", "b"),
    ]
    ((action, resource, _),) = rec.requests(
        "sqs", region, "GetQueueAttributes", {"QueueUrl": "http://h:1/444455556666/q1"}
    )
    assert (action, resource) == ("sqs:GetQueueAttributes", "arn:aws:sqs:us-east-1:444455556666:q1")
    ((action, resource, context),) = rec.requests(
        "lambda", region, "CreateEventSourceMapping", {"FunctionName": "f", "EventSourceArn": "x"}
    )
    assert (action, resource) == ("lambda:CreateEventSourceMapping", "*")
    assert context == {"lambda:FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:f"}
    ((action, resource, _),) = rec.requests("dynamodbstreams", region, "ListStreams", {})
    assert (action, resource) == ("dynamodb:ListStreams", "*")
    ((action, _, _),) = rec.requests("stepfunctions", region, "SendTaskSuccess", {"taskToken": "t"})
    assert action == "states:SendTaskSuccess"
    parts = rec.requests(
        "dynamodb",
        region,
        "TransactWriteItems",
        {"TransactItems": [{"Put": {"TableName": "a"}}, {"Delete": {"TableName": "a"}}]},
    )
    assert sorted(a for a, _, _ in parts) == ["dynamodb:DeleteItem", "dynamodb:PutItem"]
    with pytest.raises(AssertionError, match="no IAM resource mapping"):
        rec.requests("sqs", region, "FrobnicateQueue", {})
