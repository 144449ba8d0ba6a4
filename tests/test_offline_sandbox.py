"""The offline sandbox a newcomer sees first: `python -m bot` with no credentials shows the whole flow and exits 0."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.i18n import t
from sandbox.offline import Sandbox, run_offline
from sandbox.offline_view import FAKE_LINK_NOTE

DM, CHANNEL, CARD_DONE = "bot (DM to alice)", "bot (in #video-lab)", "bot (card edited)"


def _blocks(out: str) -> list[tuple[str, str]]:
    """The transcript as (who, text) pairs: a block starts with `who: `, indented lines continue it."""
    blocks: list[tuple[str, str]] = []
    for line in out.splitlines():
        if line.startswith(" ") and blocks:
            who, text = blocks[-1]
            blocks[-1] = (who, text + "\n" + line.strip())
        elif re.match(r"^(alice|bob|carol|bot( \([^)]*\))?): ", line):
            who, text = line.split(": ", 1)
            blocks.append((who, text))
    return blocks


def _index(blocks: list[tuple[str, str]], who: str, contains: str = "") -> int:
    return next(i for i, (w, text) in enumerate(blocks) if w == who and contains in text)


def test_python_m_bot_without_credentials_runs_the_sandbox_and_exits_0(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "EVOLINK_"))}
    result = subprocess.run([sys.executable, "-m", "bot"], env=clean, cwd=tmp_path, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for expected in ("/quota set", "/upscale video:", "task card", "card edited", "Completed", "is ready",
                     "DM to alice", "24 hours", FAKE_LINK_NOTE, "/tasks", "for today", "Done"):
        assert expected in result.stdout, expected


Demo = tuple[list[tuple[str, str]], Sandbox]


@pytest.fixture(scope="module")
def demo() -> Demo:
    """One in-process run of the sandbox, shared by the tests below (it takes seconds): its transcript, and the
    fakes, to compare the transcript with what they recorded."""
    seen: list[Sandbox] = []
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = asyncio.run(run_offline(inspect=seen.append))
    assert code == 0, out.getvalue()
    return _blocks(out.getvalue()), seen[0]


def test_the_sandbox_shows_the_whole_flow(demo: Demo) -> None:
    blocks, box = demo
    # The admin's limit, answered privately.
    admin = _index(blocks, "carol", "/quota set limit:user_daily_jobs value:1")
    assert blocks[admin + 1][0] == "bot (only carol sees this)" and "user_daily_jobs` is now 1" in blocks[admin + 1][1]
    # The card from its first version to Completed, with progress edits between.
    first = _index(blocks, "alice", "/upscale video:holiday-clip.mp4")
    assert blocks[first + 1][0] == "bot (task card)" and "Queued" in blocks[first + 1][1]
    assert any(who == "bot (card edited)" and "%" in text for who, text in blocks)
    assert "Status: ✅ Completed" in blocks[_index(blocks, CARD_DONE, "Completed")][1]
    # The member's second job is refused by that limit, privately, before anything is sent to Evolink.
    second = _index(blocks, "alice", "/upscale video:another-clip.mp4")
    assert blocks[second + 1][0] == "bot (only alice sees this)"
    assert "1 job(s) for today" in blocks[second + 1][1]
    assert len(box.evolink.tasks) == 1
    # A member whose Discord is in Korean reads the bot in Korean.
    usage = _index(blocks, "bob", "/사용량")
    assert blocks[usage + 1][0] == "bot (only bob sees this)" and t("ko", "Jobs today") in blocks[usage + 1][1]


def test_the_sandbox_prints_deliveries_in_the_order_discord_received_them(demo: Demo) -> None:
    blocks, box = demo
    fake = box.discord
    # What the fake recorded, in the order it received it: the DM, the channel post, the last card edit.
    recorded: dict[str, int] = {}
    paths = {f"/channels/{fake.dm_channel_id(box.alice_id)}/messages": DM,
             f"/channels/{box.channel_id}/messages": CHANNEL}
    for position, request in enumerate(fake.requests):
        if request.status >= 300:
            continue
        if request.method == "POST" and request.path in paths:
            recorded.setdefault(paths[request.path], position)
        if request.method == "PATCH" and "Completed" in str(request.json):
            recorded.setdefault(CARD_DONE, position)
    assert set(recorded) == {DM, CHANNEL, CARD_DONE}
    printed = {DM: _index(blocks, DM), CHANNEL: _index(blocks, CHANNEL),
               CARD_DONE: _index(blocks, CARD_DONE, "Completed")}
    assert sorted(printed, key=printed.__getitem__) == sorted(recorded, key=recorded.__getitem__)


def test_every_result_link_the_sandbox_prints_is_marked_made_up(demo: Demo) -> None:
    blocks, box = demo
    [task] = box.evolink.tasks.values()
    link = task.results[0]
    shown = [text for _, text in blocks if link in text]
    assert len(shown) >= 4, "the final card, the DM, the channel post and /tasks show the link"
    for text in shown:
        assert text.count(link) == text.count(f"{link} {FAKE_LINK_NOTE}"), text
    assert all(f"{m} {FAKE_LINK_NOTE}" in text for _, text in blocks for m in re.findall(r"https://\S+", text))
