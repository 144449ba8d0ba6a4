"""Everything a member reads: the task card, result and failure posts, and error wording.

Kept in one place so the wording is consistent and the services stay free of presentation.
"""

from __future__ import annotations

import time

import discord

from bot.evolink import ErrorKind, EvolinkError
from storage import TaskRecord

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
        return f"the provider reported: {task.error_message[:200]}"
    return "the provider reported an error without details."


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
    if task.status in ("pending", "processing"):
        embed.add_field(name="Progress", value=progress_bar(task.progress), inline=False)
        if task.estimated_time and task.submitted_at:
            eta = int(task.submitted_at + task.estimated_time)
            embed.add_field(
                name="Estimated time",
                value=f"about {_duration(task.estimated_time)} (done <t:{eta}:R>)",
                inline=False,
            )
    elif task.status == "completed" and task.result_url:
        embed.add_field(name="Result", value=f"[Download]({task.result_url}) · {expiry_note(task)}", inline=False)
    elif task.final:
        embed.add_field(name="Why", value=failure_reason(task), inline=False)
    embed.add_field(name="Source", value=_clip(task.source_label, 200), inline=False)
    embed.set_footer(text=f"Task {task.display_id}")
    return embed


def expiry_note(task: TaskRecord) -> str:
    finished = int(task.finished_at or time.time())
    return f"the link expires <t:{finished + RESULT_LIFETIME_SECONDS}:R> (24 hours after completion)"


def outcome_text(task: TaskRecord, *, mention: bool, dm_refused: bool = False) -> str:
    """The result or failure message, for the channel (mention=True) or the DM."""
    who = f"<@{task.user_id}> " if mention else ""
    if task.status == "completed" and task.result_url:
        lines = [
            f"{who}your upscale `{task.display_id}` ({task.scale}×, {_clip(task.source_label, 80)}) is ready:",
            task.result_url,
            f"Download it soon: {expiry_note(task)}.",
        ]
    else:
        verb = {"cancelled": "was cancelled", "expired": "expired"}.get(task.status, "failed")
        lines = [
            f"{who}your upscale `{task.display_id}` ({_clip(task.source_label, 80)}) {verb}: {failure_reason(task)}",
            "Failed jobs are not charged.",
        ]
    if dm_refused:
        lines.append("I couldn't DM you; enable DMs from server members to get them.")
    return "\n".join(lines)


def submission_error(error: EvolinkError) -> str:
    """The private reply when the paid POST did not create a task."""
    match error.kind:
        case ErrorKind.BAD_REQUEST:
            return ("The upscale service refused this video"
                    f"{': ' + _clip(error.message, 150) if error.message else ''}. "
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


def task_line(task: TaskRecord) -> str:
    """One line of /tasks."""
    parts = [f"`{task.display_id}`", status_label(task.status)]
    if task.status in ("pending", "processing"):
        parts.append(f"{task.progress}%")
    parts.append(f"{task.scale}×")
    parts.append(f"started <t:{int(task.created_at)}:R>")
    if task.status == "completed" and task.result_url:
        parts.append(f"[result]({task.result_url})")
    return " · ".join(parts)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
