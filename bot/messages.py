"""Everything a member reads: the task card, result and failure posts, and error wording.

Kept in one place so the wording is consistent and the services stay free of presentation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import discord

from bot.evolink import ErrorKind, EvolinkError
from bot.text import CONTENT_MAX, EMBED_DESCRIPTION_MAX, LINK_BUTTON_URL_MAX, clip, fit_embed, fit_lines
from storage import ACTIVE_STATUSES, TaskRecord

RESULT_LIFETIME_SECONDS = 24 * 3600

_STATUS_LABEL = {
    "submitting": "⏳ Submitting",
    "pending": "🕒 Queued",
    "processing": "⚙️ Processing",
    "completed": "✅ Completed",
    "failed": "❌ Failed",
    "cancelled": "🚫 Cancelled",
    "expired": "⌛ Expired",
}
_STATUS_COLOUR = {
    "completed": discord.Colour.green(),
    "failed": discord.Colour.red(),
    "cancelled": discord.Colour.dark_grey(),
    "expired": discord.Colour.dark_grey(),
}

# Upstream task error codes (evolink-task-query.md), in words a member understands.
_TASK_ERRORS = {
    "content_policy_violation": "the provider refused this video under its content policy.",
    "invalid_parameters": "the provider refused the job's settings.",
    "video_probe_failed": "the provider could not read the video. Check that the link is public and is an "
    ".mp4 file, then try again.",
    "resource_not_found": "the provider could not find a video at that link. Check that it is public.",
    "request_cancelled": "the job was cancelled at the provider.",
    "generation_timeout": "the upscale took too long at the provider. Please try again later.",
    "quota_exceeded": "the provider is out of capacity right now. Please try again later.",
    "resource_exhausted": "the provider is out of capacity right now. Please try again later.",
    "service_error": "the provider had an internal error. Please try again later.",
    "service_unavailable": "the provider was unavailable. Please try again later.",
    "unknown_error": "the provider hit an unknown error. Please try again later.",
    "upstream_unreadable": "the provider's answers about this job could not be read, so the bot stopped "
    "following it. Please try again later.",
    "bot_restarted": "the bot restarted while sending your job, before the provider confirmed it. "
    "Please run /upscale again.",
}


def progress_bar(progress: int, width: int = 20) -> str:
    progress = max(0, min(100, progress))
    filled = round(width * progress / 100)
    return f"`{'█' * filled}{'░' * (width - filled)}` {progress}%"


def status_label(status: str) -> str:
    return _STATUS_LABEL.get(status, status)


def failure_reason(task: TaskRecord) -> str:
    """Why a task did not produce a video, for the member."""
    if task.status == "expired":
        return "the provider no longer knows this task (it expired before the bot could collect the result)."
    if task.status == "cancelled":
        return "the job was cancelled at the provider."
    if task.error_code in _TASK_ERRORS:
        return _TASK_ERRORS[task.error_code]
    if task.error_message:
        return f"the provider reported: {clip(task.error_message, 200)}"
    return "the provider reported an error without details."


# A link up to this long reaches the member whole and clickable (in the message text when the whole message
# fits Discord's 2,000 characters, else in an embed). A longer one cannot be shown on Discord at all.
RESULT_LINK_MAX = CONTENT_MAX


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to send: its text, and an embed when the result link does not fit in the text."""

    content: str
    embed: discord.Embed | None = None
    button_url: str | None = None  # a "Download" link button, when the link fits one (512 characters)


def link_too_long(task: TaskRecord) -> bool:
    return task.status == "completed" and len(task.result_url or "") > RESULT_LINK_MAX


def _link(url: str, label: str) -> str:
    """A masked link where markdown can carry it safely, else the bare URL (Discord makes it clickable)."""
    if any(ch in url for ch in "()[]<> ") or len(url) > 1000:
        return url
    return f"[{label}]({url})"


def _too_long_note(task: TaskRecord) -> str:
    return (f"the provider's download link is {len(task.result_url or ''):,} characters long, more than Discord "
            f"can show. Ask the bot's operator for the result of task #{task.id}")


def task_card(task: TaskRecord) -> discord.Embed:
    """The embed shown as the reply to /upscale and kept up to date while the job runs."""
    embed = discord.Embed(
        title=f"Upscale {task.display_id}",
        colour=_STATUS_COLOUR.get(task.status, discord.Colour.blurple()),
    )
    embed.add_field(name="Status", value=status_label(task.status), inline=True)
    embed.add_field(name="Scale", value=f"{task.scale}×", inline=True)
    if task.credits_reserved is not None:
        embed.add_field(name="Credits reserved", value=f"{task.credits_reserved:g}", inline=True)
    if task.status in ACTIVE_STATUSES:
        embed.add_field(name="Progress", value=progress_bar(task.progress), inline=False)
        if task.estimated_time and task.submitted_at:
            eta = int(task.submitted_at + task.estimated_time)
            embed.add_field(
                name="Estimated time",
                value=f"about {_duration(task.estimated_time)} (done <t:{eta}:R>)",
                inline=False,
            )
    elif link_too_long(task):
        embed.description = f"**Result:** {_too_long_note(task)}."
    elif task.status == "completed" and task.result_url:
        # In the description (4,096 characters), not a field (1,024): a long link must stay whole.
        embed.description = f"**Result:** {_link(task.result_url, 'Download')}\n{expiry_note(task)}"
    elif task.final:
        embed.add_field(name="Why", value=failure_reason(task), inline=False)
    embed.add_field(name="Source", value=clip(task.source_label, 200), inline=False)
    embed.set_footer(text=f"Task {task.display_id}")
    return fit_embed(embed)


