"""Evolink topaz-video-upscale client: submit a task, query it, read the credit balance.

Upstream answers are parsed defensively (see /work/shared/evolink-task-query.md): unknown fields are
ignored, wrong types become None, and anything we cannot act on becomes one ``EvolinkError`` with a
kind the caller can branch on. The paid POST is never retried; task queries are.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp

from bot.metrics import Metrics
from bot.numbers import finite_number
from bot.text import one_line
from storage import ACTIVE_STATUSES, UPSTREAM_FINAL_STATUSES

# fmt: off
__all__ = ["KNOWN_STATUSES", "MODEL", "CreditBalance", "ErrorKind", "EvolinkClient", "EvolinkError",
           "TaskSnapshot", "parse_credits", "parse_retry_after", "parse_task"]
# fmt: on

log = logging.getLogger("bot.evolink")

MODEL = "topaz-video-upscale"
KNOWN_STATUSES = frozenset((*ACTIVE_STATUSES, *UPSTREAM_FINAL_STATUSES))  # the statuses the docs list
SCALES = frozenset({1, 2, 4})

TASK_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,200}")  # always used with fullmatch (no trailing newline)
_MAX_MESSAGE = 300
_MAX_STATUS = 64
_MAX_URL = 8192
_BEARER_RE = re.compile(r"(?i)bearer\s+\S+")
_NOT_JSON = object()
T = TypeVar("T")


def _as_is(data: object) -> object:
    return data


class ErrorKind(enum.StrEnum):
    """What went wrong, coarse enough for the caller to pick a reaction (tell user, alert, retry)."""

    BAD_REQUEST = "bad_request"
    AUTH = "auth"
    NO_CREDITS = "no_credits"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    SERVER = "server"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    MALFORMED = "malformed"
    UNEXPECTED = "unexpected"


_RETRYABLE = frozenset(
    {ErrorKind.RATE_LIMITED, ErrorKind.SERVER, ErrorKind.TIMEOUT, ErrorKind.CONNECTION, ErrorKind.MALFORMED}
)
# MALFORMED is retryable for the caller (back off, poll later) but not retried inside one get_task call.
_RETRY_IN_CALL = _RETRYABLE - {ErrorKind.MALFORMED}
_STATUS_KINDS = {
    400: ErrorKind.BAD_REQUEST,
    401: ErrorKind.AUTH,
    402: ErrorKind.NO_CREDITS,
    403: ErrorKind.FORBIDDEN,
    404: ErrorKind.NOT_FOUND,
    413: ErrorKind.TOO_LARGE,
    429: ErrorKind.RATE_LIMITED,
}


class EvolinkError(Exception):
    """One failed Evolink call; never carries the API key (the client redacts before raising)."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str = "",
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        self.kind = ErrorKind(kind)
        self.status = status
        self.code = code
        self.message = one_line(message or f"Evolink error ({self.kind})", _MAX_MESSAGE)
        self.retry_after = retry_after
        self.request_id = request_id
        super().__init__(self.message)

    @property
    def retryable(self) -> bool:
        """True when trying again later may succeed without changing anything on our side."""
        return self.kind in _RETRYABLE

    def __str__(self) -> str:
        head = f"HTTP {self.status}" if self.status is not None else str(self.kind)
        if self.code and self.code != str(self.status):
            head += f" {self.code}"
        text = f"{head}: {self.message}"
        if self.retry_after is not None:
            text += f" (retry after {self.retry_after:g} s)"
        if self.request_id and self.request_id not in self.message:
            text += f" (request id {self.request_id})"
        return text

    def __repr__(self) -> str:
        return f"EvolinkError(kind={self.kind.value!r}, status={self.status!r}, message={self.message!r})"


