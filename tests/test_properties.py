"""Property tests: whatever the input, only the project's own typed errors escape the parsers.

Each function here sits on a trust boundary (a member's /upscale input, an upstream answer, the operator's
environment). An exception other than the documented one would surface as "interaction failed", a crashed
poll or an unreadable start-up traceback, so the properties are "returns something sane or raises exactly
InputError / EvolinkError(MALFORMED) / ConfigError".

The strategies include what these properties once caught: HTTP dates with numbers past 2**31 (OverflowError),
integer settings past Python's 4300-digit int() limit (ValueError), and task ids ending in a newline.
"""

from __future__ import annotations

import ipaddress
import math
import unicodedata
from urllib.parse import urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import LIMIT_NAMES, ConfigError, Settings, load_settings
from bot.evolink import KNOWN_STATUSES, ErrorKind, EvolinkError, TaskSnapshot, parse_retry_after, parse_task
from bot.validation import (
    ALLOWED_SCALES,
    MAX_VIDEO_BYTES,
    AttachmentInfo,
    InputError,
    VideoSource,
    resolve_source,
    validate_attachment,
    validate_scale,
    validate_video_url,
)


def _fast(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


# ----------------------------------------------------------------------------------------- alphabets

# Single characters and short tokens that parsers trip over: delimiters, percent-escapes, IDNA look-alikes,
# control/format characters, surrogates, non-ASCII digits and letters whose case mapping changes length.
_HOSTILE_TOKENS = [
    *"abcxyzABCXYZ0123456789.-_~/:@?#[]%&=+!$'()*,;\\ ",
    "\x00", "\t", "\n", "\r", "\x0b", "\x1f", "\x7f", "\x85", "\xa0", "\u2028", "\u3000",
    "\u200b", "\u200d", "\u202e", "\u2066", "\ufeff", "\ud800", "\udfff", "\ue000", "\U000e0001",
    "\uff0e", "\u3002", "\uff61", "\uff20", "\uff0f", "\uff1a", "\u2044", "\u2215",
    "é", "ü", "ß", "Ω", "中", "😀", "①", "⑫", "\u0664", "\u0966", "İ", "ı", "\ufb01", "K", "ſ",
    "%", "%2e", "%2E", "%00", "%0a", "%25", "%2f", "%40", "%5b", "%3a", "%zz", "%",
    "xn--", "xn--zz", "xn--bcher-kva", "::", "::1", "::ffff:", "0x", "0x7f", "0177", "127", "255", "256",
    ".mp4", ".MP4", ".mp4.", "localhost", "LOCALHOST", "ｌｏｃａｌｈｏｓｔ", ".internal", ".local", ":443", ":0",
]
_VISIBLE_TOKENS = [
    tok for tok in _HOSTILE_TOKENS
    if not any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in tok)
    and "\\" not in tok
]


def _joined(tokens: list[str], max_size: int) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(tokens) | st.characters(), max_size=max_size).map("".join)


hostile_text = _joined(_HOSTILE_TOKENS, 12)
# Past the early whitespace/control/backslash checks, so host, port and path parsing are exercised.
visible_text = st.lists(st.sampled_from(_VISIBLE_TOKENS), max_size=10).map("".join)
part_text = visible_text | hostile_text

