"""Everything a member reads: the task card, result and failure posts, and error wording, in the reader's
language (`locale`: the member's for their card, replies and DMs; the server's for the public channel post).

Kept in one place so the wording is consistent and the services stay free of presentation: they hand over
task rows and codes, and this renders them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import discord

from bot.evolink import ErrorKind, EvolinkError
from bot.i18n import Phrase, _, t
from bot.text import CONTENT_MAX, EMBED_DESCRIPTION_MAX, LINK_BUTTON_URL_MAX, clip, fit_embed, fit_lines
from bot.validation import MAX_VIDEO_BYTES
from storage import ACTIVE_STATUSES, TaskRecord

RESULT_LIFETIME_SECONDS = 24 * 3600

_STATUS_LABEL = {
    "submitting": _("⏳ Submitting"),
    "pending": _("🕒 Queued"),
    "processing": _("⚙️ Processing"),
    "completed": _("✅ Completed"),
    "failed": _("❌ Failed"),
    "cancelled": _("🚫 Cancelled"),
    "expired": _("⌛ Expired"),
}
_STATUS_COLOUR = {
    "completed": discord.Colour.green(),
    "failed": discord.Colour.red(),
    "cancelled": discord.Colour.dark_grey(),
    "expired": discord.Colour.dark_grey(),
}

# Upstream task error codes (evolink-task-query.md), in words a member understands.
_TASK_ERRORS = {
    "content_policy_violation": _("the provider refused this video under its content policy."),
    "invalid_parameters": _("the provider refused the job's settings."),
    "video_probe_failed": _("the provider could not read the video. Check that the link is public and is an .mp4 "
                            "file, then try again."),
    "resource_not_found": _("the provider could not find a video at that link. Check that it is public."),
    "request_cancelled": _("the job was cancelled at the provider."),
    "generation_timeout": _("the upscale took too long at the provider. Please try again later."),
    "quota_exceeded": _("the provider is out of capacity right now. Please try again later."),
    "resource_exhausted": _("the provider is out of capacity right now. Please try again later."),
    "service_error": _("the provider had an internal error. Please try again later."),
    "service_unavailable": _("the provider was unavailable. Please try again later."),
    "unknown_error": _("the provider hit an unknown error. Please try again later."),
    "upstream_unreadable": _("the provider's answers about this job could not be read, so the bot stopped "
                             "following it. Please try again later."),
    "bot_restarted": _("the bot restarted while sending your job, before the provider confirmed it. "
                       "Please start it again."),
}


def progress_bar(progress: int, width: int = 20) -> str:
    progress = max(0, min(100, progress))
    filled = round(width * progress / 100)
    return f"`{'█' * filled}{'░' * (width - filled)}` {progress}%"


def status_label(status: str, locale: object = None) -> str:
    return t(locale, _STATUS_LABEL[status]) if status in _STATUS_LABEL else status


def failure_reason(task: TaskRecord, locale: object = None) -> str:
    """Why a task did not produce a video, for the member."""
    if task.status == "expired":
        return t(locale, _("the provider no longer knows this task (it expired before the bot could collect the "
                           "result)."))
    if task.status == "cancelled":
        return t(locale, _("the job was cancelled at the provider."))
    if task.error_code in _TASK_ERRORS:
        return t(locale, _TASK_ERRORS[task.error_code])
    if task.error_code == "abandoned":  # the bot's own: its error_message is for the operator, in English
        return t(locale, _("the bot could not start this job, so nothing was sent or charged. Please try again."))
    if task.error_code and task.error_code.startswith("submit_") and task.error_code[7:] in set(ErrorKind):
        # The paid POST failed: the member was told at once; the card and /task say it again in their words.
        return submission_error(EvolinkError(ErrorKind(task.error_code[7:]), task.error_message or "")).render(locale)
    if task.error_message:
        return t(locale, _("the provider reported: {detail}"), detail=clip(task.error_message, 200))
    return t(locale, _("the provider reported an error without details."))


# A link up to this long reaches the member whole and clickable (in the message text when the whole message
# fits Discord's 2,000 characters, else in an embed). A longer one cannot be shown on Discord at all.
RESULT_LINK_MAX = CONTENT_MAX


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to send: its text, and an embed when the result link does not fit in the text."""

    content: str
    embed: discord.Embed | None = None
    button_url: str | None = None  # a "Download" link button, when the link fits one (512 characters)
    button_label: str = "Download"


def link_too_long(task: TaskRecord) -> bool:
    return task.status == "completed" and len(task.result_url or "") > RESULT_LINK_MAX


def _link(url: str, label: str) -> str:
    """A masked link where markdown can carry it safely, else the bare URL (Discord makes it clickable)."""
    if any(ch in url for ch in "()[]<> ") or len(url) > 1000:
        return url
    return f"[{label}]({url})"