def expiry_note(task: TaskRecord) -> str:
    finished = int(task.finished_at or time.time())
    return f"the link expires <t:{finished + RESULT_LIFETIME_SECONDS}:R> (24 hours after completion)"


def outcome_message(task: TaskRecord, *, mention: bool, dm_refused: bool = False) -> Outgoing:
    """The result or failure message, for the channel (mention=True) or the DM.

    The result link goes in the text (Discord previews it) when the whole message fits 2,000 characters,
    else in an embed's description; a link longer than RESULT_LINK_MAX is explained instead of sent.
    """
    who = f"<@{task.user_id}> " if mention else ""
    what = f"your upscale `{task.display_id}` ({task.scale}×, {clip(task.source_label, 80)})"
    refused = ["I couldn't DM you; enable DMs from server members to get them."] if dm_refused else []
    if link_too_long(task):
        lines = [f"{who}{what} is ready, but {_too_long_note(task)}.", f"Download it soon: {expiry_note(task)}."]
        return Outgoing(clip("\n".join(lines + refused), CONTENT_MAX))
    if task.status == "completed" and task.result_url:
        url = task.result_url
        lines = [f"{who}{what} is ready:", url, f"Download it soon: {expiry_note(task)}."]
        content = "\n".join(lines + refused)
        if len(content) <= CONTENT_MAX:
            # The link stays in the text (Discord's player preview) and gets a button where one can carry it.
            return Outgoing(content, button_url=url if len(url) <= LINK_BUTTON_URL_MAX else None)
        embed = discord.Embed(title="Your upscaled video", description=f"{url}\n{expiry_note(task)}",
                              colour=discord.Colour.green())
        lines = [f"{who}{what} is ready: the link is below.", "Download it soon: it expires 24 hours after completion."]
        return Outgoing(clip("\n".join(lines + refused), CONTENT_MAX), fit_embed(embed))
    lines = [f"{who}{what} {_ended(task)}: {failure_reason(task)}", "Failed jobs are not charged."]
    return Outgoing(clip("\n".join(lines + refused), CONTENT_MAX))


def minimal_outcome(task: TaskRecord, *, mention: bool) -> Outgoing:
    """The fallback when Discord refused the full message (400): our own words and the link only."""
    who = f"<@{task.user_id}> " if mention else ""
    if task.status == "completed" and task.result_url and not link_too_long(task):
        text = f"{who}your upscale #{task.id} is ready:\n{task.result_url}"
        if len(text) <= CONTENT_MAX:
            return Outgoing(text)
        return Outgoing(f"{who}your upscale #{task.id} is ready; /task id:#{task.id} shows the link.")
    if task.status == "completed":
        return Outgoing(f"{who}your upscale #{task.id} is ready; ask the bot's operator for its link.")
    return Outgoing(f"{who}your upscale #{task.id} {_ended(task)}; /task id:#{task.id} shows why.")


def _ended(task: TaskRecord) -> str:
    return {"cancelled": "was cancelled", "expired": "expired"}.get(task.status, "failed")


def submission_error(error: EvolinkError) -> str:
    """The private reply when the paid POST did not create a task."""
    match error.kind:
        case ErrorKind.BAD_REQUEST:
            return ("The upscale service refused this video"
                    f"{': ' + clip(error.message, 150) if error.message else ''}. "
                    "Check that it is a public .mp4 link and try again.")
        case ErrorKind.AUTH | ErrorKind.FORBIDDEN:
            return ("The bot is misconfigured: the upscale service refused its API key. This is not your "
                    "fault and nothing was charged; the bot's operator has been told.")
        case ErrorKind.NO_CREDITS:
            return ("The bot's upscale account is out of credits. This is not your fault; the bot's operator "
                    "has been told. Please try again later.")
        case ErrorKind.TOO_LARGE:
            return "That video is too large for the upscale service (the limit is 50 MB)."
        case ErrorKind.RATE_LIMITED:
            return "The upscale service is busy right now. Please try again in a minute."
        case ErrorKind.TIMEOUT:
            return ("The upscale service did not answer in time, so the job was not started on our side. "
                    "Please try again in a few minutes.")
        case ErrorKind.SERVER | ErrorKind.CONNECTION:
            return "The upscale service is having trouble right now. Please try again in a few minutes."
        case _:
            return ("The upscale service gave an answer the bot did not understand. Please try again later; "
                    "the operator can see the details in the bot's log.")


def task_line(task: TaskRecord, *, with_link: bool = True) -> str:
    """One line of /tasks; without the link when the list has no room left for it."""
    parts = [f"`{task.display_id}`", status_label(task.status)]
    if task.status in ACTIVE_STATUSES:
        parts.append(f"{task.progress}%")
    parts.append(f"{task.scale}×")
    parts.append(f"started <t:{int(task.created_at)}:R>")
    if task.status == "completed" and task.result_url:
        parts.append(_link(task.result_url, "result") if with_link and not link_too_long(task)
                     else f"result: /task id:#{task.id}")
    return " · ".join(parts)


def task_list(tasks: list[TaskRecord]) -> str:
    """/tasks' description: every line with its result link while they fit 4,096 characters."""
    lines: list[str] = []
    for index, task in enumerate(tasks):
        room = EMBED_DESCRIPTION_MAX - len("\n".join(lines)) - 1
        rest = sum(len(task_line(t, with_link=False)) + 1 for t in tasks[index + 1:])
        line = task_line(task)
        if len(line) > room - rest:
            line = task_line(task, with_link=False)
        lines.append(line)
    return fit_lines(lines)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


