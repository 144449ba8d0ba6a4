"""A loopback fake of the Evolink API, following /work/shared/evolink-*.md, for tests and the sandbox run.

Tests drive task progress explicitly (set_progress/complete/fail/...) and inject faults (rate limits,
5xx, timeouts, broken bodies); with ``auto_complete_after`` tasks finish on their own for a demo.
Task callbacks (callback_url) live in sandbox/fake_evolink_callbacks.py.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import random
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from sandbox.fake_evolink_callbacks import CallbackMixin, RecordedCallback, callback_url_problem
from storage import ACTIVE_STATUSES

__all__ = ["FakeEvolink", "FakeTask", "RecordedCallback", "RecordedRequest"]

MODEL = "topaz-video-upscale"
TASK_PATH = "/v1/tasks/"
SUBMIT_PATH = "/v1/videos/generations"
CREDITS_PATH = "/v1/credits"

# fault -> (HTTP status, error.code, error.type, message)
_ERROR_FAULTS: dict[str, tuple[int, int | str, str, str]] = {
    "rate_limit": (429, "rate_limit_exceeded", "rate_limit_error", "Too many requests, please slow down"),
    "server_error": (503, 503, "service_unavailable_error", "Service temporarily unavailable"),
    "not_found": (404, 404, "not_found_error", "Task not found or expired"),
    "bad_request": (400, 400, "invalid_request_error", "Invalid request"),
    "unauthorized": (401, 401, "authentication_error", "Invalid or expired API key"),
    "no_credits": (402, "insufficient_quota", "insufficient_quota_error", "Insufficient credits"),
    "forbidden": (403, 403, "permission_error", "This key may not use this model"),
    "too_large": (413, 413, "request_too_large_error", "Input too large"),
}
_OTHER_FAULTS = frozenset({"timeout", "malformed_json", "html_error", "unknown_status"})
_CURRENT_FAULT: contextvars.ContextVar[str | None] = contextvars.ContextVar("fake_fault", default=None)
_SERVER_TYPES = {500: "internal_server_error", 502: "upstream_error", 503: "service_unavailable_error"}


@dataclass
class FakeTask:
    """One upstream task as the fake keeps it."""

    id: str
    video_url: str
    scale: str
    status: str = "pending"
    progress: int = 0
    results: list[str] = field(default_factory=list)
    result_shape: str = "results"
    error: dict[str, Any] | None = None
    created: int = 0
    created_at: float = 0.0  # monotonic, for auto_complete_after
    credits_reserved: float = 0.0
    credits_used: float | None = None
    expired: bool = False
    manual: bool = False  # a test set the state: auto-completion leaves it alone
    callback_url: str | None = None
    callback_status: str | None = None  # the final status a callback last went out for


@dataclass
class RecordedRequest:
    """One request as received (never its headers, so never the key) and the status it got."""

    method: str
    path: str
    status: int | None
    json: Any
    at: float


@dataclass
class _Fault:
    fault: str
    times: int
    on: str
    status: int | None
    retry_after: float | None
    task_id: str | None


class FakeEvolink(CallbackMixin):
    """An aiohttp.web server on 127.0.0.1 that answers like Evolink (and calls tasks' callback_url back)."""

    def __init__(
        self,
        *,
        api_key: str = "sk-fake-evolink",
        estimated_time: int = 600,
        credits_per_task: float = 28.8,
        auto_complete_after: float | None = None,
        hang_seconds: float = 5.0,
        fault_rate: float = 0.0,
        fault_seed: int = 0,
        callback_routes: dict[str, str] | None = None,
        callback_retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0),
        callback_timeout: float = 10.0,
        task_id_prefix: str = "task-unified",
    ) -> None:
        self._api_key = api_key
        self.task_id_prefix = task_id_prefix  # long prefixes test ids near the 200 characters the bot accepts
        self.estimated_time = estimated_time
        self.credits_per_task = credits_per_task
        self.auto_complete_after = auto_complete_after
        self.hang_seconds = hang_seconds
        # The account's balance as GET /v1/credits answers it; tests set these (a POST takes its credits from
        # remaining_credits), or `credits_answer` to answer any body at all (200) instead.
        self.remaining_credits = 10_000.0
        self.used_credits = 0.0
        self.unlimited_credits = False
        self.credits_answer: Any = None
        self.base_url = ""
        self.tasks: dict[str, FakeTask] = {}
        self.requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._created = 0
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._changed = asyncio.Event()
        # Random faults on task queries (for fault campaigns), and the check that Retry-After is honoured.
        self.fault_rate = fault_rate
        self._fault_rng = random.Random(fault_seed)
        self.random_faults: dict[str, int] = {}
        self._not_before: dict[str, float] = {}
        self.early_retries = 0
        self._init_callbacks(callback_routes, callback_retry_delays, callback_timeout)

    @property
    def api_key(self) -> str:
        """The key the fake accepts (a fake one: the sandbox hands it to the bot under test)."""
        return self._api_key

    def __repr__(self) -> str:
        return f"FakeEvolink(base_url={self.base_url!r}, tasks={len(self.tasks)})"

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Serve on 127.0.0.1 at a free port; base_url says where."""
        self._closing.clear()
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post(SUBMIT_PATH, self._submit)
        app.router.add_get(TASK_PATH + "{task_id}", self._query)
        app.router.add_get(CREDITS_PATH, self._credits)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        await self._sender.start()
        self._timers.start(asyncio.get_running_loop())

    async def close(self) -> None:
        """Stop serving; releases handlers held by a simulated timeout first, so it never hangs."""
        self._closing.set()
        self._timers.close()
        await self._sender.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # --- inspection ------------------------------------------------------------------------------
    def submissions(self) -> int:
        return self._created

    def credit_reads(self) -> int:
        """GET /v1/credits requests received (answered or not)."""
        return sum(r.method == "GET" and r.path == CREDITS_PATH for r in self.requests)

    def queries(self, task_id: str | None = None) -> int:
        if task_id is None:
            return sum(r.method == "GET" and r.path.startswith(TASK_PATH) for r in self.requests)
        return sum(r.method == "GET" and r.path == TASK_PATH + task_id for r in self.requests)

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10) -> Any:
        """Return predicate()'s first truthy value, re-checked on every request and state change."""
        async with asyncio.timeout(timeout):
            while True:
                event = self._changed
                value = predicate()
                if inspect.isawaitable(value):
                    value = await value
                if value:
                    return value
                await event.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # --- the test's commands ---------------------------------------------------------------------
    def _task(self, task_id: str) -> FakeTask:
        task = self.tasks[task_id]
        task.manual = True
        return task

    def set_progress(self, task_id: str, progress: int) -> None:
        task = self._task(task_id)
        task.status, task.progress = "processing", progress
        self._task_changed(task)

    def complete(
        self,
        task_id: str,
        url: str | None = None,
        *,
        shape: str = "results",
        credits_used: float | None = None,
    ) -> None:
        if shape not in ("results", "result_urls", "result_data"):
            raise ValueError(f"unknown result shape {shape!r}")
        task = self._task(task_id)
        task.status, task.progress, task.result_shape = "completed", 100, shape
        task.results = [url or f"https://cdn.evolink.ai/sample/{task_id}.mp4"]
        task.credits_used = task.credits_reserved if credits_used is None else credits_used
        self._task_changed(task)

    def fail(
        self,
        task_id: str,
        code: str = "video_probe_failed",
        message: str = "Failed to detect video duration, please check video URL accessibility",
    ) -> None:
        task = self._task(task_id)
        task.status = "failed"
        task.error = {"code": code, "message": message, "type": "task_error"}
        self._refund(task)
        self._task_changed(task)

    def cancel(self, task_id: str, spelling: str = "cancelled") -> None:
        task = self._task(task_id)
        task.status = spelling
        self._refund(task)
        self._task_changed(task)

    def expire(self, task_id: str) -> None:
        self._task(task_id).expired = True
        self._notify()

    def set_status(self, task_id: str, status: str) -> None:
        task = self._task(task_id)
        task.status = status
        self._task_changed(task)

    def set_api_key(self, key: str) -> None:
        self._api_key = key

    def inject(
        self,
        fault: str,
        *,
        times: int = 1,
        on: str = "query",
        status: int | None = None,
        retry_after: float | None = None,
        task_id: str | None = None,
    ) -> None:
        if fault not in _ERROR_FAULTS and fault not in _OTHER_FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        if on not in ("query", "submit", "credits", "any"):
            raise ValueError(f"unknown target {on!r}")
        self._faults.append(_Fault(fault, times, on, status, retry_after, task_id))

    def _refund(self, task: FakeTask) -> None:
        self.remaining_credits += task.credits_reserved
        self.used_credits -= task.credits_reserved

    def _random_fault(self) -> _Fault:
        """One of the faults a flaky upstream shows, for a query hit by `fault_rate`."""
        kind, status, retry_after = self._fault_rng.choice([
            ("rate_limit", None, 0.5), ("server_error", 503, None), ("server_error", 502, None),
            ("timeout", None, None), ("malformed_json", None, None), ("unknown_status", None, None),
        ])
        self.random_faults[kind] = self.random_faults.get(kind, 0) + 1
        return _Fault(kind, 1, "query", status, retry_after, None)

    # --- HTTP ------------------------------------------------------------------------------------
    def _take_fault(self, target: str, task_id: str | None) -> _Fault | None:
        for fault in self._faults:
            if fault.times <= 0 or fault.on not in (target, "any"):
                continue
            if fault.task_id is not None and fault.task_id != task_id:
                continue
            fault.times -= 1
            return fault
        return None

    @staticmethod
    def _error(status: int, code: int | str, type_: str, message: str, **headers: str) -> web.Response:
        body = {"error": {"code": code, "message": message, "type": type_}}
        return web.json_response(body, status=status, headers=headers)

    def _fault_response(self, fault: _Fault, request_id: str) -> web.Response | None:
        if fault.fault == "malformed_json":
            broken = '{"id": "task-unified-1", "status": '
            return web.Response(status=200, text=broken, content_type="application/json")
        if fault.fault == "html_error":
            html = "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
            return web.Response(status=502, text=html, content_type="text/html")
        if fault.fault not in _ERROR_FAULTS:
            return None
        status, code, type_, message = _ERROR_FAULTS[fault.fault]
        headers: dict[str, str] = {}
        if fault.fault == "server_error":
            status = fault.status or status
            code, type_ = status, _SERVER_TYPES.get(status, "server_error")
            message = f"Upstream error (request id: {request_id})"
        elif fault.status is not None:
            status = fault.status
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        return self._error(status, code, type_, message, **headers)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        request_id = secrets.token_hex(8)
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest(request.method, request.path, None, body, time.monotonic())
        self.requests.append(record)
        self._notify()

        target = "other"
        task_id = None
        if request.method == "POST" and request.path == SUBMIT_PATH:
            target = "submit"
        elif request.method == "GET" and request.path.startswith(TASK_PATH):
            target, task_id = "query", request.path[len(TASK_PATH) :]
        elif request.method == "GET" and request.path == CREDITS_PATH:
            target = "credits"
        fault = self._take_fault(target, task_id)
        if fault is None and target == "query" and self._fault_rng.random() < self.fault_rate:
            fault = self._random_fault()
        if task_id is not None and record.at < self._not_before.get(task_id, 0.0):
            self.early_retries += 1
        _CURRENT_FAULT.set(fault.fault if fault else None)  # the handler runs in this same task

        response = self._fault_response(fault, request_id) if fault else None
        if response is None:
            presented = request.headers.get("Authorization", "")
            if presented != f"Bearer {self._api_key}":
                # A careless gateway echoes what it got: the client must redact it.
                shown = presented or "no Authorization header"
                response = self._error(401, 401, "authentication_error", f"Invalid token: {shown}")
            else:
                try:
                    response = await handler(request)
                except web.HTTPException as exc:
                    type_ = "not_found_error" if exc.status == 404 else "invalid_request_error"
                    response = self._error(exc.status, exc.status, type_, exc.reason)
        if fault is not None and fault.fault == "timeout":
            # Hold the (already decided) answer past the client's timeout; released at close().
            try:
                await asyncio.wait_for(self._closing.wait(), self.hang_seconds)
            except TimeoutError:
                pass
        response.headers["x-request-id"] = request_id
        if task_id is not None and "Retry-After" in response.headers:
            self._not_before[task_id] = time.monotonic() + float(response.headers["Retry-After"])
        record.status = response.status
        self._notify()
        return response

    def _render(self, task: FakeTask, *, advance: bool = True, faults: bool = True) -> dict[str, Any]:
        """The documented task JSON for the task's current state (a callback's body: faults=False)."""
        if advance:
            self._auto_advance(task)
            self._settled(task)
        body: dict[str, Any] = {
            "created": task.created,
            "id": task.id,
            "model": MODEL,
            "object": "video.generation.task",
            "progress": task.progress,
            "status": task.status,
            "type": "video",
            "task_info": {"can_cancel": task.status in ACTIVE_STATUSES},
            "usage": {
                "billing_rule": "per_second",
                "credits_reserved": task.credits_reserved,
                "user_group": "default",
            },
        }
        if task.status in ACTIVE_STATUSES:
            body["task_info"].update(estimated_time=self.estimated_time, video_duration=0)
        if task.status == "completed":
            if task.result_shape == "result_data":
                body["result_data"] = [{"video_url": url} for url in task.results]
            else:
                body[task.result_shape] = list(task.results)
        if task.credits_used is not None:
            body["usage"]["credits_used"] = task.credits_used
        if task.error is not None:
            body["error"] = dict(task.error)
        if faults and _CURRENT_FAULT.get() == "unknown_status":
            body["status"] = "mystery_state"
        return body

    def _auto_advance(self, task: FakeTask) -> None:
        after = self.auto_complete_after
        if after is None or task.manual or task.status not in ACTIVE_STATUSES:
            return
        elapsed = time.monotonic() - task.created_at
        if elapsed >= after:
            task.status, task.progress = "completed", 100
            task.results = [f"https://cdn.evolink.ai/sample/{task.id}.mp4"]
            task.credits_used = task.credits_reserved
        elif elapsed > 0:
            task.status, task.progress = "processing", min(99, int(elapsed / after * 100))

    async def _submit(self, request: web.Request) -> web.Response:
        try:
            data = json.loads(await request.read())
        except ValueError:
            return self._error(400, 400, "invalid_request_error", "Request body is not valid JSON")
        problem = _validate_submit(data)
        if problem:
            return self._error(400, 400, "invalid_request_error", problem)
        now = int(time.time())
        suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
        task = FakeTask(
            id=f"{self.task_id_prefix}-{now}-{suffix}",
            video_url=data["video_urls"][0],
            scale=str(_dict(data.get("model_params")).get("upscale_factor", "2")),
            created=now,
            created_at=time.monotonic(),
            credits_reserved=self.credits_per_task,
            callback_url=data.get("callback_url"),
        )
        self.tasks[task.id] = task
        self._created += 1
        self.remaining_credits -= task.credits_reserved
        self.used_credits += task.credits_reserved
        self._on_created(task)
        body = self._render(task, advance=False)
        body["task_info"] = {"can_cancel": True, "estimated_time": self.estimated_time, "video_duration": 0}
        return web.json_response(body)

    async def _query(self, request: web.Request) -> web.Response:
        task = self.tasks.get(request.match_info["task_id"])
        if task is None or task.expired:
            return self._error(404, 404, "not_found_error", "Task not found or expired")
        return web.json_response(self._render(task))

    async def _credits(self, request: web.Request) -> web.Response:
        if self.credits_answer is not None:
            return web.json_response(self.credits_answer)
        token = {
            "remaining_credits": self.remaining_credits,
            "unlimited_credits": self.unlimited_credits,
            "used_credits": self.used_credits,
        }
        return web.json_response({"data": {"token": token, "user": {"id": "fake-user"}}, "success": True})


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _validate_submit(data: object) -> str | None:
    """The documented input rules; returns the 400 message, or None when the body is acceptable."""
    if not isinstance(data, dict):
        return "Request body must be a JSON object"
    if data.get("model") != MODEL:
        return f"Invalid model: {data.get('model')!r}"
    urls = data.get("video_urls")
    if not isinstance(urls, list) or len(urls) != 1 or not isinstance(urls[0], str):
        return "video_urls must be an array with exactly one URL"
    parts = urlsplit(urls[0])
    if parts.scheme != "https" or not parts.netloc or not parts.path.lower().endswith(".mp4"):
        return "video_urls[0] must be an https URL of an .mp4 file"
    params = data.get("model_params", {})
    if not isinstance(params, dict):
        return "model_params must be an object"
    if "upscale_factor" in params and params["upscale_factor"] not in ("1", "2", "4"):
        return 'model_params.upscale_factor must be one of "1", "2", "4"'
    if "callback_url" in data and data["callback_url"] is not None:
        return callback_url_problem(data["callback_url"])
    return None