# A URL is built from eight parts; each part comes from a "good" strategy (a link that passes) unless it is
# picked to be hostile. Picking 0-3 hostile parts per URL keeps a fair share fully valid, so the "accepted"
# branch is exercised too, and probes each check with the others passing.
_GOOD_PARTS: list[st.SearchStrategy[str]] = [
    st.sampled_from(["https", "HTTPS", "hTTpS"]),
    st.just("://"),
    st.just(""),
    st.one_of(
        st.sampled_from(["example.com", "EXAMPLE.COM", "example.com.", "bücher.de", "xn--bcher-kva.de",
                         "a.b-c.d_e.io", "8.8.8.8", "[2606:4700::1111]", "[::ffff:8.8.8.8]", "cdn.discordapp.com"]),
        st.from_regex(r"[a-z0-9](?:[a-z0-9_-]{0,8}[a-z0-9])?(?:\.[a-z0-9-]{1,8}){1,3}\.?", fullmatch=True),
        st.tuples(st.text("abcéüß中Ωı-", min_size=1, max_size=8), st.sampled_from([".com", ".de", ".中国"])).map(
            "".join),
        st.ip_addresses(v=4).map(str),
        st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
    ),
    st.sampled_from(["", "", ":443"]),
    st.from_regex(r"(?:/[A-Za-z0-9._~%-]{0,8}){0,3}/[A-Za-z0-9._~é-]{1,8}\.(?:mp4|MP4)", fullmatch=True),
    st.sampled_from(["", "?", "?x=1", "?ex=65f1&is=65e0&hm=abc&"]),
    st.sampled_from(["", "#", "#t=10"]),
]
_BAD_PARTS: list[st.SearchStrategy[str]] = [
    st.sampled_from(["http", "javascript", "data", "file", "ftp", "", "https:", "ｈttps", "https\x00"]),
    st.sampled_from([":/", ":", "//", ":\\\\", ":///", "://\\", ":/\\", "://@", ":// "]),
    part_text.map(lambda s: s + "@"),
    st.one_of(
        st.sampled_from([
            "xn--zz.com", "a..b", "127.0.0.1", "10.0.0.1", "169.254.169.254", "0", "0x7f000001", "2130706433",
            "127.1", "0177.0.0.1", "localhost", "localhost.", "ｌｏｃａｌｈｏｓｔ", "metadata.google.internal",
            "①②⑦.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "[fe80::1%25eth0]", "[v1.x]", "[", "]", "[]", "",
            "a" * 64 + ".com", ".".join(["a" * 63] * 5), "a" * 300,
        ]),
        part_text,
    ),
    st.one_of(
        st.integers(min_value=-10, max_value=10**6).map(lambda n: f":{n}"),
        st.sampled_from([":", ":0443", ":+443", ":٤٤٣", ":443:443", ":8080", ":0", ":99999"]),
        part_text.map(lambda s: ":" + s),
    ),
    st.one_of(
        st.sampled_from(["", "/", "/a.mp4/", "/%2emp4", "/a.mp4%00", "/a.mp4%20", "/a.mov", "/.mp4", "/a.mp4;x"]),
        part_text.map(lambda s: "/" + s),
        part_text.map(lambda s: "/" + s + ".mp4"),
    ),
    part_text.map(lambda s: "?" + s),
    part_text.map(lambda s: "#" + s),
]


@st.composite
def _url_like(draw: st.DrawFn) -> str:
    hostile = draw(st.sets(st.integers(min_value=0, max_value=len(_GOOD_PARTS) - 1), max_size=3))
    return "".join(draw(_BAD_PARTS[i] if i in hostile else good) for i, good in enumerate(_GOOD_PARTS))


url_like = _url_like()
# A valid link with one hostile token spliced in somewhere: the cheapest way to probe every check in turn.
_VALID_URLS = ["https://example.com/a.mp4", "https://cdn.discordapp.com/attachments/1/2/clip.mp4?ex=1#t",
               "https://[2606:4700::1111]:443/v.mp4", "https://8.8.8.8/v.mp4", "https://bücher.de/film.MP4"]
spliced_urls = st.builds(
    lambda base, index, token, replace: base[:index % (len(base) + 1)] + token
    + base[index % (len(base) + 1) + (1 if replace else 0):],
    st.sampled_from(_VALID_URLS),
    st.integers(min_value=0, max_value=200),
    st.sampled_from(_HOSTILE_TOKENS) | st.characters(),
    st.booleans(),
)


def _any_text() -> st.SearchStrategy[str]:
    return st.text() | st.text(st.characters(exclude_categories=())) | hostile_text


# ------------------------------------------------------------------------------------------ validation


