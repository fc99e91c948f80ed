"""What the operator overrides on the target (`TargetOptions`): the one home of those options.

Everything not overridden here mirrors the source (`spec.build_target_spec`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BillingMode = Literal["PROVISIONED", "PAY_PER_REQUEST"]
TableClass = Literal["STANDARD", "STANDARD_INFREQUENT_ACCESS"]
StreamViewType = Literal["NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY"]


class TargetOptions(BaseModel):
    """What the operator overrides on the target; everything else mirrors the source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: None: the source's billing mode.
    billing_mode: BillingMode | None = None
    #: Capacity when the target is PROVISIONED and the source is on-demand (or to override).
    read_capacity: int | None = Field(default=None, ge=1)
    write_capacity: int | None = Field(default=None, ge=1)
    #: The target table's warm throughput (units per second it serves at once; None: the
    #: source's, see `spec.carried_warm_throughput`).
    warm_read_units: int | None = Field(default=None, ge=1)
    warm_write_units: int | None = Field(default=None, ge=1)
    #: None: the source's table class.
    table_class: TableClass | None = None
    #: Added to (and overriding) the source's tags.
    tags: dict[str, str] = Field(default_factory=dict)
    #: Copy the source's tags to the target.
    copy_tags: bool = True
    #: Regions to add as replicas (the target becomes a global table).
    replica_regions: tuple[str, ...] = ()
    #: A KMS key for the target's encryption (required when the source's key is in another account).
    sse_kms_key_id: str | None = None
    #: None: the source's setting.
    deletion_protection: bool | None = None
    #: A stream on the target (None: none, unless replicas require NEW_AND_OLD_IMAGES).
    target_stream_view_type: StreamViewType | None = None
    #: Accept an existing target that already holds items.
    allow_nonempty_target: bool = False
    #: Accept replacing a KEYS_ONLY / OLD_IMAGE source stream (breaks its other consumers).
    replace_stream: bool = False
