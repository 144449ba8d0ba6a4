"""Validation of members' /upscale input, done on the text alone.

The bot never fetches, resolves or connects to a member's URL: the upscale provider
fetches it. Validating offline means a member cannot use the bot to probe the bot's
own network, and the host checks below are defence in depth for the provider (they
refuse obviously internal targets; they cannot catch a public name that resolves to a
private address, which only the fetcher can stop).

Every refusal is an :class:`InputError`: a message id (a short, friendly English sentence marked with ``_()``)
and its values, rendered in the member's language when shown as an ephemeral reply (``str()`` is the English
text). Anything quoted back is truncated and is a value, never part of the sentence.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from bot.i18n import Phrase, _
from bot.text import clip, clip_middle

__all__ = [
    "ALLOWED_SCALES",
    "MAX_URL_LENGTH",
    "MAX_VIDEO_BYTES",
    "AttachmentInfo",
    "InputError",
    "Refusal",
    "VideoSource",
    "is_public_host",
    "resolve_source",
    "validate_attachment",
    "validate_scale",
    "validate_video_url",
]

MAX_URL_LENGTH = 2048
MAX_VIDEO_BYTES = 50_000_000
ALLOWED_SCALES = (1, 2, 4)

_MAX_QUOTE = 80
_MAX_LABEL = 100
_MAX_HOST = 253
_HTTPS_PREFIX = "https://"

# One DNS label in its ASCII (post-IDNA) form. Underscore is tolerated because some
# real CDN names use it; anything else outside letters/digits/hyphen is refused.
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# A strict dotted quad of decimal octets without leading zeros: the only numeric host
# form we are willing to read as an IP (other forms are parsed differently by
# different clients, which is exactly what SSRF tricks exploit).
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_DOTTED_QUAD_RE = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
# WHATWG URL "ends in a number": a host whose last label is decimal or 0x-hex is
# parsed as IPv4 by browsers and curl (2130706433, 0x7f000001, 127.1, ...).
_NUMERIC_LABEL_RE = re.compile(r"[0-9]+|0x[0-9a-f]*")
_IPV6_CHARS_RE = re.compile(r"[0-9a-fA-F:.]+")
# Names that only ever mean "this machine" or "a private network".
_INTERNAL_SUFFIXES = ("localhost", "local", "localdomain", "internal", "home.arpa", "lan")
# IPv6 ranges that embed an IPv4 address which a gateway may forward to.
_NAT64_NETS = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
# Character categories refused anywhere in a URL: control, format (zero-width,
# bidi overrides), surrogates, private-use and unassigned code points.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


class Refusal(Phrase, Exception):
    """What a member is told instead of what they asked for, kept as a message id and its values rather than a
    finished sentence, so each member reads it in their own language: render(locale) at the edge. str() is the
    English text (logs, and code that has no member to ask)."""

    def __init__(self, message: str, /, **values: object) -> None:
        Exception.__init__(self, message)
        Phrase.__init__(self, message, **values)


class InputError(Refusal):
    """A member's input was refused: InputError(_("... {name} ..."), name=value), shown to them privately."""


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """The parts of a Discord attachment we validate (decoupled from discord.py for tests)."""

    filename: str
    content_type: str | None
    size: int
    url: str


@dataclass(frozen=True, slots=True)
class VideoSource:
    """A validated video to submit upstream."""

    kind: str  # "attachment" | "url"
    url: str  # what is submitted upstream
    label: str  # short human label for the task card (<= 100 chars)


# --------------------------------------------------------------------------- helpers


def _clean(text: str) -> str:
    """Drop hidden characters so quoted/label text cannot break the reply's layout."""
    out: list[str] = []
    for ch in text:
        if ch.isspace():
            out.append(" ")
        elif unicodedata.category(ch) not in _HIDDEN_CATEGORIES:
            out.append(ch)
    return "".join(out)