def _check_refusal(exc: InputError) -> None:
    message = str(exc)
    assert message and len(message) < 300, message
    assert len(message.splitlines()) == 1, message


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, NAT64), so is_global is judged the same on every 3.11.x."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def _check_accepted_url(text: str, result: object) -> None:
    assert isinstance(result, str)
    assert result == text.strip()
    assert result[:8].lower() == "https://"
    assert not any(ch.isspace() for ch in result)
    parts = urlsplit(result)
    assert "@" not in parts.netloc
    assert parts.port in (None, 443)
    host = parts.hostname or ""
    try:
        ip = _embedded_ipv4(ipaddress.ip_address(host))
    except ValueError:
        ip = None
    if ip is not None:
        assert ip.is_global and not ip.is_multicast, f"{result!r} reaches a non-public address"
    assert host.rstrip(".") not in ("localhost", "")
    # Whatever is accepted must also label cleanly for the task card.
    source = resolve_source(attachment=None, url=text)
    assert source.kind == "url" and source.url == result and len(source.label) <= 100


def _run_url(text: object) -> None:
    try:
        result = validate_video_url(text)  # type: ignore[arg-type]
    except InputError as exc:
        _check_refusal(exc)
        return
    _check_accepted_url(text, result)  # type: ignore[arg-type]


@_fast(400)
@given(_any_text())
def test_validate_video_url_arbitrary_text(text: str) -> None:
    _run_url(text)


@_fast(400)
@given(url_like)
def test_validate_video_url_url_shaped(text: str) -> None:
    _run_url(text)


@_fast(300)
@given(spliced_urls)
def test_validate_video_url_one_hostile_token(text: str) -> None:
    _run_url(text)


@_fast(150)
@given(st.one_of(st.none(), st.integers(), st.floats(), st.binary(), st.lists(st.text(max_size=3), max_size=2)))
def test_validate_video_url_non_text(value: object) -> None:
    try:
        validate_video_url(value)  # type: ignore[arg-type]
    except InputError as exc:
        _check_refusal(exc)
    else:
        raise AssertionError(f"accepted a {type(value).__name__}")


_sizes = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**130), max_value=2**130),
    st.sampled_from([-1, 0, 1, MAX_VIDEO_BYTES - 1, MAX_VIDEO_BYTES, MAX_VIDEO_BYTES + 1, 10**100, -(10**100)]),
    st.booleans(),
    st.floats(),
    st.text(max_size=5),
    st.none(),
)
_filenames = st.one_of(
    _any_text(),
    part_text.map(lambda s: s + ".mp4"),
    st.sampled_from([".mp4", "clip.mp4", "clip.MP4 ", "clip.mp4.exe", "../../clip.mp4", "clip\u202e4pm.mp4"]),
    st.none(),
    st.integers(),
)
_content_types = st.one_of(
    st.none(),
    _any_text(),
    st.sampled_from(["video/mp4", "VIDEO/MP4", " video/mp4 ", "text/html", "video", "videos/mp4", ""]),
    st.integers(),
)
_attachment_urls = st.one_of(
    url_like,
    _any_text(),
    st.just("https://cdn.discordapp.com/attachments/1/2/clip.mp4?ex=1&is=2&hm=3&"),
    st.none(),
)


@_fast(500)
@given(_filenames, _content_types, _sizes, _attachment_urls)
def test_validate_attachment_arbitrary(filename: object, content_type: object, size: object, url: object) -> None:
    try:
        result = validate_attachment(filename=filename, content_type=content_type,  # type: ignore[arg-type]
                                     size=size, url=url)  # type: ignore[arg-type]
    except InputError as exc:
        _check_refusal(exc)
        return
    assert isinstance(filename, str) and filename.lower().endswith(".mp4") and len(filename) > 4
    assert type(size) is int and 0 < size <= MAX_VIDEO_BYTES
    assert content_type is None or (isinstance(content_type, str) and (
        not content_type.strip() or content_type.strip().lower().startswith("video/")))
    assert isinstance(url, str) and result == url.strip()
    assert result[:8].lower() == "https://" and not any(ch.isspace() for ch in result)
    source = resolve_source(attachment=AttachmentInfo(filename, content_type, size, url), url=None)
    assert source == VideoSource(kind="attachment", url=result, label=source.label)
    assert len(source.label) <= 100


