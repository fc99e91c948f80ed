"""Sampled verification (`--verify-sample FRACTION`): which key-space segments a sampled run
verifies, and the bound a clean sample proves.

Sampling must cut the reads, so it samples the KEY SPACE, not the items of a full scan. A
sampled verification uses its own fine parallel-scan partition of `V` segments (a power of two,
at most 2**19 < Scan's 1,000,000; `sample_partition`) and verifies `m = ceil(f * V)` segment
numbers drawn at random (`draw_sample`, seeded). The seed and the drawn numbers are recorded in
the state store (`plan_sample`), so a resumed run verifies the same sample (I8) and a resume
with another fraction is refused.

Why the bound holds. DynamoDB assigns every item to a scan segment by a hash of its partition
key, the same on both tables (they share the key schema), so the source scan of a sampled
segment and the target scan of the same segment see the same partition keys: every kind of
divergence (missing, differing, extra) of a key in a sampled segment is found (a DynamoDB-
compatible target that hashes differently changes nothing: its extra keys are then in the sample
with the same probability by its own hash, and the other kinds are found from the source side).
The sample is a
uniformly random m-subset of the V segment numbers, drawn without looking at the data. With the
hash spreading keys uniformly over the V segments, a divergent partition key escapes the sample
with probability exactly `1 - f` (f = m/V) and — the step that matters — this stays exactly
`1 - f` given that any other divergent keys escaped: if the earlier ones occupy K unsampled
segments, the next lands in one of them with probability K/V and otherwise in one of the V-K
others, of which V-K-m are unsampled: K/V + (V-K)/V * (V-K-m)/(V-K) = (V-m)/V. So D divergent
keys all escape with probability (1-f)**D. A clean sample therefore shows, with confidence c,
that (1-f)**D > 1-c, i.e. D < ln(1-c)/ln(1-f) (`divergence_bound`). Keys, not items: all items
of one partition key share a segment. V is a power of two so moto's hash (one byte of the md5,
modulo V) is uniform too for V <= 256; past 256 moto leaves segments empty and the bound is
slightly optimistic there (AWS's hash space is divided evenly for any V).

If the sample finds divergent keys they are real (they were rechecked like any): NOT READY.
"""

from __future__ import annotations

import json
import math
import random
import secrets
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from dynashift.errors import BadInputError
from dynashift.state import StateStore

#: State store sort key of the recorded sample (`verify#...` holds the segments' results).
SAMPLE_SK = "vsample"
#: Confidence of the bound stated in the readiness report.
DEFAULT_CONFIDENCE = 0.999
#: Scan's TotalSegments limit.
SCAN_SEGMENTS_LIMIT = 1_000_000
#: The finest partition used: the largest power of two within Scan's limit.
MAX_KEY_SPACE_SEGMENTS = 1 << 19
#: Items per key-space segment aimed at (each sampled piece stays small: one worker turn).
ITEMS_PER_SAMPLE_SEGMENT = 1_000
#: Segments a sample holds at least (so f = m/V stays close to the fraction asked for).
MIN_SAMPLED_SEGMENTS = 4
#: Segments a sample holds at most: their numbers travel in the Map's items (256 KB payload).
MAX_SAMPLED_SEGMENTS = 10_000


class VerifySample(BaseModel):
    """The key-space segments a sampled verification reads, as recorded in the state store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The fraction asked for (`spec.verify_sample`).
    fraction: float = Field(gt=0, lt=1)
    #: V: TotalSegments of the verification scans.
    total_segments: int = Field(ge=1, le=SCAN_SEGMENTS_LIMIT)
    #: The m segment numbers verified, sorted.
    segments: list[int]
    seed: int
    confidence: float = Field(default=DEFAULT_CONFIDENCE, gt=0, lt=1)

    @property
    def effective_fraction(self) -> float:
        """f = m/V: the probability that a partition key lies in the sample (>= `fraction`)."""
        return len(self.segments) / self.total_segments

    @property
    def bound(self) -> int:
        """N: a clean sample shows fewer than N divergent partition keys (with `confidence`)."""
        return divergence_bound(self.effective_fraction, self.confidence)

    def summary(self) -> SampleSummary:
        """What the readiness checklist states about this sample."""
        return SampleSummary(
            segments=len(self.segments),
            total_segments=self.total_segments,
            fraction=self.effective_fraction,
            confidence=self.confidence,
            bound=self.bound,
        )


class SampleSummary(BaseModel):
    """What a sampled verification read and the bound a clean one proves (module docstring)."""

    model_config = ConfigDict(extra="forbid")

    #: m: key-space segments verified.
    segments: int
    #: V: key-space segments of the verification's partition.
    total_segments: int
    #: m/V: the share of the partition keys in the sample.
    fraction: float
    confidence: float
    #: N: a clean sample shows fewer than N divergent partition keys with `confidence`.
    bound: int

    def line(self, divergent: int) -> str:
        """`sampled: 8 of 32 key-space segments (25%), 0 divergent`, and the bound when clean."""
        text = sample_line(self.segments, self.total_segments, self.fraction, divergent)
        return f"{text}; {bound_line(self.confidence, self.bound)}" if not divergent else text


def divergence_bound(fraction: float, confidence: float = DEFAULT_CONFIDENCE) -> int:
    """The smallest N such that a sample of `fraction` of the partition keys that found no
    divergent key shows, with `confidence`, fewer than N divergent keys: D < ln(1-c)/ln(1-f),
    so N = ceil(ln(1-c)/ln(1-f)) (module docstring). `fraction` 1 (every key read): 1."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction {fraction!r} must be in (0, 1]")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence!r} must be in (0, 1)")
    if fraction == 1:
        return 1
    return max(1, math.ceil(math.log1p(-confidence) / math.log1p(-fraction)))


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (max(n, 1) - 1).bit_length())