def _too_long_note(task: TaskRecord, locale: object) -> str:
    return t(locale, _("the provider's download link is {length} characters long, more than Discord can show. "
                       "Ask the bot's operator for the result of task #{number}"),
             length=f"{len(task.result_url or ''):,}", number=task.id)


def task_card(task: TaskRecord, locale: object = None) -> discord.Embed:
    """The embed shown as the reply to /upscale and kept up to date while the job runs (the member's language)."""
    embed = discord.Embed(
        title=t(locale, _("Upscale {id}"), id=task.display_id),
        colour=_STATUS_COLOUR.get(task.status, discord.Colour.blurple()),
    )
    embed.add_field(name=t(locale, _("Status")), value=status_label(task.status, locale), inline=True)
    embed.add_field(name=t(locale, _("Scale")), value=f"{task.scale}×", inline=True)
    if task.credits_reserved is not None:
        embed.add_field(name=t(locale, _("Credits reserved")), value=f"{task.credits_reserved:g}", inline=True)
    if task.status in ACTIVE_STATUSES:
        embed.add_field(name=t(locale, _("Progress")), value=progress_bar(task.progress), inline=False)
        if task.estimated_time and task.submitted_at:
            eta = int(task.submitted_at + task.estimated_time)
            embed.add_field(
                name=t(locale, _("Estimated time")),
                value=t(locale, _("about {duration} (done {when})"), duration=_duration(task.estimated_time, locale),
                        when=f"<t:{eta}:R>"),
                inline=False,
            )
    elif link_too_long(task):
        embed.description = t(locale, _("**Result:** {note}."), note=_too_long_note(task, locale))
    elif task.status == "completed" and task.result_url:
        # In the description (4,096 characters), not a field (1,024): a long link must stay whole.
        embed.description = t(locale, _("**Result:** {link}\n{expiry}"),
                              link=_link(task.result_url, t(locale, _("Download"))), expiry=expiry_note(task, locale))
    elif task.final:
        embed.add_field(name=t(locale, _("Why")), value=failure_reason(task, locale), inline=False)
    embed.add_field(name=t(locale, _("Source")), value=clip(task.source_label, 200), inline=False)
    embed.set_footer(text=t(locale, _("Task {id}"), id=task.display_id))
    return fit_embed(embed)


def expiry_note(task: TaskRecord, locale: object = None) -> str:
    finished = int(task.finished_at or time.time())
    return t(locale, _("the link expires {when} (24 hours after completion)"),
             when=f"<t:{finished + RESULT_LIFETIME_SECONDS}:R>")


def outcome_message(task: TaskRecord, *, mention: bool, dm_refused: bool = False, locale: object = None) -> Outgoing:
    """The result or failure message, for the channel (mention=True, the server's language) or the DM (the
    member's).

    The result link goes in the text (Discord previews it) when the whole message fits 2,000 characters,
    else in an embed's description; a link longer than RESULT_LINK_MAX is explained instead of sent.
    """
    values = {"who": f"<@{task.user_id}> " if mention else "", "id": f"`{task.display_id}`", "scale": task.scale,
              "source": clip(task.source_label, 80)}
    refused = [t(locale, _("I couldn't DM you; enable DMs from server members to get them."))] if dm_refused else []
    if link_too_long(task):
        lines = [t(locale, _("{who}your upscale {id} ({scale}×, {source}) is ready, but {note}."),
                   note=_too_long_note(task, locale), **values),
                 t(locale, _("Download it soon: {expiry}."), expiry=expiry_note(task, locale))]
        return Outgoing(clip("\n".join(lines + refused), CONTENT_MAX))
    if task.status == "completed" and task.result_url:
        url = task.result_url
        lines = [t(locale, _("{who}your upscale {id} ({scale}×, {source}) is ready:"), **values), url,
                 t(locale, _("Download it soon: {expiry}."), expiry=expiry_note(task, locale))]
        content = "\n".join(lines + refused)
        if len(content) <= CONTENT_MAX:
            # The link stays in the text (Discord's player preview) and gets a button where one can carry it.
            return Outgoing(content, button_url=url if len(url) <= LINK_BUTTON_URL_MAX else None,
                            button_label=t(locale, _("Download")))
        embed = discord.Embed(title=t(locale, _("Your upscaled video")),
                              description=f"{url}\n{expiry_note(task, locale)}", colour=discord.Colour.green())
        lines = [t(locale, _("{who}your upscale {id} ({scale}×, {source}) is ready: the link is below."), **values),
                 t(locale, _("Download it soon: it expires 24 hours after completion."))]
        return Outgoing(clip("\n".join(lines + refused), CONTENT_MAX), fit_embed(embed))
    ended = {"cancelled": _("{who}your upscale {id} ({source}) was cancelled: {reason}"),
             "expired": _("{who}your upscale {id} ({source}) expired: {reason}")}.get(
        task.status, _("{who}your upscale {id} ({source}) failed: {reason}"))
    lines = [t(locale, ended, reason=failure_reason(task, locale), **values),
             t(locale, _("Failed jobs are not charged."))]
    return Outgoing(clip("\n".join(lines + refused), CONTENT_MAX))


