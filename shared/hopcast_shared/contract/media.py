"""Media in the contract (issue 18): the images or video of a material or a post, each with its
alt text and type, and the platforms a pending post leaves out because they need media."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from hopcast_shared.contract.enums import LeftOutReason, Platform
from hopcast_shared.contract.fields import LAX, MAX_MEDIA_URLS, ContractModel, ShortText, Url

_MIME_TYPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$"
MimeType = Annotated[str, StringConstraints(max_length=100, pattern=_MIME_TYPE_PATTERN)]


class MediaItem(ContractModel):
    """One image or video of a material or a post, in order: where it is, the text that
    describes it to whom cannot see it (null: none given), and its type when the sender
    knows it (`image/jpeg`, `video/mp4`; null: judged from the file)."""

    url: Url
    alt_text: ShortText | None = None
    mime_type: MimeType | None = None


Media = Annotated[
    list[MediaItem],
    Field(
        max_length=MAX_MEDIA_URLS,
        description="The images or video, in order, with alt texts; never pasted into a post's text.",
    ),
]
OlderMediaUrls = Annotated[
    list[Url],
    Field(
        max_length=MAX_MEDIA_URLS,
        description="An older producer's media, read as `media` without alt text when `media` is absent; never written",
    ),
]


def fold_media_urls(data: Any) -> Any:
    """`media_urls` of an older producer read as `media` without alt text or type, when
    `media` itself is absent (a `media` given wins)."""
    if isinstance(data, dict) and data.get("media") is None and isinstance(data.get("media_urls"), list):
        urls = data["media_urls"]
        return {**data, "media": [{"url": u} if isinstance(u, str) else u for u in urls]}
    return data


class LeftOutPlatform(ContractModel):
    """A platform of the run that the pending post does not go to, decided before the debit."""

    platform: Annotated[Platform, LAX]
    reason: Annotated[LeftOutReason, LAX]


class ReadsMediaUrls(ContractModel):
    """Base of the events with `media` (MaterialSubmitted, PendingPostCreated): an older
    producer's `media_urls` are read as media without alt text when `media` is absent."""

    @model_validator(mode="before")
    @classmethod
    def _read_media_urls(cls, data: Any) -> Any:
        return fold_media_urls(data)


class LeavesPlatformsOut(ContractModel):
    """Base of PendingPostCreated: each left-out platform once, and none of `platforms`."""

    @model_validator(mode="after")
    def _left_out_apart(self) -> Self:
        left_out = [p.platform for p in getattr(self, "platforms_left_out", ())]
        if len(set(left_out)) != len(left_out) or set(left_out) & set(getattr(self, "platforms", ())):
            raise PydanticCustomError("left_out", "platforms_left_out: each platform once, and none of `platforms`")
        return self


LeftOut = Annotated[
    list[LeftOutPlatform],
    Field(max_length=10, description="The run's platforms the post does not go to (nor is charged for), with why."),
]
