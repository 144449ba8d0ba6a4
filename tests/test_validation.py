"""Tests for bot.validation: table-driven refusals/acceptances plus a garbage fuzz.

The fuzz matters because the validator sits directly on member input: any exception
other than InputError would surface as an "interaction failed" instead of a reply.
"""

from __future__ import annotations

import random

import pytest

from bot.validation import (
    ALLOWED_SCALES,
    MAX_URL_LENGTH,
    MAX_VIDEO_BYTES,
    AttachmentInfo,
    InputError,
    VideoSource,
    resolve_source,
    validate_attachment,
    validate_scale,
    validate_video_url,
)

CDN = "https://cdn.discordapp.com/attachments/1/2/clip.mp4?ex=65f1&is=65e0&hm=abc"

# (url, keyword that must appear in the lower-cased message)
REFUSED_URLS: list[tuple[object, str]] = [
    # type / emptiness / size
    (None, "text"),
    (123, "text"),
    (b"https://example.com/a.mp4", "text"),
    ("", "empty"),
    ("   \n\t ", "empty"),
    ("https://example.com/" + "a" * MAX_URL_LENGTH + ".mp4", "too long"),
    # whitespace, control characters, backslashes
    ("https://exa mple.com/a.mp4", "spaces"),
    ("https://example.com/a b.mp4", "spaces"),
    ("https://exa\tmple.com/a.mp4", "spaces"),
    ("https://example.com/\na.mp4", "spaces"),
    ("https://example.com/a\u00a0b.mp4", "spaces"),
    ("https://example.com/a\x00.mp4", "control"),
    ("https://example.com/a\x7f.mp4", "control"),
    ("https://exam\u200bple.com/a.mp4", "control"),
    ("https://example.com/\u202egnp.mp4", "control"),
    ("https://example.com\\@evil.com/a.mp4", "backslash"),
    ("https:\\\\example.com\\a.mp4", "backslash"),
    # scheme
    ("http://example.com/a.mp4", "https://"),
    ("ftp://example.com/a.mp4", "https://"),
    ("file:///etc/passwd.mp4", "https://"),
    ("javascript:alert(1)//.mp4", "https://"),
    ("example.com/a.mp4", "https://"),
    ("//example.com/a.mp4", "https://"),
    ("https:example.com/a.mp4", "https://"),
    ("https:/example.com/a.mp4", "https://"),
    ("httpss://example.com/a.mp4", "https://"),
    # host missing / userinfo
    ("https:///a.mp4", "no website"),
    ("https://", "no website"),
    ("https://:443/a.mp4", "no website"),
    ("https://user:pass@example.com/a.mp4", "login"),
    ("https://user@example.com/a.mp4", "login"),
    ("https://@example.com/a.mp4", "login"),
    ("https://example.com@127.0.0.1/a.mp4", "login"),
    # port
    ("https://example.com:8443/a.mp4", "port"),
    ("https://example.com:80/a.mp4", "port"),
    ("https://example.com:22/a.mp4", "port"),
    ("https://example.com:99999/a.mp4", "port"),
    ("https://example.com:abc/a.mp4", "port"),
    ("https://example.com:+443/a.mp4", "port"),
    ("https://example.com:\u0664\u0664\u0663/a.mp4", "port"),
    ("https://example.com:443:443/a.mp4", "port"),
    ("https://[2606:4700::1111]:8080/a.mp4", "port"),
    # localhost / internal names
    ("https://localhost/a.mp4", "localhost"),
    ("https://LOCALHOST/a.mp4", "localhost"),
    ("https://localhost./a.mp4", "localhost"),
    ("https://foo.localhost/a.mp4", "localhost"),
    ("https://a.b.LocalHost./a.mp4", "localhost"),
    ("https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/a.mp4", "localhost"),  # fullwidth
    ("https://printer.local/a.mp4", "internal"),
    ("https://metadata.google.internal/a.mp4", "internal"),
    ("https://router.home.arpa/a.mp4", "internal"),
    ("https://intranet/a.mp4", "full domain"),
    # private / reserved IPv4 literals
    ("https://127.0.0.1/a.mp4", "private"),
    ("https://127.0.0.1:443/a.mp4", "private"),
    ("https://10.0.0.5/a.mp4", "private"),
    ("https://172.16.0.1/a.mp4", "private"),
    ("https://172.31.255.255/a.mp4", "private"),
    ("https://192.168.1.1/a.mp4", "private"),
    ("https://169.254.169.254/latest.mp4", "private"),
    ("https://0.0.0.0/a.mp4", "private"),
    ("https://100.64.0.1/a.mp4", "private"),
    ("https://224.0.0.1/a.mp4", "private"),
    ("https://239.255.255.250/a.mp4", "private"),
    ("https://240.0.0.1/a.mp4", "private"),
    ("https://255.255.255.255/a.mp4", "private"),
    ("https://192.0.2.1/a.mp4", "private"),
    ("https://\u2460\u2461\u2466.0.0.1/a.mp4", "private"),  # circled digits IDNA-map to 127.0.0.1
    ("https://127\u30020\u30020\u30021/a.mp4", "private"),  # ideographic full stops
    # private / reserved IPv6 literals
    ("https://[::1]/a.mp4", "private"),
    ("https://[::]/a.mp4", "private"),
    ("https://[fc00::1]/a.mp4", "private"),
    ("https://[fd12:3456::1]/a.mp4", "private"),
    ("https://[fe80::1]/a.mp4", "private"),
    ("https://[fec0::1]/a.mp4", "private"),
    ("https://[ff02::1]/a.mp4", "private"),
    ("https://[::ffff:127.0.0.1]/a.mp4", "private"),
    ("https://[::ffff:7f00:1]/a.mp4", "private"),
    ("https://[::ffff:10.0.0.1]/a.mp4", "private"),
    ("https://[::127.0.0.1]/a.mp4", "private"),
    ("https://[64:ff9b::a9fe:a9fe]/a.mp4", "private"),
    ("https://[2002:7f00:1::]/a.mp4", "private"),
    ("https://[2001:db8::1]/a.mp4", "private"),
    ("https://[fe80::1%25eth0]/a.mp4", "zone"),
    ("https://[::1/a.mp4", "valid"),
    ("https://[v1.abc]/a.mp4", "valid"),
    ("https://[gggg::1]/a.mp4", "valid"),
    ("https://a]b/a.mp4", "valid"),
    # numeric host tricks
    ("https://2130706433/a.mp4", "domain name"),
    ("https://0x7f000001/a.mp4", "domain name"),
    ("https://0x7f.0.0.1/a.mp4", "domain name"),
    ("https://0177.0.0.1/a.mp4", "domain name"),
    ("https://127.1/a.mp4", "domain name"),
    ("https://127.0.1/a.mp4", "domain name"),
    ("https://8.8.8.08/a.mp4", "domain name"),
    ("https://1.2.3.4.5/a.mp4", "domain name"),
    ("https://256.1.1.1/a.mp4", "domain name"),
    ("https://example.0x/a.mp4", "domain name"),
    ("https://example.123/a.mp4", "domain name"),
    # host syntax
    ("https://exa%6dple.com/a.mp4", "%"),
    ("https://%6c%6f%63%61%6c%68%6f%73%74/a.mp4", "%"),
    ("https://a..b.com/a.mp4", "valid"),
    ("https://.example.com/a.mp4", "valid"),
    ("https://example.com../a.mp4", "valid"),
    ("https://exa$mple.com/a.mp4", "valid"),
    ("https://example.com!/a.mp4", "valid"),
    ("https://-example.com/a.mp4", "valid"),
    ("https://xn--zz.com/a.mp4", "valid"),
    ("https://" + "a" * 64 + ".com/a.mp4", "valid"),
    ("https://" + ".".join(["a" * 60] * 5) + ".com/a.mp4", "long"),
    ("https://exa\uff20mple.com/a.mp4", "valid"),  # fullwidth @ maps to "@" under IDNA
    # path
    ("https://example.com", ".mp4"),
    ("https://example.com/", ".mp4"),
    ("https://example.com/video", ".mp4"),
    ("https://example.com/video.mp4/", ".mp4"),
    ("https://example.com/video.mp4.exe", ".mp4"),
    ("https://example.com/video.mov", ".mp4"),
    ("https://example.com/.mp4", ".mp4"),
    ("https://example.com/a.mp4;x=1", ".mp4"),
    ("https://example.com/a.mp4%00", ".mp4"),
    ("https://example.com/a%2Emp4%2F", ".mp4"),
    ("https://example.com/watch?v=a.mp4", "path"),
    ("https://example.com/page#a.mp4", "path"),
]