def minimal_outcome(task: TaskRecord, *, mention: bool, locale: object = None) -> Outgoing:
    """The fallback when Discord refused the full message (400): our own words and the link only."""
    values = {"who": f"<@{task.user_id}> " if mention else "", "number": task.id}
    if task.status == "completed" and task.result_url and not link_too_long(task):
        text = t(locale, _("{who}your upscale #{number} is ready:\n{link}"), link=task.result_url, **values)
        if len(text) <= CONTENT_MAX:
            return Outgoing(text)
        return Outgoing(t(locale, _("{who}your upscale #{number} is ready; /task id:#{number} shows the link."),
                          **values))
    if task.status == "completed":
        return Outgoing(t(locale, _("{who}your upscale #{number} is ready; ask the bot's operator for its link."),
                          **values))
    ended = {"cancelled": _("{who}your upscale #{number} was cancelled; /task id:#{number} shows why."),
             "expired": _("{who}your upscale #{number} expired; /task id:#{number} shows why.")}.get(
        task.status, _("{who}your upscale #{number} failed; /task id:#{number} shows why."))
    return Outgoing(t(locale, ended, **values))


def submission_error(error: EvolinkError) -> Phrase:
    """The private reply when the paid POST did not create a task (rendered in the member's language by the
    cog, and on the card and /task by failure_reason)."""
    match error.kind:
        case ErrorKind.BAD_REQUEST if error.message:
            return Phrase(_("The upscale service refused this video: {detail}. Check that it is a public .mp4 link "
                            "and try again."), detail=clip(error.message, 150))
        case ErrorKind.BAD_REQUEST:
            return Phrase(_("The upscale service refused this video. Check that it is a public .mp4 link and try "
                            "again."))
        case ErrorKind.AUTH | ErrorKind.FORBIDDEN:
            return Phrase(_("The bot is misconfigured: the upscale service refused its API key. This is not your "
                            "fault and nothing was charged; the bot's operator has been told."))
        case ErrorKind.NO_CREDITS:
            return Phrase(_("The bot's upscale account is out of credits. This is not your fault; the bot's "
                            "operator has been told. Please try again later."))
        case ErrorKind.TOO_LARGE:
            return Phrase(_("That video is too large for the upscale service (the limit is {megabytes} MB)."),
                          megabytes=MAX_VIDEO_BYTES // 1_000_000)
        case ErrorKind.RATE_LIMITED:
            return Phrase(_("The upscale service is busy right now. Please try again in a minute."))
        case ErrorKind.TIMEOUT:
            return Phrase(_("The upscale service did not answer in time, so the job was not started on our side. "
                            "Please try again in a few minutes."))
        case ErrorKind.SERVER | ErrorKind.CONNECTION:
            return Phrase(_("The upscale service is having trouble right now. Please try again in a few minutes."))
        case _:
            return Phrase(_("The upscale service gave an answer the bot did not understand. Please try again later; "
                            "the operator can see the details in the bot's log."))


def task_line(task: TaskRecord, *, with_link: bool = True, locale: object = None) -> str:
    """One line of /tasks; without the link when the list has no room left for it."""
    parts = [f"`{task.display_id}`", status_label(task.status, locale)]
    if task.status in ACTIVE_STATUSES:
        parts.append(f"{task.progress}%")
    parts.append(f"{task.scale}×")
    parts.append(t(locale, _("started {when}"), when=f"<t:{int(task.created_at)}:R>"))
    if task.status == "completed" and task.result_url:
        parts.append(_link(task.result_url, t(locale, _("result"))) if with_link and not link_too_long(task)
                     else t(locale, _("result: /task id:#{number}"), number=task.id))
    return " · ".join(parts)


def task_list(tasks: list[TaskRecord], locale: object = None) -> str:
    """/tasks' description: every line with its result link while they fit 4,096 characters."""
    lines: list[str] = []
    for index, task in enumerate(tasks):
        room = EMBED_DESCRIPTION_MAX - len("\n".join(lines)) - 1
        rest = sum(len(task_line(other, with_link=False, locale=locale)) + 1 for other in tasks[index + 1:])
        line = task_line(task, locale=locale)
        if len(line) > room - rest:
            line = task_line(task, with_link=False, locale=locale)
        lines.append(line)
    return fit_lines(lines, locale)


def _duration(seconds: float, locale: object = None) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return t(locale, _("{count} s"), count=seconds)
    if seconds < 5400:
        return t(locale, _("{count} min"), count=round(seconds / 60))
    return t(locale, _("{count} h"), count=f"{seconds / 3600:.1f}")