def _pow2_at_most(n: int) -> int:
    return 1 << (max(n, 1).bit_length() - 1)


def sample_partition(fraction: float, item_count: int) -> tuple[int, int]:
    """(V, m): the key-space segments of a sampled verification and how many are verified.

    V is the power of two that gives pieces of about ITEMS_PER_SAMPLE_SEGMENT items and at least
    MIN_SAMPLED_SEGMENTS sampled ones, within MAX_KEY_SPACE_SEGMENTS and so that m stays at
    most MAX_SAMPLED_SEGMENTS; m = ceil(f * V) (so m/V >= f: never fewer reads than asked).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction {fraction!r} must be in (0, 1)")
    wanted = max(
        math.ceil(max(item_count, 0) / ITEMS_PER_SAMPLE_SEGMENT),
        math.ceil(MIN_SAMPLED_SEGMENTS / fraction),
    )
    total = min(
        _pow2_at_least(wanted),
        MAX_KEY_SPACE_SEGMENTS,
        _pow2_at_most(math.floor(MAX_SAMPLED_SEGMENTS / fraction)),
    )
    # round(): f * V computed in floating point must not round 8.000000001 up to 9.
    sampled = max(1, math.ceil(round(fraction * total, 9)))
    return total, min(sampled, total)


def draw_sample(
    fraction: float,
    item_count: int,
    seed: int,
    confidence: float = DEFAULT_CONFIDENCE,
) -> VerifySample:
    """The sample of `fraction` for a table of `item_count` items: m of V segment numbers drawn
    uniformly without replacement by a generator seeded with `seed` (same seed, same sample)."""
    total, sampled = sample_partition(fraction, item_count)
    chosen = sorted(random.Random(seed).sample(range(total), sampled))
    return VerifySample(
        fraction=fraction,
        total_segments=total,
        segments=chosen,
        seed=seed,
        confidence=confidence,
    )


def save_sample(state: StateStore, sample: VerifySample | None) -> None:
    """Record the run's verification sample (None: a full verification) in the state store."""
    data = {"sampled": False} if sample is None else sample.model_dump(mode="json")
    state.put_record(SAMPLE_SK, data={"S": json.dumps(data, sort_keys=True)})


def load_sample(state: StateStore) -> tuple[bool, VerifySample | None]:
    """(recorded?, the recorded sample or None for a full verification)."""
    item = state.get_record(SAMPLE_SK)
    if item is None:
        return False, None
    data = json.loads(item["data"]["S"])
    if data.get("sampled") is False:
        return True, None
    return True, VerifySample.model_validate(data)


def recorded_sample(state: StateStore | None) -> VerifySample | None:
    """The sample this migration verifies, or None (full verification, or none recorded)."""
    return load_sample(state)[1] if state is not None else None


def _describe(fraction: float | None) -> str:
    return "a full verification" if fraction is None else f"a sample of {fraction:g}"


def check_sample(state: StateStore, fraction: float | None) -> tuple[bool, VerifySample | None]:
    """The recorded sample (`load_sample`), refusing a resume that asks for another fraction
    (or switches between full and sampled verification): BadInputError naming
    `spec.verify_sample`, since the other verification's checkpoints would be mixed in.
    Read-only (Validate calls it before anything is written)."""
    recorded, sample = load_sample(state)
    if recorded:
        before = None if sample is None else sample.fraction
        if before != fraction:
            raise BadInputError(
                f"spec.verify_sample: {fraction!r}, but migration {state.migration_id} was "
                f"started with {_describe(before)}; resume it with the same --verify-sample"
            )
    return recorded, sample


def plan_sample(
    state: StateStore,
    fraction: float | None,
    item_count: int,
    *,
    seed: int | None = None,
) -> VerifySample | None:
    """The sample of this migration: the recorded one on a resume (`check_sample`), else a new
    one drawn (with `seed`, default a random 63-bit seed) and recorded, so every later step and
    every resume verifies the same segments (I8)."""
    recorded, sample = check_sample(state, fraction)
    if recorded:
        return sample
    if fraction is not None:
        sample = draw_sample(fraction, item_count, secrets.randbits(63) if seed is None else seed)
    save_sample(state, sample)
    return sample


def sample_scope(segments: int, total: int, fraction: float) -> str:
    """`sampled: 8 of 32 key-space segments (25%)`."""
    return f"sampled: {segments} of {total} key-space segments ({100 * fraction:.4g}%)"


def sample_line(segments: int, total: int, fraction: float, divergent: int) -> str:
    """`sampled: 8 of 32 key-space segments (25%), 0 divergent` (the checklist's wording)."""
    return f"{sample_scope(segments, total, fraction)}, {divergent} divergent"


def bound_line(confidence: float, bound: int) -> str:
    """`with 99.9% confidence fewer than 25 divergent partition keys`."""
    return f"with {100 * confidence:.4g}% confidence fewer than {bound} divergent partition keys"


def sampled_numbers(sample: VerifySample | None, segments: int) -> Sequence[int]:
    """The segment numbers the verification Map iterates: the sample's, or every backfill
    segment for a full verification."""
    return list(range(segments)) if sample is None else list(sample.segments)
