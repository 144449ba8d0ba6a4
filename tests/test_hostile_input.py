"""End to end: hostile /upscale input gets a private, specific refusal and never reaches Evolink.

Complements BAD_INPUT in test_e2e_errors.py (no case is repeated): SSRF-style hosts written in the forms
different URL parsers disagree on, smuggled characters, scheme tricks, length and port edges, attachments
whose metadata lies, and scale values Discord's client would not send (strict=False sends them anyway).
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.client import UpscaleBot
from bot.validation import MAX_URL_LENGTH
from sandbox.offline import Sandbox

_LONG_BASE = "https://example.com/"
_URL_2049 = _LONG_BASE + "a" * (MAX_URL_LENGTH + 1 - len(_LONG_BASE) - len(".mp4")) + ".mp4"
assert len(_URL_2049) == MAX_URL_LENGTH + 1 == 2049
_HOST_300 = ".".join(["a" * 59] * 5) + ".com"  # valid labels, 303 characters in all
_LABEL_300 = "a" * 300  # one label far over DNS's 63
_CDN = "https://cdn.discordapp.com/attachments/1/2/clip.mp4"


def _url(url: str, word: str, case: str | None = None) -> tuple[str, dict[str, Any], str]:
    return (case or repr(url)[:60], {"url": url}, word)


def _video(case: str, word: str, **attachment: Any) -> tuple[str, dict[str, Any], str]:
    return (case, {"video": attachment}, word)


# (test id, options, a word the private reply must contain)
HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    # ---- schemes: only https:// with both slashes is accepted
    _url("javascript:alert(document.cookie)//a.mp4", "https://"),
    _url("data:video/mp4;base64,AAAAIGZ0eXBpc29t.mp4", "https://"),
    _url("file:///etc/passwd.mp4", "https://"),
    _url("https:/x.mp4", "https://"),
    _url("//host.example.com/a.mp4", "https://"),
    # ---- hosts that mean "this machine" or a private network, in the spellings parsers disagree on
    _url("https://127.1/a.mp4", "unusual number"),
    _url("https://0x7f.0.0.1/a.mp4", "unusual number"),
    _url("https://0177.0.0.1/a.mp4", "unusual number"),
    _url("https://[::ffff:127.0.0.1]/a.mp4", "private"),
    _url("https://[::ffff:169.254.169.254]/latest.mp4", "private"),
    _url("https://[fe80::1%25eth0]/a.mp4", "zone"),
    _url("https://localhost./a.mp4", "localhost"),
    _url("https://LOCALHOST/a.mp4", "localhost"),
    _url("https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/a.mp4", "localhost"),  # fullwidth
    _url("https://\u2460\u2461\u2466.0.0.1/a.mp4", "private"),  # circled digits IDNA-map to 127.0.0.1
    _url("https://metadata.google.internal/computeMetadata/v1/a.mp4", "internal"),
    _url("https://100.64.0.1/a.mp4", "private"),  # carrier-grade NAT
    _url("https://224.0.0.1/a.mp4", "private"),  # multicast
    _url(f"https://{_HOST_300}/a.mp4", "too long", "303-char host"),
    _url(f"https://{_LABEL_300}/a.mp4", "website name", "300-char label"),
    _url("https://example.com%2f@127.0.0.1/a.mp4", "login"),
    # ---- encodings and smuggled characters
    _url("https://%2e%2e/a.mp4", "%"),
    _url("https://example.com/%2e%2e%2f%2e%2e%2fetc%2fpasswd", ".mp4"),
    _url("https://example.com/a.mp4%00", ".mp4"),
    _url("https://example.com/a.mp4%20", ".mp4"),
    _url("https://example.com/a\n.mp4", "line breaks"),
    _url("https://exa\tmple.com/a.mp4", "spaces"),
    _url("https://exa\u200bmple.com/a.mp4", "hidden"),  # zero-width space
    _url("https://example.com/\u202e4pm.exe", "hidden"),  # right-to-left override: shows as "exe.mp4"
    # ---- lengths
    _url(_URL_2049, "too long", "2049-char url"),
    ("empty url, no video", {"url": ""}, "attach"),
    ("whitespace url, no video", {"url": " \t  "}, "attach"),
    # ---- ports
    _url("https://example.com:8080/a.mp4", "port"),
    _url("https://example.com:0/a.mp4", "port"),
    _url("https://example.com:99999/a.mp4", "port"),
    # ---- attachments whose metadata lies or is hostile
    _video("mp4 named, html typed", "look like a video", filename="clip.mp4", content_type="text/html"),
    _video("mp4 named, exe typed", "look like a video", filename="clip.mp4", content_type="application/x-msdownload"),
    _video("double extension", ".mp4", filename="clip.mp4.exe"),
    _video("trailing space after .MP4", ".mp4", filename="clip.MP4 "),
    _video("rtl override in name", ".mp4", filename="clip\u202e4pm.exe"),
    _video("size -1", "empty", filename="clip.mp4", size=-1),
    _video("size 0", "empty", filename="clip.mp4", size=0),
    _video("url to loopback", "upload", filename="clip.mp4", url="https://127.0.0.1/x.mp4"),
    _video("url with javascript scheme", "upload", filename="clip.mp4", url="javascript:alert(1)//x.mp4"),
    # ---- scale values outside the synced choices
    ("scale 0", {"url": "https://example.com/a.mp4", "scale": 0}, "scale"),
    ("scale -2", {"url": "https://example.com/a.mp4", "scale": -2}, "scale"),
    ("scale 8", {"url": "https://example.com/a.mp4", "scale": 8}, "scale"),
]


def test_table_is_big_and_ids_are_unique() -> None:
    assert len(HOSTILE) >= 30
    assert len({case for case, _, _ in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize(("options", "word"), [(o, w) for _, o, w in HOSTILE], ids=[c for c, _, _ in HOSTILE])
async def test_hostile_input_is_refused_privately_without_upstream_call(
        box: Sandbox, bot: UpscaleBot, options: dict[str, Any], word: str) -> None:
    options = dict(options)
    if "video" in options:
        options["video"] = box.discord.make_attachment(**options["video"])
    interaction = await box.discord.slash("upscale", user_id=box.alice_id, channel_id=box.channel_id,
                                          guild_id=box.guild_id, options=options, strict=False)
    ack = await interaction.wait_ack()
    assert ack["type"] == 4, "answered at once, not deferred"
    assert ack["data"]["flags"] & 64, "the refusal is private"
    content = ack["data"]["content"]
    assert word.lower() in content.lower(), content
    assert "\n" not in content and len(content) < 300, "one short line"
    assert "something went wrong" not in content.lower(), "a refusal, not a crash"
    assert box.evolink.requests == [], "no upstream call for hostile input"
    assert await bot.storage.user_tasks(int(box.alice_id), 10) == []


async def test_path_in_attachment_filename_is_only_a_label(box: Sandbox, bot: UpscaleBot) -> None:
    """A filename like ../../clip.mp4 is accepted (it ends in .mp4); what goes upstream is the CDN URL.

    The bot never writes files under the member's name, so the path is harmless text on the task card.
    """
    video = box.discord.make_attachment(filename="../../clip.mp4", url=_CDN)
    interaction = await box.discord.slash("upscale", user_id=box.alice_id, channel_id=box.channel_id,
                                          guild_id=box.guild_id, options={"video": video}, strict=False)
    assert (await interaction.wait_ack())["type"] == 5
    post = await box.discord.wait_for(lambda: next((r for r in box.evolink.requests if r.method == "POST"), None))
    assert post.json["video_urls"] == [_CDN]