@_fast(300)
@given(st.one_of(
    st.integers(), st.integers(min_value=-5, max_value=10), st.booleans(), st.floats(), st.text(max_size=4),
    st.none(), st.sampled_from([1.0, 2.0, 4.0, "1", "2", "4", b"2", [2], (4,), {2: 2}, complex(2)]),
))
def test_validate_scale_arbitrary(value: object) -> None:
    try:
        result = validate_scale(value)
    except InputError as exc:
        assert str(exc) == "Scale must be 1, 2 or 4."
        assert type(value) is not int or value not in ALLOWED_SCALES
        return
    assert type(value) is int and type(result) is int and result == value and result in ALLOWED_SCALES


@_fast(300)
@given(st.one_of(st.none(), st.builds(AttachmentInfo, _filenames, _content_types, _sizes, _attachment_urls)),
       st.one_of(st.none(), _any_text(), url_like))
def test_resolve_source_arbitrary(attachment: AttachmentInfo | None, url: str | None) -> None:
    try:
        source = resolve_source(attachment=attachment, url=url)
    except InputError as exc:
        _check_refusal(exc)
        return
    assert source.kind in ("url", "attachment")
    assert source.url[:8].lower() == "https://"
    assert len(source.label) <= 100


# ---------------------------------------------------------------------------------------- evolink parse

