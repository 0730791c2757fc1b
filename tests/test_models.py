import attrs
import pendulum
import pytest

from tests.conftest import fixture_json
from voiceapi_async import (
    Call,
    CallStatus,
    Page,
    PageNumbers,
    Recording,
    Report,
    Shape,
    make_converter,
    plan_windows,
)

SIGNATURE = "0" * 64


def recordings() -> list[Recording]:
    rows = fixture_json("recordings_shape_c.json")["data"]
    return make_converter("Asia/Kolkata").structure_rows(rows, Recording)


def test_records_are_frozen_and_slotted() -> None:
    """Records cannot be changed after structuring and carry no __dict__."""
    record = recordings()[0]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        record.id = "other"  # type: ignore[misc]
    assert not hasattr(record, "__dict__")
    assert attrs.fields(Call).extra.default is not attrs.NOTHING  # type: ignore[comparison-overlap]


def test_presigned_audio_is_redacted_in_repr_but_kept_in_the_value() -> None:
    """The repr hides X-Amz-Signature and X-Amz-Credential; the attribute keeps the real URL."""
    record = recordings()[0]
    assert SIGNATURE in (record.audio or "")
    assert SIGNATURE not in repr(record)
    assert "AKIAEXAMPLEEXAMPLE" not in repr(record)
    assert "X-Amz-Signature=[REDACTED]" in repr(record)


def test_equality_ignores_raw_agent_and_extra_but_not_fields() -> None:
    """Records compare by their typed fields; they stay hashable with raw JSON inside."""
    first, second = recordings()
    assert first != second
    assert first == attrs.evolve(first, extra={"other": 1})
    assert len({first, second}) == 2


def test_call_status_is_a_str_enum() -> None:
    """Known statuses compare equal to their wire strings."""
    assert CallStatus.NOANSWER == "NOANSWER"
    assert Report("recordings") is Report.RECORDINGS


def test_page_holds_records_window_and_paging_numbers() -> None:
    """A Page carries its records with the window and the server's numbers."""
    (window,) = plan_windows("recordings", "2019-06-11", "2019-06-11", "Asia/Kolkata")
    page = Page(
        records=recordings(),
        window=window,
        shape=Shape.RESOURCE,
        numbers=PageNumbers(current_page=1, last_page=1, per_page=15, total=2),
    )
    assert page.window.key == "recordings/2019-06-11"
    assert len(page.records) == page.numbers.total
    assert page.records[1].created_at.tzinfo == pendulum.timezone("Asia/Kolkata")


def test_windows_order_by_start() -> None:
    """Windows sort chronologically."""
    windows = plan_windows("calls", "2024-01-01", "2024-01-03", "UTC")
    assert sorted([windows[2], windows[0], windows[1]]) == windows