ACCEPTED_URLS: list[tuple[str, str]] = [
    # (url, expected label)
    (CDN, "cdn.discordapp.com/clip.mp4"),
    ("HTTPS://Example.COM/A.MP4", "example.com/A.MP4"),
    ("https://example.com/a.mp4", "example.com/a.mp4"),
    ("  https://example.com/a.mp4 \n", "example.com/a.mp4"),
    ("https://bücher.de/film.mp4", "bücher.de/film.mp4"),
    ("https://xn--bcher-kva.de/film.mp4", "xn--bcher-kva.de/film.mp4"),
    ("https://8.8.8.8/v.mp4", "8.8.8.8/v.mp4"),
    ("https://[2606:4700:4700::1111]/v.mp4", "[2606:4700:4700::1111]/v.mp4"),
    ("https://[::ffff:8.8.8.8]/v.mp4", "[::ffff:8.8.8.8]/v.mp4"),
    ("https://example.com:443/v.mp4", "example.com/v.mp4"),
    ("https://example.com./v.mp4", "example.com./v.mp4"),
    ("https://media.example.co.uk/a/b/c/My%20Clip.mp4?token=x#t=10", "media.example.co.uk/My Clip.mp4"),
    ("https://example.com/a%2Emp4", "example.com/a.mp4"),
    ("https://example.com/dir/vidéo.MP4", "example.com/vidéo.MP4"),
    (
        "https://s3.eu-west-1.amazonaws.com/bucket/key.mp4?X-Amz-Signature=abc",
        "s3.eu-west-1.amazonaws.com/key.mp4",
    ),
    ("https://my_bucket.example.com/a.mp4", "my_bucket.example.com/a.mp4"),
]