_json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(), st.text(),
)
json_like = st.recursive(
    _json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
_numbers = st.one_of(
    st.integers(min_value=-1000, max_value=1000), st.floats(), st.sampled_from([0, 50, 100, 101, -1, 1e308, 10**30]),
    st.booleans(), st.text(max_size=4), st.none(),
)
_task_ids = st.one_of(st.sampled_from(["task-unified-1756817821-4x3rx6ny", "a", "A.b_c:d-e", "x" * 200, "x" * 201,
                                       "", " task", "task/1", "täsk"]), st.text(max_size=12), json_like)
_statuses = st.one_of(st.sampled_from([*sorted(KNOWN_STATUSES), "canceled", " COMPLETED ", "Processing", "", "  ",
                                       "queued", "x" * 64, "x" * 65]), st.text(max_size=10), json_like)
_result_url_values = st.one_of(
    st.sampled_from(["https://cdn.example.com/out.mp4", "http://cdn.example.com/out.mp4", "HTTPS://X/y",
                     "ftp://x/y.mp4", "https://", "https:///x", " https://a/b ", "https://a/b c", "https://[::1/x",
                     "javascript:alert(1)", "//cdn.example.com/out.mp4", ""]),
    url_like, json_like,
)
_url_lists = st.one_of(st.lists(_result_url_values, max_size=3), _result_url_values)
_result_data = st.one_of(
    st.lists(st.one_of(
        st.fixed_dictionaries({}, optional={"video_url": _result_url_values, "url": _result_url_values}),
        _result_url_values,
    ), max_size=3),
    _result_url_values,
)
_usage = st.one_of(
    st.fixed_dictionaries({}, optional={
        "credits_used": _numbers, "credits_reserved": _numbers,
        "cost": st.one_of(st.fixed_dictionaries({}, optional={"credits": _numbers}), json_like),
    }),
    json_like,
)
_errors = st.one_of(
    st.fixed_dictionaries({}, optional={"code": st.one_of(st.integers(), st.text(max_size=6), json_like),
                                        "message": st.one_of(st.text(), json_like)}),
    st.text(), json_like,
)
task_shaped = st.fixed_dictionaries(
    {"id": _task_ids, "status": _statuses},
    optional={
        "progress": _numbers, "results": _url_lists, "result_urls": _url_lists, "result_data": _result_data,
        "usage": _usage, "error": _errors, "created": _numbers,
        "task_info": st.one_of(st.fixed_dictionaries({}, optional={"estimated_time": _numbers}), json_like),
        "object": json_like, "model": json_like, "type": json_like,
    },
)
# Sometimes drop a required key, or wrap the whole answer the way a gateway might.
task_answers = st.one_of(
    task_shaped,
    task_shaped.flatmap(lambda d: st.sampled_from(sorted(d)).map(lambda k: {x: v for x, v in d.items() if x != k})),
    task_shaped.map(lambda d: {"data": d}),
    json_like,
)


def _finite_or_none(value: float | None, *, minimum: float | None = 0.0) -> bool:
    if value is None:
        return True
    return isinstance(value, float) and math.isfinite(value) and (minimum is None or value >= minimum)


def _run_parse_task(data: object) -> None:
    try:
        snap = parse_task(data)
    except EvolinkError as exc:
        assert exc.kind is ErrorKind.MALFORMED
        assert len(str(exc).splitlines()) == 1
        assert len(exc.message) <= 300
        return
    assert isinstance(snap, TaskSnapshot)
    assert isinstance(data, dict) and snap.task_id == data["id"] and "\n" not in snap.task_id
    assert isinstance(snap.status, str) and snap.status and snap.status == snap.status.strip()
    assert snap.progress is None or (type(snap.progress) is int and 0 <= snap.progress <= 100)
    if snap.result_url is not None:
        assert isinstance(snap.result_url, str)
        assert urlsplit(snap.result_url).scheme.lower() in ("http", "https")
        assert not any(ch.isspace() for ch in snap.result_url)
    if snap.status == "completed":
        assert snap.result_url is not None
    assert snap.status != "canceled"
    for value in (snap.estimated_time, snap.credits_reserved, snap.credits_used):
        assert _finite_or_none(value)
    assert snap.created is None or (type(snap.created) is int and snap.created >= 0)
    for text in (snap.error_code, snap.error_message):
        assert text is None or (isinstance(text, str) and text and len(text.splitlines()) == 1)


@_fast(400)
@given(json_like)
def test_parse_task_arbitrary_json(data: object) -> None:
    _run_parse_task(data)


@_fast(350)
@given(task_answers)
def test_parse_task_documented_shapes(data: object) -> None:
    _run_parse_task(data)


_date_numbers = st.one_of(st.integers(min_value=-99, max_value=10**6).map(str),
                          st.integers(min_value=0, max_value=10**25).map(str), st.text("0123456789+-", max_size=8))
http_dates = st.builds(
    lambda day, num, month, year, h, m, s, zone, sep: sep.join(
        [f"{day},", num, month, year, f"{h}:{m}:{s}", zone]),
    st.sampled_from(["Mon", "Sun", "Xyz", ""]),
    _date_numbers,
    st.sampled_from(["Jan", "Feb", "Dec", "jan", "Foo", ""]),
    _date_numbers,
    _date_numbers,
    _date_numbers,
    _date_numbers,
    st.sampled_from(["GMT", "UTC", "+0000", "-0000", "+2359", "-2400", "+9999", "EST", "Z", "", "+00:00"]),
    st.sampled_from([" ", "  ", "\t"]),
)
retry_after_values = st.one_of(
    st.text(), hostile_text, http_dates,
    st.floats().map(repr), st.floats().map(str), st.integers().map(str),
    st.integers(min_value=0, max_value=10**500).map(str),
    st.sampled_from(["nan", "inf", "-inf", "+inf", "1e400", "-0", "-0.0", "1_000", " 5 ", "0x10", "", "  ",
                     "Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00", "Wed, 21 Oct 2015"]),
)


@_fast(700)
@given(retry_after_values, st.one_of(st.none(), st.floats(min_value=0, max_value=4e9)))
def test_parse_retry_after_never_raises(value: str, now: float | None) -> None:
    result = parse_retry_after(value, now=now)
    assert result is None or (isinstance(result, float) and math.isfinite(result) and result >= 0)


def test_parse_retry_after_none_and_known_values() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after(" 7 ") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=2e9) == 0.0


# ------------------------------------------------------------------------------------------- settings

TOKEN = "discord-SECRET-token-9f8e7d6c"
API_KEY = "evolink-SECRET-key-1a2b3c4d"

