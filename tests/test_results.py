"""The text preview stored with each result (see orchlite/results.py): bounded and redacted."""

from __future__ import annotations

from pathlib import Path

from orchlite import redaction
from orchlite.blobs import BlobStore
from orchlite.results import PREVIEW_CHARS, persist, text_preview

SECRET = "pv-s3cr3t-77f1-e0c2-never-previewed"


class Shows:
    """An object whose repr() is whatever it is given (a secret, say)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class BadRepr:
    def __repr__(self) -> str:
        raise KeyError(SECRET)


def test_a_preview_is_the_start_of_the_repr_cut_with_an_ellipsis() -> None:
    assert text_preview({"rows": [1, 2.5, None], "ok": True}) == (
        "{'rows': [1, 2.5, None], 'ok': True}"
    )
    long = text_preview(list(range(1_000_000)))  # walked only as far as the limit
    assert len(long) == PREVIEW_CHARS and long.startswith("[0, 1, 2, ") and long.endswith("…")
    assert text_preview("x" * PREVIEW_CHARS * 1000) == "'" + "x" * (PREVIEW_CHARS - 2) + "…"
    assert text_preview(Shows("exactly\nas written")) == "exactly\nas written"


def test_a_repr_that_raises_is_named_not_raised() -> None:
    redaction.register("PREVIEW_SECRET", SECRET)
    assert text_preview(BadRepr()) == "<BadRepr: repr() failed with KeyError>"


def test_secret_values_are_masked_even_where_the_preview_cuts_one() -> None:
    redaction.register("PREVIEW_SECRET", SECRET)
    assert text_preview(Shows(f"token={SECRET}!")) == "token=***!"
    assert text_preview({"key": Shows(SECRET)}) == "{'key': ***}"
    for start in range(PREVIEW_CHARS - len(SECRET), PREVIEW_CHARS):
        shown = text_preview(Shows("." * start + SECRET + "." * 50))
        assert SECRET[:4] not in shown, start
        assert shown.endswith("***…") or shown.endswith(".…"), shown


def test_persist_stores_the_preview_beside_inline_bytes_and_blobs(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    small = persist(Shows("small"), "cloudpickle", blobs)
    assert small.data is not None and small.preview == "small"
    large = persist(["z" * 10_000], "json", blobs)
    assert large.blob is not None and large.preview == "['" + "z" * (PREVIEW_CHARS - 3) + "…"