@pytest.mark.parametrize(("url", "keyword"), REFUSED_URLS)
def test_refused_urls(url: object, keyword: str) -> None:
    with pytest.raises(InputError) as info:
        validate_video_url(url)  # type: ignore[arg-type]
    message = str(info.value)
    assert keyword.lower() in message.lower(), message
    assert 10 < len(message) < 200


def test_refused_table_is_big_enough() -> None:
    assert len(REFUSED_URLS) >= 40
    assert len(ACCEPTED_URLS) >= 10


@pytest.mark.parametrize(("url", "label"), ACCEPTED_URLS)
def test_accepted_urls(url: str, label: str) -> None:
    assert validate_video_url(url) == url.strip()
    source = resolve_source(attachment=None, url=url)
    assert source == VideoSource(kind="url", url=url.strip(), label=label)


def test_length_limit_is_inclusive() -> None:
    base = "https://example.com/"
    exact = base + "a" * (MAX_URL_LENGTH - len(base) - 4) + ".mp4"
    assert len(exact) == MAX_URL_LENGTH
    assert validate_video_url(exact) == exact
    with pytest.raises(InputError, match="too long"):
        validate_video_url(exact[:-4] + "a.mp4")


def test_huge_input_is_not_echoed() -> None:
    huge = "https://example.com:" + "9" * 5000 + "/a.mp4"
    with pytest.raises(InputError) as info:
        validate_video_url(huge)
    assert len(str(info.value)) < 200
    port = "https://example.com:" + "9" * 1000 + "/a.mp4"
    with pytest.raises(InputError) as info:
        validate_video_url(port)
    assert "9" * 20 not in str(info.value)