def _quote(text: str, limit: int = _MAX_QUOTE) -> str:
    """Member text made safe to show back: cleaned, backticks removed, truncated."""
    cleaned = _clean(text).replace("`", "'")
    return f"`{clip(cleaned, limit)}`"


def _ip_is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True only for globally routable unicast addresses.

    ``is_global`` alone is not enough: it is True for multicast and for IPv6 forms that
    carry an IPv4 address (mapped, 6to4, NAT64, compat) which must be checked itself.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        if ip.ipv4_mapped is not None:
            return _ip_is_public(ip.ipv4_mapped)
        if int(ip) < 2**32:  # ::/96, the deprecated IPv4-compatible form (incl. :: and ::1)
            return False
        if any(ip in net for net in _NAT64_NETS):
            return _ip_is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None:
            return _ip_is_public(ip.sixtofour)
        if ip.teredo is not None:
            return False
        if ip.is_site_local:
            return False
    return bool(
        ip.is_global
        and not ip.is_multicast
        and not ip.is_private
        and not ip.is_reserved
        and not ip.is_loopback
        and not ip.is_link_local
        and not ip.is_unspecified
    )


_PRIVATE_IP_MSG = _("That link points to a private or reserved IP address — use a public link.")
_BAD_HOST_MSG = _("That link's website name isn't valid — check the link and try again.")
_NO_HOST_MSG = _("That link has no website name after https:// — check it and try again.")
_NOT_A_URL_MSG = _("That link isn't a valid web address — check it and try again.")
_NOT_HTTPS_MSG = _("That link must start with https://.")
_UPLOAD_LINK_MSG = _("Couldn't use that upload's link — try uploading the file again.")


def _check_ipv6_host(host: str) -> None:
    """Validate the text between [ and ] in the netloc."""
    if "%" in host:
        raise InputError(_("That link uses an IPv6 zone (%) — use a normal public link."))
    if not _IPV6_CHARS_RE.fullmatch(host):
        raise InputError(_BAD_HOST_MSG)
    try:
        ip = ipaddress.IPv6Address(host)
    except ValueError:
        raise InputError(_("That link's IPv6 address isn't valid — check the link and try again.")) from None
    if not _ip_is_public(ip):
        raise InputError(_PRIVATE_IP_MSG)


def _check_name_host(host: str) -> None:
    """Validate a registered-name (or IPv4) host, after IDNA-encoding it.

    Every check runs on the ASCII form because IDNA mapping can turn innocent-looking
    Unicode into something else (fullwidth letters -> "localhost", circled digits ->
    "127.0.0.1", ideographic full stop -> ".").
    """
    if "%" in host:
        raise InputError(_("That link's website name contains a percent sign (%) — use a normal domain name."))
    try:
        ascii_host = host.lower().encode("idna").decode("ascii")
        # Round-trip to reject malformed punycode ("xn--zz") that DNS would never serve.
        ascii_host.encode("ascii").decode("idna")
    except (UnicodeError, ValueError):
        raise InputError(_BAD_HOST_MSG) from None
    ascii_host = ascii_host.lower()
    name = ascii_host[:-1] if ascii_host.endswith(".") else ascii_host
    if not name:
        raise InputError(_NO_HOST_MSG)
    if len(name) > _MAX_HOST:
        raise InputError(_("That link's website name is too long — check the link and try again."))
    labels = name.split(".")
    if any(not label for label in labels):
        raise InputError(_BAD_HOST_MSG)
    if _NUMERIC_LABEL_RE.fullmatch(labels[-1]):
        if not _DOTTED_QUAD_RE.fullmatch(name):
            raise InputError(_("That link's address is written as an unusual number — use a normal domain name."))
        if not _ip_is_public(ipaddress.IPv4Address(name)):
            raise InputError(_PRIVATE_IP_MSG)
        return
    if not all(_LABEL_RE.fullmatch(label) for label in labels):
        raise InputError(_BAD_HOST_MSG)
    if any(name == s or name.endswith("." + s) for s in _INTERNAL_SUFFIXES):
        if name == "localhost" or name.endswith(".localhost"):
            raise InputError(_("That link points to localhost (this machine) — use a public link."))
        raise InputError(_("That link points to a local/internal network name — use a public link."))
    if len(labels) < 2:
        raise InputError(_("That link's website name is incomplete — use a full domain name like example.com."))


