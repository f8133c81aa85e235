"""Helpers of the SQS tests: look at queues and messages with raw boto3."""

from __future__ import annotations

from typing import Any


def url_of(boto: Any, sqs_name: str) -> str:
    return str(boto.get_queue_url(QueueName=sqs_name)["QueueUrl"])


def attributes_of(boto: Any, sqs_name: str) -> dict[str, str]:
    url = url_of(boto, sqs_name)
    return dict(boto.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"])
