"""Unit tests of parse_task and friends: every documented shape, and junk that must not crash the poller."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from bot.evolink import ErrorKind, EvolinkError, TaskSnapshot, parse_retry_after, parse_task

TID = "task-unified-1757169743-7cvnl5zw"
URL = "https://cdn.evolink.ai/sample/topaz-upscaled-video.mp4"

SUBMIT_RESPONSE: dict[str, Any] = {
    "created": 1757169743,
    "id": TID,
    "model": "topaz-video-upscale",
    "object": "video.generation.task",
    "progress": 0,
    "status": "pending",
    "task_info": {"can_cancel": True, "estimated_time": 600, "video_duration": 0},
    "type": "video",
    "usage": {"billing_rule": "per_second", "credits_reserved": 28.8, "user_group": "default"},
}
COMPLETED: dict[str, Any] = {
    "id": TID,
    "model": "topaz-video-upscale",
    "object": "video.generation.task",
    "progress": 100,
    "status": "completed",
    "type": "video",
    "results": [URL],
    "task_info": {"can_cancel": False},
}
FAILED: dict[str, Any] = {
    "id": TID,
    "status": "failed",
    "error": {
        "code": "video_probe_failed",
        "message": "Failed to detect video duration, please check video URL accessibility",
        "type": "task_error",
    },
}


def task(**fields: Any) -> dict[str, Any]:
    """A minimal valid processing task with some fields replaced (None removes a field)."""
    data: dict[str, Any] = {"id": TID, "status": "processing"}
    for key, value in fields.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def test_documented_submit_response() -> None:
    snap = parse_task(SUBMIT_RESPONSE)
    assert snap == TaskSnapshot(
        task_id=TID,
        status="pending",
        progress=0,
        estimated_time=600.0,
        credits_reserved=28.8,
        credits_used=None,
        result_url=None,
        error_code=None,
        error_message=None,
        created=1757169743,
    )
    assert snap.known and not snap.final


@pytest.mark.parametrize(
    "extra",
    [
        {"results": [URL]},
        {"result_urls": [URL]},
        {"result_data": [{"video_url": URL}]},
        {"result_data": [{"url": URL}]},
        {"result_data": [{"video_url": None}, {"url": URL}]},
        {"results": [], "result_urls": [URL]},
        {"results": URL},  # a bare string instead of a list
    ],
    ids=[
        "results",
        "result_urls",
        "result_data.video_url",
        "result_data.url",
        "second_item",
        "fallback",
        "str",
    ],
)
def test_completed_result_shapes(extra: dict[str, Any]) -> None:
    snap = parse_task({**task(status="completed", progress=100), **extra})
    assert snap.result_url == URL
    assert snap.status == "completed" and snap.final and snap.known


def test_documented_completed_shape() -> None:
    snap = parse_task(COMPLETED)
    assert (snap.result_url, snap.progress, snap.status) == (URL, 100, "completed")


def test_results_preferred_over_other_shapes() -> None:
    other = "https://other.example/x.mp4"
    snap = parse_task(
        task(status="completed", results=[URL], result_urls=[other], result_data=[{"url": other}])
    )
    assert snap.result_url == URL


@pytest.mark.parametrize(
    ("usage", "reserved", "used"),
    [
        ({"credits_reserved": 28.8, "credits_used": 14.4}, 28.8, 14.4),
        ({"credits_reserved": 28.8, "cost": {"credits": 12}}, 28.8, 12.0),
        ({"credits_used": 3, "cost": {"credits": 99}}, None, 3.0),
        ({"credits_used": "3", "cost": {"credits": True}}, None, None),
        ({"credits_reserved": -1, "credits_used": math.nan}, None, None),
        ({"cost": "free"}, None, None),
        ("not an object", None, None),
    ],
)
def test_credits(usage: object, reserved: float | None, used: float | None) -> None:
    snap = parse_task(task(status="completed", results=[URL], usage=usage))
    assert (snap.credits_reserved, snap.credits_used) == (reserved, used)


def test_failed_task() -> None:
    snap = parse_task(FAILED)
    assert snap.status == "failed" and snap.final
    assert snap.error_code == "video_probe_failed"
    assert snap.error_message is not None and snap.error_message.startswith("Failed to detect")
    assert snap.result_url is None


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        ({"code": 500, "message": "boom"}, "500", "boom"),
        ({"code": True, "message": 7}, None, None),
        ({"code": "  "}, None, None),
        ("plain text error", None, "plain text error"),
        (["not", "a", "dict"], None, None),
        ({"code": "x", "message": "m" * 1000}, "x", "m" * 299 + "…"),
    ],
)
def test_error_field_is_defensive(error: object, code: str | None, message: str | None) -> None:
    snap = parse_task(task(status="failed", error=error))
    assert (snap.error_code, snap.error_message) == (code, message)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("canceled", "cancelled"),
        ("cancelled", "cancelled"),
        ("CANCELED", "cancelled"),
        (" Processing ", "processing"),
        ("COMPLETED", "completed"),
    ],
)
def test_status_normalised(raw: str, expected: str) -> None:
    snap = parse_task(task(status=raw, results=[URL]))
    assert snap.status == expected and snap.known


def test_cancelled_is_final() -> None:
    snap = parse_task(task(status="canceled"))
    assert snap.final and snap.result_url is None


def test_unknown_status_kept() -> None:
    snap = parse_task(task(status="queued_for_gpu"))
    assert snap.status == "queued_for_gpu"
    assert not snap.known and not snap.final


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        (0, 0),
        (55, 55),
        (99.9, 99),
        (150, 100),
        (-5, 0),
        ("50", None),
        (None, None),
        (True, None),
        (False, None),
        (math.nan, None),
        (math.inf, None),
        ([50], None),
    ],
)
def test_progress_clamped_and_type_checked(progress: object, expected: int | None) -> None:
    assert parse_task(task(progress=progress)).progress == expected


@pytest.mark.parametrize(
    ("task_info", "expected"),
    [
        ({"estimated_time": 600}, 600.0),
        ({"estimated_time": 12.5}, 12.5),
        ({"estimated_time": -1}, None),
        ({"estimated_time": True}, None),
        ({"estimated_time": "600"}, None),
        ({"estimated_time": math.inf}, None),
        ([], None),
    ],
)
def test_estimated_time(task_info: object, expected: float | None) -> None:
    assert parse_task(task(task_info=task_info)).estimated_time == expected


@pytest.mark.parametrize(
    ("created", "expected"), [(1757169743, 1757169743), (1757169743.7, 1757169743), (True, None), ("1", None)]
)
def test_created(created: object, expected: int | None) -> None:
    assert parse_task(task(created=created)).created == expected


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        [SUBMIT_RESPONSE],
        "task",
        42,
        3.5,
        True,
        task(id=None),
        task(status=None),
        task(id=123),
        task(id=""),
        task(id="has space"),
        task(id="../../etc/passwd"),
        task(id="x" * 201),
        task(id=True),
        task(status=5),
        task(status=""),
        task(status="   "),
        task(status="x" * 65),
        task(status=["completed"]),
    ],
)
def test_malformed_raises_evolink_error(data: object) -> None:
    with pytest.raises(EvolinkError) as info:
        parse_task(data)
    assert info.value.kind is ErrorKind.MALFORMED
    assert info.value.retryable


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"results": []},
        {"results": [None, 5, "", "ftp://cdn.example/x.mp4", "/relative/x.mp4", "https://"]},
        {"result_urls": "javascript:alert(1)"},
        {"result_data": [{"video_url": "file:///etc/passwd"}, "nope", 3]},
        {"results": ["https://cdn.example/has space.mp4"]},
        {"results": {"url": URL}},
    ],
)
def test_completed_without_deliverable_url_is_malformed(extra: dict[str, Any]) -> None:
    with pytest.raises(EvolinkError) as info:
        parse_task({**task(status="completed"), **extra})
    assert info.value.kind is ErrorKind.MALFORMED
    assert "no http(s) result URL" in info.value.message


def test_non_http_results_skipped() -> None:
    snap = parse_task(task(status="completed", results=["ftp://cdn.example/x.mp4", 5, URL]))
    assert snap.result_url == URL
    snap = parse_task(task(status="completed", results=["s3://bucket/x.mp4"], result_data=[{"url": URL}]))
    assert snap.result_url == URL


def test_unknown_fields_ignored_and_http_allowed() -> None:
    plain = "http://cdn.example/x.mp4"
    snap = parse_task(task(status="completed", results=[plain], surprise={"a": [1, 2]}, model=None))
    assert snap.result_url == plain


class _Exploding(dict[str, Any]):
    """A dict whose .get blows up: the parser must still only raise EvolinkError."""

    def get(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")


def test_parser_never_raises_other_exceptions() -> None:
    with pytest.raises(EvolinkError) as info:
        parse_task(_Exploding(id=TID, status="pending"))
    assert info.value.kind is ErrorKind.MALFORMED


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("60", 60.0),
        ("0.2", 0.2),
        ("-1", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(30.0)
    earlier = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(earlier, now=now.timestamp()) == 0.0


def test_error_str_and_retryable() -> None:
    err = EvolinkError(
        ErrorKind.NO_CREDITS, "Insufficient credits", status=402, code="insufficient_quota", request_id="r-1"
    )
    assert str(err) == "HTTP 402 insufficient_quota: Insufficient credits (request id r-1)"
    assert not err.retryable
    assert EvolinkError(ErrorKind.TIMEOUT).retryable
    assert str(EvolinkError(ErrorKind.TIMEOUT, "slow")) == "timeout: slow"
    assert len(EvolinkError(ErrorKind.SERVER, "x" * 5000).message) <= 300