def is_public_host(host: str) -> bool:
    """True for a public DNS name or a globally routable IP address, as URL parsing gives it (IPv6 without
    brackets). The one check of "may the provider be sent here": members' video links and CALLBACK_URL."""
    try:
        if ":" in host:
            _check_ipv6_host(host)
        else:
            _check_name_host(host)
    except (InputError, ValueError, UnicodeError):
        return False
    return True


def _check_netloc(netloc: str) -> str:
    """Validate userinfo, host and port; return a display form of the host."""
    if "@" in netloc:
        raise InputError(
            _("That link contains a login (the part with @) — use a plain link without a username or password."))
    if netloc.startswith("["):
        end = netloc.find("]")
        if end == -1:
            raise InputError(_BAD_HOST_MSG)
        host, rest = netloc[1:end], netloc[end + 1 :]
        display = f"[{host}]"
        bracketed = True
    else:
        host, sep, port_text = netloc.partition(":")
        rest = sep + port_text
        display = host.lower()
        bracketed = False
    if not host:
        raise InputError(_NO_HOST_MSG)
    if rest:
        if not rest.startswith(":"):
            raise InputError(_BAD_HOST_MSG)
        port_text = rest[1:]
        # isdigit() alone accepts non-ASCII digits that int() would happily convert.
        if port_text and not (port_text.isascii() and port_text.isdigit()):
            raise InputError(_("That link has an invalid port after the colon — remove it and try again."))
        if port_text and int(port_text) != 443:
            raise InputError(_("That link uses port {port} — only normal https links (port 443) work."),
                             port=_quote(port_text, 12))
    if bracketed:
        _check_ipv6_host(host)
    else:
        _check_name_host(host)
    return display


def _path_ends_mp4(path: str) -> bool:
    """True when the percent-decoded last path segment is a non-empty name ending in .mp4."""
    segment = unquote(path).rsplit("/", 1)[-1]
    return len(segment) > len(".mp4") and segment.lower().endswith(".mp4")


def _check_url(url: object, *, require_mp4_path: bool) -> tuple[str, str, str]:
    """Shared URL checks. Returns (stripped url, display host, raw path)."""
    if not isinstance(url, str):
        raise InputError(_("Please give the video link as text."))
    url = url.strip()
    if not url:
        raise InputError(_("That link is empty — paste an https:// link to an .mp4 file."))
    if len(url) > MAX_URL_LENGTH:
        raise InputError(_("That link is too long (over {limit} characters) — use a shorter link."),
                         limit=MAX_URL_LENGTH)
    if any(ch.isspace() for ch in url):
        raise InputError(_("That link contains spaces or line breaks — paste just the link, with no spaces."))
    if any(unicodedata.category(ch) in _HIDDEN_CATEGORIES for ch in url):
        raise InputError(_("That link contains hidden or control characters — copy it again and paste just the link."))
    if "\\" in url:
        raise InputError(_("That link contains a backslash (\\) — use forward slashes (/) only."))
    if url[: len(_HTTPS_PREFIX)].lower() != _HTTPS_PREFIX:
        raise InputError(_NOT_HTTPS_MSG)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InputError(_NOT_A_URL_MSG) from None
    if parts.scheme != "https":  # pragma: no cover - guaranteed by the prefix check
        raise InputError(_NOT_HTTPS_MSG)
    display_host = _check_netloc(parts.netloc)
    if require_mp4_path and not _path_ends_mp4(parts.path):
        if ".mp4" in (parts.query + parts.fragment).lower():
            raise InputError(
                _("The .mp4 must be in the link's path, not after the ? or # — link directly to the .mp4 file."))
        raise InputError(_("That link must point directly to an .mp4 file (its path should end in .mp4)."))
    return url, display_host, parts.path


