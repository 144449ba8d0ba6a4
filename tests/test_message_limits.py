"""Every message the bot builds fits Discord's documented limits, whatever upstream or the member sent.

Unit and property tests of bot/text.py and bot/messages.py; the end-to-end tests through the fake Discord
(which refuses what Discord refuses) are in tests/test_e2e_long_links.py.
"""

from __future__ import annotations

import discord
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.evolink import ErrorKind, EvolinkError
from bot.i18n import t
from bot.messages import (
    RESULT_LINK_MAX,
    failure_reason,
    minimal_outcome,
    outcome_message,
    submission_error,
    task_card,
    task_line,
    task_list,
)
from bot.text import (
    CONTENT_MAX,
    EMBED_DESCRIPTION_MAX,
    EMBED_FIELDS_MAX,
    EMBED_TOTAL_MAX,
    FIELD_NAME_MAX,
    FIELD_VALUE_MAX,
    FOOTER_MAX,
    clip,
    clip_middle,
    fit_embed,
    fit_lines,
)
from storage import FINAL_STATUSES, TaskRecord

STATUSES = ("submitting", "pending", "processing", *FINAL_STATUSES)


def _task(**fields: object) -> TaskRecord:
    values: dict[str, object] = {
        "id": 7, "guild_id": 1, "channel_id": 2, "user_id": 3, "source_kind": "url",
        "source_url": "https://example.com/a.mp4", "source_label": "example.com/a.mp4", "scale": 2,
        "status": "completed", "created_at": 1_700_000_000.0, "upstream_id": "task-unified-1",
        "result_url": "https://cdn.example.com/r.mp4", "finished_at": 1_700_000_600.0,
    }
    values.update(fields)
    return TaskRecord(**values)  # type: ignore[arg-type]


def _link(length: int) -> str:
    head = "https://cdn.example.com/v/result.mp4?X-Amz-Signature="
    return head + "a" * (length - len(head))


def assert_embed_fits(embed: discord.Embed) -> None:
    assert len(embed.title or "") <= 256
    assert len(embed.description or "") <= EMBED_DESCRIPTION_MAX
    assert len(embed.fields) <= EMBED_FIELDS_MAX
    for field in embed.fields:
        assert 0 < len(field.name or "") <= FIELD_NAME_MAX and 0 < len(field.value or "") <= FIELD_VALUE_MAX
    assert len(embed.footer.text or "") <= FOOTER_MAX
    total = len(embed.title or "") + len(embed.description or "") + len(embed.footer.text or "")
    total += sum(len(f.name or "") + len(f.value or "") for f in embed.fields)
    assert total <= EMBED_TOTAL_MAX


def test_clip_marks_what_it_cut_and_never_passes_the_limit() -> None:
    assert clip("abc", 3) == "abc"
    assert clip("abcd", 3) == "ab…"
    assert clip("abcd", 0) == ""
    assert clip_middle("example.com/a-long-name.mp4", 15) == "example…ame.mp4"
    assert clip_middle("abc", 1) == "…" and clip_middle("abc", 3) == "abc"


def test_fit_lines_says_how_many_were_left_out() -> None:
    text = fit_lines([f"line {i} " + "y" * 100 for i in range(60)])
    assert len(text) <= 4096 and text.endswith("more") and "line 0 " in text
    kept = text.count("\nline ") + 1
    assert text.endswith(f"… and {60 - kept} more")
    assert fit_lines([]) == "none yet"
    assert fit_lines(["x" * 5000]) == "x" * 4095 + "…"


def test_fit_embed_keeps_the_total_under_6000() -> None:
    embed = discord.Embed(title="t" * 300, description="d" * 5000)
    for i in range(30):
        embed.add_field(name=f"n{i}" * 200, value="v" * 2000)
    embed.set_footer(text="f" * 3000)
    assert_embed_fits(fit_embed(embed))
    assert embed.fields[0].value.startswith("v"), "the first fields are kept"


