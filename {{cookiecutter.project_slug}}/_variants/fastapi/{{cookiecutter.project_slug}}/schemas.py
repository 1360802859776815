"""The JSON shapes of the notes API."""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

Title = Annotated[str, Field(min_length=1, max_length=200)]
Body = Annotated[str, Field(max_length=10_000)]


class NoteIn(BaseModel):
    """POST and PUT: the whole note."""

    model_config = ConfigDict(strict=True)

    title: Title
    body: Body = ""


class NotePatch(BaseModel):
    """PATCH: only the fields given change."""

    model_config = ConfigDict(strict=True)

    title: Title | None = None
    body: Body | None = None

    @field_validator("title", "body", mode="before")
    @classmethod
    def not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value


class NoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    body: str
    word_count: int | None
    created_at: datetime
    updated_at: datetime

    @field_validator("created_at", "updated_at")
    @classmethod
    def aware(cls, value: datetime) -> datetime:
        # SQLite keeps no time zone; every timestamp is written in UTC.
        return value if value.tzinfo else value.replace(tzinfo=UTC)


class NotePage(BaseModel):
    items: list[NoteOut]
    page: int
    per_page: int
    total: int