@dataclass(frozen=True, slots=True)
class TaskSnapshot:
    """What one upstream answer says about a task, already validated and normalised."""

    task_id: str
    status: str
    progress: int | None
    estimated_time: float | None
    credits_reserved: float | None
    credits_used: float | None
    result_url: str | None
    error_code: str | None
    error_message: str | None
    created: int | None

    @property
    def known(self) -> bool:
        """False for a status the docs do not list: the caller keeps polling and logs it once."""
        return self.status in KNOWN_STATUSES

    @property
    def final(self) -> bool:
        return self.status in UPSTREAM_FINAL_STATUSES


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _http_url(value: object) -> str | None:
    """An absolute http(s) URL we can show as a link, else None."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if not url or len(url) > _MAX_URL or any(ch.isspace() or ord(ch) < 32 for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def _as_list(value: object) -> list[object]:
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, str | dict) else []


def _result_url(data: dict[str, Any]) -> str | None:
    """results[], then result_urls[], then result_data[].video_url|url: the first http(s) string."""
    for key in ("results", "result_urls"):
        for item in _as_list(data.get(key)):
            if url := _http_url(item):
                return url
    for item in _as_list(data.get("result_data")):
        if isinstance(item, dict):
            for key in ("video_url", "url"):
                if url := _http_url(item.get(key)):
                    return url
        elif url := _http_url(item):
            return url
    return None


def _code(value: object) -> str | None:
    """Error codes are ints in the docs and strings on the live gateway; keep both as text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return one_line(value, 100)
    return None


def _parse_task(data: object) -> TaskSnapshot:
    if not isinstance(data, dict):
        raise EvolinkError(ErrorKind.MALFORMED, f"task answer is a {type(data).__name__}, not an object")
    task_id = data.get("id")
    if not isinstance(task_id, str) or not TASK_ID_RE.fullmatch(task_id):
        raise EvolinkError(ErrorKind.MALFORMED, "task answer has no valid 'id'")
    raw_status = data.get("status")
    if not isinstance(raw_status, str) or not raw_status.strip() or len(raw_status) > _MAX_STATUS:
        raise EvolinkError(ErrorKind.MALFORMED, f"task {task_id} answer has no valid 'status'")
    status = raw_status.strip().lower()
    if status == "canceled":
        status = "cancelled"

    progress_num = finite_number(data.get("progress"), minimum=None)
    progress = None if progress_num is None else int(min(100.0, max(0.0, progress_num)))
    usage = _dict(data.get("usage"))
    credits_used = finite_number(usage.get("credits_used"), minimum=0.0)
    if credits_used is None:
        credits_used = finite_number(_dict(usage.get("cost")).get("credits"), minimum=0.0)
    created_num = finite_number(data.get("created"), minimum=0.0)

    error = data.get("error")
    error_code = error_message = None
    if isinstance(error, dict):
        error_code = _code(error.get("code"))
        msg = error.get("message")
        error_message = one_line(msg, _MAX_MESSAGE) if isinstance(msg, str) and msg.strip() else None
    elif isinstance(error, str) and error.strip():
        error_message = one_line(error, _MAX_MESSAGE)

    result_url = _result_url(data)
    if status == "completed" and result_url is None:
        raise EvolinkError(
            ErrorKind.MALFORMED, f"task {task_id} is completed but carries no http(s) result URL to deliver"
        )
    return TaskSnapshot(
        task_id=task_id,
        status=status,
        progress=progress,
        estimated_time=finite_number(_dict(data.get("task_info")).get("estimated_time"), minimum=0.0),
        credits_reserved=finite_number(usage.get("credits_reserved"), minimum=0.0),
        credits_used=credits_used,
        result_url=result_url,
        error_code=error_code,
        error_message=error_message,
        created=None if created_num is None else int(created_num),
    )


def parse_task(data: object) -> TaskSnapshot:
    """Turn a submit/query/callback body into a TaskSnapshot; anything unusable is MALFORMED."""
    try:
        return _parse_task(data)
    except EvolinkError:
        raise
    except Exception as exc:  # a parser must never crash the poller
        raise EvolinkError(ErrorKind.MALFORMED, f"unparseable task answer ({type(exc).__name__})") from None


@dataclass(frozen=True, slots=True)
class CreditBalance:
    """The provider account's balance (GET /v1/credits): the bot's whole account, shared by every server."""

    remaining: float | None  # None only when unlimited
    unlimited: bool
    used: float | None