def test_https_message_is_friendly() -> None:
    with pytest.raises(InputError) as info:
        validate_video_url("http://example.com/a.mp4")
    assert str(info.value) == "That link must start with https://."


# ------------------------------------------------------------------------ attachments

GOOD_ATTACHMENT = {
    "filename": "clip.mp4",
    "content_type": "video/mp4",
    "size": 1_234_567,
    "url": CDN,
}


def _attach(**overrides: object) -> dict[str, object]:
    return {**GOOD_ATTACHMENT, **overrides}


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"filename": "CLIP.MP4"},
        {"content_type": None},
        {"content_type": ""},
        {"content_type": "VIDEO/MP4"},
        {"content_type": "video/quicktime"},
        {"size": 1},
        {"size": MAX_VIDEO_BYTES},
        # The CDN path need not end in .mp4: the filename rule decides for attachments.
        {"url": "https://cdn.discordapp.com/attachments/1/2/blob?ex=1"},
    ],
)
def test_accepted_attachments(overrides: dict[str, object]) -> None:
    kwargs = _attach(**overrides)
    assert validate_attachment(**kwargs) == kwargs["url"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "keyword"),
    [
        ({"filename": "clip.mov"}, ".mp4"),
        ({"filename": "clip.mp4.exe"}, ".mp4"),
        ({"filename": ".mp4"}, ".mp4"),
        ({"filename": "x" * 500 + ".png"}, ".mp4"),
        ({"content_type": "image/png"}, "video"),
        ({"content_type": "application/octet-stream"}, "video"),
        ({"content_type": "text/html"}, "video"),
        ({"size": 0}, "empty"),
        ({"size": -5}, "empty"),
        ({"size": MAX_VIDEO_BYTES + 1}, "50 MB"),
        ({"size": 10**12}, "50 MB"),
        ({"size": "100"}, "size"),
        ({"size": True}, "size"),
        ({"size": 1.5}, "size"),
        ({"url": "http://cdn.discordapp.com/attachments/1/2/clip.mp4"}, "upload"),
        ({"url": "https://127.0.0.1/clip.mp4"}, "upload"),
        ({"url": "https://cdn.discordapp.com:8443/a/clip.mp4"}, "upload"),
        ({"url": ""}, "upload"),
    ],
)
def test_refused_attachments(overrides: dict[str, object], keyword: str) -> None:
    with pytest.raises(InputError) as info:
        validate_attachment(**_attach(**overrides))  # type: ignore[arg-type]
    message = str(info.value)
    assert keyword.lower() in message.lower(), message
    assert len(message) < 200


def test_attachment_filename_is_truncated_in_message() -> None:
    with pytest.raises(InputError) as info:
        validate_attachment(**_attach(filename="y" * 1000 + ".gif"))  # type: ignore[arg-type]
    assert "y" * 100 not in str(info.value)


# ----------------------------------------------------------------------------- scales


@pytest.mark.parametrize("scale", ALLOWED_SCALES)
def test_accepted_scales(scale: int) -> None:
    assert validate_scale(scale) == scale


@pytest.mark.parametrize("scale", [0, 3, 8, -1, True, False, "2", 2.0, None, [2]])
def test_refused_scales(scale: object) -> None:
    with pytest.raises(InputError, match="1, 2 or 4"):
        validate_scale(scale)


# ----------------------------------------------------------------------- resolve_source

ATTACHMENT = AttachmentInfo(filename="clip.mp4", content_type="video/mp4", size=1000, url=CDN)


def test_resolve_attachment() -> None:
    source = resolve_source(attachment=ATTACHMENT, url=None)
    assert source == VideoSource(kind="attachment", url=CDN, label="clip.mp4")


@pytest.mark.parametrize("empty", ["", "   ", "\n"])
def test_resolve_attachment_with_empty_url(empty: str) -> None:
    assert resolve_source(attachment=ATTACHMENT, url=empty).kind == "attachment"


def test_resolve_both_refused() -> None:
    with pytest.raises(InputError, match="not both"):
        resolve_source(attachment=ATTACHMENT, url="https://example.com/a.mp4")


