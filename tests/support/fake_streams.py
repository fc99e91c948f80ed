"""A fake DynamoDB Streams client: several parent/child shards (moto has one shard per table),
paged DescribeStream, expired iterators, throttling, a growing shard; `ChangingStreams` adds
empty pages before later records, a shard that splits while read, and a skewed HTTP Date."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/src/stream/2024-01-01T00:00:00.000"


def botocore_record(seq: int, name: str = "MODIFY", now: bool = False) -> dict[str, Any]:
    """A record as botocore's GetRecords returns it (bytes, datetime, capitalised identity)."""
    created = datetime.now(UTC) if now else datetime.fromtimestamp(1_700_000_000 + seq, UTC)
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": created,
        "Keys": {"pk": {"S": f"k{seq}"}},
        "SequenceNumber": str(seq),
        "SizeBytes": 10,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if name != "REMOVE":
        body["NewImage"] = {"pk": {"S": f"k{seq}"}, "b": {"B": b"\x00\xff"}}
    return {
        "eventID": f"e{seq}",
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": body,
    }


def client_error(code: str, op: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "fake"}}, op)


class FakeStreams:
    """DescribeStream (paged), GetShardIterator, GetRecords over in-memory shards.

    `shards`: ShardId -> (ParentShardId, [sequence numbers], closed). Every `expire_every`-th
    GetRecords raises ExpiredIteratorException; every `throttle_every`-th raises
    LimitExceededException. `grow` appends one record to that open shard on every GetRecords.
    """

    def __init__(
        self,
        shards: Mapping[str, tuple[str | None, Sequence[int], bool]],
        *,
        page: int = 2,
        describe_page: int = 2,
        expire_every: int = 0,
        throttle_every: int = 0,
        grow: str | None = None,
    ) -> None:
        self.shards = {
            k: (p, [botocore_record(s) for s in seqs], c) for k, (p, seqs, c) in shards.items()
        }
        self.order = list(shards)
        self.page = page
        self.describe_page = describe_page
        self.expire_every = expire_every
        self.throttle_every = throttle_every
        self.grow = grow
        self.calls = 0
        self.expired = 0
        self.throttled = 0
        self.trimmed: set[str] = set()

    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str | None = None) -> Any:
        start = self.order.index(ExclusiveStartShardId) + 1 if ExclusiveStartShardId else 0
        ids = self.order[start : start + self.describe_page]
        shards = []
        for sid in ids:
            parent, records, closed = self.shards[sid]
            rng: dict[str, str] = {
                "StartingSequenceNumber": records[0]["dynamodb"]["SequenceNumber"]
            }
            if closed:
                rng["EndingSequenceNumber"] = records[-1]["dynamodb"]["SequenceNumber"]
            shard: dict[str, Any] = {"ShardId": sid, "SequenceNumberRange": rng}
            if parent:
                shard["ParentShardId"] = parent
            shards.append(shard)
        desc: dict[str, Any] = {"StreamArn": StreamArn, "Shards": shards}
        if start + self.describe_page < len(self.order):
            desc["LastEvaluatedShardId"] = ids[-1]
        return {"StreamDescription": desc}

    def get_shard_iterator(
        self,
        StreamArn: str,
        ShardId: str,
        ShardIteratorType: str,
        SequenceNumber: str | None = None,
    ) -> Any:
        if ShardId in self.trimmed and ShardIteratorType == "AFTER_SEQUENCE_NUMBER":
            raise client_error("TrimmedDataAccessException", "GetShardIterator")
        records = self.shards[ShardId][1]
        if ShardIteratorType == "TRIM_HORIZON":
            pos = 0
        else:
            assert ShardIteratorType == "AFTER_SEQUENCE_NUMBER"
            seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
            pos = next((i for i, s in enumerate(seqs) if s > int(str(SequenceNumber))), len(seqs))
        return {"ShardIterator": json.dumps([ShardId, pos])}

    def get_records(self, ShardIterator: str, Limit: int) -> Any:
        self.calls += 1
        if self.grow:
            _, records, _ = self.shards[self.grow]
            last = int(records[-1]["dynamodb"]["SequenceNumber"])
            records.append(botocore_record(last + 1, now=True))
        if self.expire_every and self.calls % self.expire_every == 0:
            self.expired += 1
            raise client_error("ExpiredIteratorException", "GetRecords")
        if self.throttle_every and self.calls % self.throttle_every == 0:
            self.throttled += 1
            raise client_error("LimitExceededException", "GetRecords")
        sid, pos = json.loads(ShardIterator)
        _, records, closed = self.shards[sid]
        batch = records[pos : pos + min(Limit, self.page)]
        end = pos + len(batch)
        out: dict[str, Any] = {"Records": batch}
        if not (closed and end >= len(records)):
            out["NextShardIterator"] = json.dumps([sid, end])
        return out


class ChangingStreams(FakeStreams):
    """FakeStreams whose iterators may carry a count of empty pages already served, so a shard
    can return `gaps[position]` empty pages (with a NextShardIterator) before its later records;
    `split_on_read` closes shard A and adds its child B on the next GetRecords; `clock_ahead`
    sends an HTTP Date that many seconds ahead of the local clock."""

    def __init__(self, *args: Any, gaps: dict[int, int] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.gaps = gaps or {}
        self.split_on_read: list[int] = []
        self.clock_ahead: float | None = None

    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str | None = None) -> Any:
        out = super().describe_stream(StreamArn, ExclusiveStartShardId)
        if self.clock_ahead is not None:
            from email.utils import formatdate

            date = formatdate(time.time() + self.clock_ahead, usegmt=True)
            out["ResponseMetadata"] = {"HTTPHeaders": {"date": date}}
        return out

    def get_records(self, ShardIterator: str, Limit: int) -> Any:
        if self.split_on_read:
            parent, records, _ = self.shards["A"]
            self.shards["A"] = (parent, records, True)
            self.shards["B"] = ("A", [botocore_record(s) for s in self.split_on_read], False)
            self.order.append("B")
            self.split_on_read = []
        sid, pos, *served = json.loads(ShardIterator)
        served_n = served[0] if served else 0
        if served_n < self.gaps.get(pos, 0):
            self.calls += 1
            return {"Records": [], "NextShardIterator": json.dumps([sid, pos, served_n + 1])}
        return super().get_records(json.dumps([sid, pos]), Limit)