def parse_credits(data: object) -> CreditBalance:
    """`{"data": {"token": {"remaining_credits", "unlimited_credits", "used_credits"}}}`; anything we cannot show
    as a balance (no number and not unlimited, success false) is MALFORMED."""
    if not isinstance(data, dict) or data.get("success") is False:
        raise EvolinkError(ErrorKind.MALFORMED, "credits answer is not a successful object")
    token = _dict(_dict(data.get("data")).get("token"))
    unlimited = token.get("unlimited_credits") is True
    remaining = finite_number(token.get("remaining_credits"), minimum=None)
    if remaining is None and not unlimited:
        raise EvolinkError(ErrorKind.MALFORMED, "credits answer has no numeric 'remaining_credits'")
    return CreditBalance(remaining=remaining, unlimited=unlimited,
                         used=finite_number(token.get("used_credits"), minimum=None))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds (>= 0) from delta-seconds or an HTTP date; None when absent or invalid."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            return None
        try:
            seconds = when.timestamp() - (time.time() if now is None else now)
        except (OverflowError, OSError, ValueError):
            return None
        return max(0.0, seconds)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class EvolinkClient:
    """Talks to Evolink over the process-wide aiohttp session (which it neither creates nor closes)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        *,
        request_timeout: float = 30.0,
        query_attempts: int = 3,
        backoff_base: float = 1.0,
        max_retry_wait: float = 10.0,
        max_concurrent_submits: int = 32,
        metrics: Metrics | None = None,
    ) -> None:
        self._session = session
        self.metrics = metrics or Metrics()
        # A stalled upstream holds a pooled connection per POST; capping POSTs below the session's pool size
        # (aiohttp's default is 100) keeps connections free for the task queries of jobs already running.
        self._submit_slots = asyncio.Semaphore(max(1, max_concurrent_submits))
        self._base = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._attempts = max(1, query_attempts)
        self._backoff = max(0.0, backoff_base)
        self._max_wait = max(0.0, max_retry_wait)
        # Told after every successful paid POST (the credit watch takes it as a cue to look at the balance).
        self.on_submitted: Callable[[], None] = lambda: None

    def __repr__(self) -> str:
        return f"EvolinkClient(base_url={self._base!r}, attempts={self._attempts})"

    async def submit(self, video_url: str, scale: int, callback_url: str | None = None) -> TaskSnapshot:
        """Create one paid task. Never retried: a second POST may bill a second task.

        With `callback_url`, Evolink posts the task there when it ends (a hint we confirm with get_task).
        """
        if isinstance(scale, bool) or scale not in SCALES:
            # Upstream silently falls back to "2" on a bad factor, so we refuse it here.
            raise EvolinkError(ErrorKind.BAD_REQUEST, f"upscale factor must be 1, 2 or 4, not {scale!r}")
        if not isinstance(video_url, str) or not video_url:
            raise EvolinkError(ErrorKind.BAD_REQUEST, "video URL must be a non-empty string")
        body: dict[str, object] = {"model": MODEL, "video_urls": [video_url],
                                   "model_params": {"upscale_factor": str(scale)}}
        if callback_url:
            body["callback_url"] = callback_url
        async with self._submit_slots:
            snapshot = await self._call("POST", "/v1/videos/generations", body, parse=parse_task)
        try:
            self.on_submitted()
        except Exception:  # a listener's bug must not turn a billed task into a failed submission
            log.exception("on_submitted listener failed")
        return snapshot

    async def get_task(self, task_id: str) -> TaskSnapshot:
        """Query a task, retrying transient failures within this call (it is free and idempotent)."""
        if not isinstance(task_id, str) or not TASK_ID_RE.fullmatch(task_id):
            raise EvolinkError(ErrorKind.MALFORMED, "task id has an invalid form; not queried")
        path = "/v1/tasks/" + quote(task_id, safe="")

        def parse(data: object) -> TaskSnapshot:
            snapshot = parse_task(data)
            if snapshot.task_id != task_id:
                raise EvolinkError(ErrorKind.MALFORMED, f"asked for task {task_id}, got {snapshot.task_id}")
            return snapshot

        return await self._with_retries(lambda: self._call("GET", path, parse=parse))

    async def get_credits(self) -> float | None:
        """Remaining credit balance; also a free check that the API key works."""
        def parse(data: object) -> float | None:
            if not isinstance(data, dict):
                raise EvolinkError(ErrorKind.MALFORMED, "credits answer is not an object")
            return finite_number(_dict(_dict(data.get("data")).get("token")).get("remaining_credits"), minimum=None)

        return await self._with_retries(lambda: self._call("GET", "/v1/credits", parse=parse))

    async def get_balance(self) -> CreditBalance:
        """The account's balance, unlimited included, in one attempt: whoever shows it says it could not be read
        and the next check tries again (a retry here would only keep an admin waiting)."""
        return await self._call("GET", "/v1/credits", parse=parse_credits)

    async def _with_retries(self, call: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(1, self._attempts + 1):
            try:
                return await call()
            except EvolinkError as exc:
                if exc.kind not in _RETRY_IN_CALL:
                    raise
                if exc.retry_after is not None and exc.retry_after > self._max_wait:
                    raise  # the caller reschedules with exc.retry_after
                if attempt >= self._attempts:
                    raise
                wait = min(self._backoff * 2 ** (attempt - 1), self._max_wait)
                wait *= 1 + random.uniform(0, 0.1)  # jitter only lengthens, never shortens
                if exc.retry_after is not None:
                    wait = max(wait, exc.retry_after)
                log.warning(
                    "Evolink %s (attempt %d/%d), retrying in %.2f s", exc, attempt, self._attempts, wait
                )
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _redact(self, text: str) -> str:
        """Remove our key (and any bearer token) from text that came from upstream or aiohttp."""
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return _BEARER_RE.sub("Bearer ***", text)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                    parse: Callable[[object], T] = _as_is) -> T:  # type: ignore[assignment]
        """One HTTP exchange and the reading of its answer, counted in upscale_upstream_requests_total by endpoint
        and outcome (ok, or the EvolinkError's kind: an answer we cannot use counts as malformed, not ok)."""
        endpoint = "submit" if method == "POST" else "credits" if path == "/v1/credits" else "query"
        try:
            result = parse(await self._exchange(method, path, body))
        except EvolinkError as error:
            self.metrics.upstream_request(endpoint, error.kind.value)
            raise
        self.metrics.upstream_request(endpoint, "ok")
        return result

    async def _exchange(self, method: str, path: str, body: dict[str, Any] | None) -> object:
        """One HTTP exchange; returns the decoded JSON of a 2xx answer or raises EvolinkError."""
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        started = time.monotonic()
        try:
            async with self._session.request(
                method,
                self._base + path,
                json=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                raw = await resp.read()
                status, resp_headers = resp.status, resp.headers
        except TimeoutError:
            log.debug("%s %s -> timeout after %.0f ms", method, path, (time.monotonic() - started) * 1000)
            raise EvolinkError(
                ErrorKind.TIMEOUT, f"no answer within {self._timeout.total:g} s to {method} {path}"
            ) from None
        except aiohttp.ClientError as exc:
            log.debug("%s %s -> %s", method, path, type(exc).__name__)
            detail = self._redact(f"{type(exc).__name__}: {exc}")
            raise EvolinkError(ErrorKind.CONNECTION, f"{method} {path} failed: {detail}") from None
        log.debug("%s %s -> %d in %.0f ms", method, path, status, (time.monotonic() - started) * 1000)

        request_id = resp_headers.get("x-request-id")
        request_id = one_line(self._redact(request_id), 100) if request_id else None
        try:
            data: object = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            data = _NOT_JSON
        if not 200 <= status < 300:
            raise self._http_error(status, data, resp_headers, request_id)
        if data is _NOT_JSON:
            msg = f"{method} {path} answered {status} with a body that is not JSON"
            raise EvolinkError(ErrorKind.MALFORMED, msg, status=status, request_id=request_id)
        return data

    def _http_error(self, status: int, data: object, headers: Any, request_id: str | None) -> EvolinkError:
        """Map a non-2xx answer to a kind by status; take code and message from the body when present."""
        kind = _STATUS_KINDS.get(status)
        if kind is None:
            kind = ErrorKind.SERVER if 500 <= status < 600 else ErrorKind.UNEXPECTED
        code = message = None
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            code = _code(error.get("code"))
            if isinstance(error.get("message"), str):
                message = error["message"]
        elif isinstance(error, str):
            message = error
        elif isinstance(data, dict) and isinstance(data.get("message"), str):
            message = data["message"]
        if not message:
            content_type = headers.get("Content-Type", "").split(";")[0] or "no type"
            what = "JSON" if data is not _NOT_JSON else f"non-JSON ({content_type})"
            message = f"Evolink answered HTTP {status} with a {what} error body"
        retry_after = parse_retry_after(headers.get("Retry-After")) if status in (429, 503) else None
        code = self._redact(code) if code else None
        return EvolinkError(
            kind,
            self._redact(message),
            status=status,
            code=code,
            retry_after=retry_after,
            request_id=request_id,
        )