# ------------------------------------------------------------------------ public API


def validate_video_url(url: str) -> str:
    """Return the URL to submit (surrounding whitespace stripped), or raise InputError.

    Pure text checks: no DNS, no HTTP. Any unexpected parser error becomes an
    InputError so a hostile string can never crash the command handler.
    """
    try:
        return _check_url(url, require_mp4_path=True)[0]
    except InputError:
        raise
    except (ValueError, TypeError, UnicodeError):
        raise InputError(_NOT_A_URL_MSG) from None


def validate_attachment(*, filename: str, content_type: str | None, size: int, url: str) -> str:
    """Return the attachment's URL to submit, or raise InputError.

    The filename (not the CDN path) decides the .mp4 rule; a missing content type is
    tolerated because Discord sometimes omits it, but one that says "not video" is not.
    """
    if not isinstance(filename, str) or not filename.lower().endswith(".mp4") or len(filename) <= 4:
        if not isinstance(filename, str):
            raise InputError(_("Only .mp4 videos are supported — that file isn't an .mp4 file."))
        raise InputError(_("Only .mp4 videos are supported — {file} isn't an .mp4 file."), file=_quote(filename))
    if content_type is not None and not isinstance(content_type, str):
        raise InputError(_("That file doesn't look like a video — upload an .mp4 video."))
    if content_type and content_type.strip() and not content_type.strip().lower().startswith("video/"):
        raise InputError(_("That file doesn't look like a video (it's {type}) — upload an .mp4 video."),
                         type=_quote(content_type.strip(), 40))
    if isinstance(size, bool) or not isinstance(size, int):
        raise InputError(_("Couldn't read that file's size — try uploading it again."))
    if size <= 0:
        raise InputError(_("That file is empty — upload an .mp4 video."))
    if size > MAX_VIDEO_BYTES:
        raise InputError(_("That video is too big — the limit is {megabytes} MB."),
                         megabytes=MAX_VIDEO_BYTES // 1_000_000)
    try:
        return _check_url(url, require_mp4_path=False)[0]
    except InputError as exc:
        raise InputError(_UPLOAD_LINK_MSG) from exc
    except (ValueError, TypeError, UnicodeError) as exc:
        raise InputError(_UPLOAD_LINK_MSG) from exc


def validate_scale(scale: object) -> int:
    """Return the scale if it is exactly the int 1, 2 or 4 (bools and strings refused)."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in ALLOWED_SCALES:
        raise InputError(_("Scale must be 1, 2 or 4."))
    return int(scale)


def _url_label(url: str) -> str:
    """host + last path segment, decoded and cleaned, for the task card."""
    _, host, path = _check_url(url, require_mp4_path=True)
    segment = _clean(unquote(path).rsplit("/", 1)[-1]).strip()
    return clip_middle(f"{host}/{segment}", _MAX_LABEL)


def resolve_source(*, attachment: AttachmentInfo | None, url: str | None) -> VideoSource:
    """Pick and validate exactly one video source (an empty/whitespace url counts as not given)."""
    has_url = url is not None and not (isinstance(url, str) and not url.strip())
    if attachment is not None and has_url:
        raise InputError(_("Send either a video file or a link, not both."))
    if attachment is not None:
        submitted = validate_attachment(
            filename=attachment.filename,
            content_type=attachment.content_type,
            size=attachment.size,
            url=attachment.url,
        )
        label = clip_middle(_clean(attachment.filename).strip(), _MAX_LABEL)
        return VideoSource(kind="attachment", url=submitted, label=label)
    if has_url:
        submitted = validate_video_url(url)  # type: ignore[arg-type]
        return VideoSource(kind="url", url=submitted, label=_url_label(submitted))
    raise InputError(_("Attach an .mp4 video or give an https:// link to one."))