_digits = st.text("0123456789", min_size=1, max_size=40) | st.just("9" * 4300) | st.just("9" * 5000)
_setting_values = st.one_of(
    st.text(max_size=30),
    hostile_text,
    _digits,
    st.lists(_digits | st.text(" ,", max_size=2), max_size=4).map(",".join),
    st.floats().map(repr),
    st.integers(min_value=-10, max_value=2000).map(str),
    st.sampled_from(["", " ", "0", "1", "0.05", "0.04", "1e999", "nan", "-inf", "900", "901", "1_0", "١٢",
                     "true", "FALSE", "on", "maybe", "debug", "ınfo", "Warning", "sqlite:///", "sqlite:///x.db",
                     "postgres://x/y", "https://api.example.com/", "http://[::1/", "ws://127.0.0.1:1/", "wss://",
                     "18446744073709551615", "18446744073709551616", TOKEN[:5]]),
    url_like,
)
SETTING_NAMES = [
    "EVOLINK_BASE_URL", "DATABASE_URL", "DISCORD_GUILD_IDS", "DISCORD_API_BASE_URL", "DISCORD_GATEWAY_URL",
    "POLL_MIN_SECONDS", "POLL_MAX_SECONDS", "CARD_EDIT_SECONDS", "POLL_CONCURRENCY", "EVOLINK_TIMEOUT_SECONDS",
    "INTERACTION_EDIT_WINDOW_SECONDS", "LOG_LEVEL", "ALERT_CHANNEL_ID", "ALLOW_DM_UPSCALE",
    *[f"DEFAULT_{name.upper()}" for name in LIMIT_NAMES],
]
environments = st.fixed_dictionaries(
    {"DISCORD_TOKEN": st.sampled_from([TOKEN, f"  {TOKEN}\n"]), "EVOLINK_API_KEY": st.just(API_KEY)},
    optional={name: _setting_values for name in SETTING_NAMES},
)


@_fast(300)
@given(environments)
def test_load_settings_only_config_error_escapes(env: dict[str, str]) -> None:
    try:
        loaded = load_settings(env, dotenv_path=None)
    except ConfigError as exc:
        message = str(exc)
        assert message and len(message.splitlines()) == 1, message
        assert TOKEN not in message and API_KEY not in message
        return
    assert isinstance(loaded, Settings)
    assert loaded.discord_token == TOKEN and loaded.evolink_api_key == API_KEY
    assert TOKEN not in repr(loaded) and API_KEY not in repr(loaded)
    assert loaded.poll_min_seconds <= loaded.poll_max_seconds
    assert 0 <= loaded.interaction_edit_window_seconds <= 900
    assert type(loaded.poll_concurrency) is int and loaded.poll_concurrency >= 1
    assert loaded.log_level in ("DEBUG", "INFO", "WARNING", "ERROR")
    assert all(0 < gid < 2**64 for gid in loaded.discord_guild_ids)
    assert loaded.database_url.startswith(("sqlite:///", "postgresql://", "postgres://"))
    assert set(loaded.default_limits) == set(LIMIT_NAMES)
    assert all(v is None or (type(v) is int and v >= 0) for v in loaded.default_limits.values())


@_fast(100)
@given(st.sampled_from(["DISCORD_TOKEN", "EVOLINK_API_KEY"]), st.text(" \t\n\r", max_size=3))
def test_load_settings_missing_secret_is_named(missing: str, blank: str) -> None:
    env = {"DISCORD_TOKEN": TOKEN, "EVOLINK_API_KEY": API_KEY, missing: blank}
    try:
        load_settings(env, dotenv_path=None)
    except ConfigError as exc:
        assert missing in str(exc) and len(str(exc).splitlines()) == 1
        assert TOKEN not in str(exc) and API_KEY not in str(exc)
    else:
        raise AssertionError("a blank secret was accepted")


def test_regressions_found_by_these_properties() -> None:
    assert parse_retry_after("0 JAN 0 0:2147483648 GMT") is None
    assert parse_retry_after("Mon, 01 Jan 99999999999999999999 00:00:00 +0000") is None
    try:
        parse_task({"id": "abc\n", "status": "pending"})
        raise AssertionError("a task id ending in a newline was accepted")
    except EvolinkError as error:
        assert error.kind == ErrorKind.MALFORMED
    assert parse_task({"id": "abc", "status": "pending", "progress": 10**400}).progress is None
    for name in ("ALERT_CHANNEL_ID", "DISCORD_GUILD_IDS", "DEFAULT_USER_DAILY_JOBS"):
        try:
            load_settings({"DISCORD_TOKEN": TOKEN, "EVOLINK_API_KEY": API_KEY, name: "9" * 5000}, dotenv_path=None)
            raise AssertionError(f"{name} accepted 5000 digits")
        except ConfigError as error:
            assert name in str(error) and "\n" not in str(error)