@settings(max_examples=300, deadline=None)
@given(url_length=st.integers(20, 9000), label=st.text(max_size=300), display=st.text(min_size=1, max_size=200),
       status=st.sampled_from(STATUSES), message=st.none() | st.text(max_size=400),
       dm_refused=st.booleans(), mention=st.booleans())
def test_every_outcome_and_card_fits(url_length: int, label: str, display: str, status: str, message: str | None,
                                     dm_refused: bool, mention: bool) -> None:
    task = _task(status=status, result_url=_link(max(url_length, 60)), source_label=label, upstream_id=display,
                 error_message=message, error_code=None)
    for outgoing in (outcome_message(task, mention=mention, dm_refused=dm_refused),
                     minimal_outcome(task, mention=mention)):
        assert 0 < len(outgoing.content) <= CONTENT_MAX
        if outgoing.embed is not None:
            assert_embed_fits(outgoing.embed)
    assert_embed_fits(task_card(task))


def test_a_link_up_to_2000_characters_reaches_the_member_whole() -> None:
    for length in (100, 1500, 1990, RESULT_LINK_MAX):
        url = _link(length)
        task = _task(result_url=url)
        for mention in (True, False):
            outgoing = outcome_message(task, mention=mention, dm_refused=True)
            shown = outgoing.content + "\n" + (outgoing.embed.description or "" if outgoing.embed else "")
            assert url in shown.splitlines(), f"{length}: the link stands alone on its own line, whole"
        card = task_card(task)
        assert url in (card.description or ""), length
        assert url in task_line(task) or f"({url})" in task_line(task)


def test_a_longer_link_is_explained_not_lost() -> None:
    task = _task(result_url=_link(RESULT_LINK_MAX + 1))
    outgoing = outcome_message(task, mention=True)
    assert task.result_url not in outgoing.content and outgoing.embed is None
    assert "2,001 characters" in outgoing.content and "operator" in outgoing.content and "#7" in outgoing.content
    assert "operator" in (task_card(task).description or "")
    assert "operator" in minimal_outcome(task, mention=False).content


def test_the_short_link_stays_in_the_text_for_discords_preview() -> None:
    task = _task()
    outgoing = outcome_message(task, mention=True)
    assert outgoing.embed is None and "https://cdn.example.com/r.mp4" in outgoing.content.splitlines()


def test_task_list_keeps_links_while_they_fit_and_points_to_task_for_the_rest() -> None:
    tasks = [_task(id=i, upstream_id=f"task-{i}", result_url=_link(1500)) for i in range(10)]
    text = task_list(tasks)
    assert len(text) <= EMBED_DESCRIPTION_MAX
    assert all(f"task-{i}" in text for i in range(10)), "every job is listed"
    assert text.count("X-Amz-Signature") == 2 and "result: /task id:#9" in text


@pytest.mark.parametrize("locale", ["en-US", "ko"])
def test_a_job_the_bot_ended_itself_is_explained_in_the_bots_words(locale: str) -> None:
    """Rows the bot failed itself keep an operator's detail in English; the member reads why in their language,
    never "the provider reported: <the operator's detail>"."""
    for code, detail, expected in (
            ("abandoned", "the interaction could not be acknowledged",
             "the bot could not start this job, so nothing was sent or charged. Please try again."),
            ("submit_no_credits", "insufficient balance", "The bot's upscale account is out of credits. This is not "
             "your fault; the bot's operator has been told. Please try again later.")):
        reason = failure_reason(_task(status="failed", error_code=code, error_message=detail), locale)
        assert reason == t(locale, expected) and detail not in reason
    unknown = failure_reason(_task(status="failed", error_code="submit_from_the_future", error_message="x"), locale)
    assert unknown == t(locale, "the provider reported: {detail}", detail="x")


def test_a_video_too_large_upstream_is_told_the_bots_own_limit() -> None:
    reason = submission_error(EvolinkError(ErrorKind.TOO_LARGE, "413"))
    assert reason.render("en-US") == "That video is too large for the upscale service (the limit is 50 MB)."
    assert "50 MB" in reason.render("ko")
