"""What the web app accepts in a request body (pydantic models: strict ids, stripped names, the
reserved annotator names refused) and how a 422 says what was wrong without echoing the input."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, StringConstraints
from pydantic_core import PydanticCustomError

from unisal.app.project import IMPORTER
from unisal.app.security import (
    MAX_ID,
)

# Names the app itself uses in the audit trail; compared after strip() and casefold().
RESERVED_ANNOTATORS = (IMPORTER, "reviewer")
RESERVED_MESSAGE = f"this name is reserved ({', '.join(RESERVED_ANNOTATORS)}): type your own name"


def not_reserved(name: str) -> str:
    """``name``, unless it is a reserved one in any case or width (NFKC: ``ＩＭＰＯＲＴ`` too)."""
    if unicodedata.normalize("NFKC", name).strip().casefold() in RESERVED_ANNOTATORS:
        raise PydanticCustomError("reserved_name", RESERVED_MESSAGE)
    return name


# Stripped first: " alice" is alice, and a name of spaces is no name.
AnnotatorName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[\w .@-]+$"),
    AfterValidator(not_reserved),
]
# Strict: a JSON true is no id (lax pydantic would read it as 1).
RowId = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]
ClassName = Annotated[str, Field(min_length=1, max_length=200)]


class Who(BaseModel):
    annotator: AnnotatorName


class LabelBody(BaseModel):
    image_id: RowId
    label: ClassName
    annotator: AnnotatorName


class BatchBody(BaseModel):
    annotator: AnnotatorName
    count: int = Field(strict=True, ge=1, le=24)


class ResolveBody(BaseModel):
    disagreement_id: RowId
    label: ClassName
    annotator: AnnotatorName


class SkipBody(BaseModel):
    image_id: RowId
    annotator: AnnotatorName


def short_errors(errors: Sequence[Any], *, limit: int = 300) -> str:
    """One line naming each invalid field and its problem (at most 3), never the input.

    Args:
        errors: pydantic's error dicts; only ``loc``, ``msg`` and ``type`` are read (``input``,
            ``ctx`` and ``url`` may hold or point at what the client sent).
    """
    parts = []
    for error in errors[:3]:
        loc = [str(p)[:40] for p in error.get("loc", ())]
        where = "body" if error.get("type") == "json_invalid" else ".".join(loc[1:]) or ".".join(loc)
        parts.append(f"{where or 'request'}: {str(error.get('msg', 'invalid'))[:120]}")
    return "; ".join(parts)[:limit]