@pytest.mark.parametrize("url", [None, "", "  \t "])
def test_resolve_neither_refused(url: str | None) -> None:
    with pytest.raises(InputError, match="Attach"):
        resolve_source(attachment=None, url=url)


def test_resolve_bad_attachment_propagates() -> None:
    bad = AttachmentInfo(filename="a.png", content_type="image/png", size=10, url=CDN)
    with pytest.raises(InputError, match=r"\.mp4"):
        resolve_source(attachment=bad, url=None)


def test_resolve_bad_url_propagates() -> None:
    with pytest.raises(InputError, match="localhost"):
        resolve_source(attachment=None, url="https://localhost/a.mp4")


def test_labels_are_short_and_keep_the_extension() -> None:
    long_name = "n" * 300 + ".mp4"
    source = resolve_source(attachment=None, url=f"https://example.com/{long_name}")
    assert len(source.label) <= 100
    assert source.label.startswith("example.com/")
    assert source.label.endswith(".mp4")
    att = AttachmentInfo(filename=long_name, content_type=None, size=5, url=CDN)
    label = resolve_source(attachment=att, url=None).label
    assert len(label) <= 100 and label.endswith(".mp4")


def test_label_drops_decoded_control_characters() -> None:
    source = resolve_source(attachment=None, url="https://example.com/a%0Ab%00c.mp4")
    assert source.label == "example.com/a bc.mp4"


# ------------------------------------------------------------------------------- fuzz

_ALPHABET = [
    *"abcxyzABC019.-_/:@?#[]%&=+~!$'()*,;\\ ",
    *["\x00", "\t", "\n", "\x7f", "\u200b", "\u202e", "\ud800", "\uff0e", "\u3002", "\uff20"],
    *["é", "ü", "ß", "Ω", "中", "😀", "①", "\u0664", "İ", "\ufb01"],
    *["0x", "%2e", "%00", "%25", "xn--", "::", "[::1]", "127.0.0.1", ".mp4", ".MP4", "localhost", ":443"],
]
_PREFIXES = ["", "https://", "HTTPS://", "https:", "https://[", "https://a.com", "http://"]


# Half the cases avoid whitespace/control characters so they get past the early
# checks and exercise the host, port and path parsing.
_VISIBLE = [tok for tok in _ALPHABET if not any(ch.isspace() or ch < " " or ch == "\x7f" for ch in tok)]
_VISIBLE = [tok for tok in _VISIBLE if tok not in ("\u200b", "\u202e", "\ud800", "\\")]


def _garbage(rng: random.Random) -> str:
    alphabet = _ALPHABET if rng.random() < 0.5 else _VISIBLE
    body = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
    suffix = rng.choice(["", ".mp4", "/a.mp4", "/a.mp4?x=.mp4"])
    return rng.choice(_PREFIXES) + body + suffix


def test_fuzz_only_input_error_escapes() -> None:
    rng = random.Random(20240601)
    accepted = 0
    for _ in range(4000):
        text = _garbage(rng)
        try:
            result = validate_video_url(text)
        except InputError as exc:
            message = str(exc)
            assert message and len(message) < 200
            continue
        accepted += 1
        assert result == text.strip()
        assert result.lower().startswith("https://")
        # Whatever passes must also produce a label without blowing up.
        assert len(resolve_source(attachment=None, url=text).label) <= 100
    assert accepted < 4000


def test_fuzz_attachments_only_input_error_escapes() -> None:
    rng = random.Random(7)
    for _ in range(1000):
        kwargs = {
            "filename": _garbage(rng),
            "content_type": rng.choice([None, "", "video/mp4", _garbage(rng)]),
            "size": rng.choice([0, 1, MAX_VIDEO_BYTES, MAX_VIDEO_BYTES + 1, -1, rng.randint(1, 10**9)]),
            "url": _garbage(rng),
        }
        try:
            validate_attachment(**kwargs)  # type: ignore[arg-type]
        except InputError as exc:
            assert len(str(exc)) < 200
