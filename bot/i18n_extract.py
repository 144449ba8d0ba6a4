"""Keep the catalogues in step with the code: `.venv/bin/python -m bot.i18n_extract`.

Extracts every message marked with `_("...")` or rendered with `t(locale, "...")` from bot/ and cogs/ into
bot/locales/messages.pot, then merges that template into each bot/locales/<lang>/LC_MESSAGES/messages.po: new
messages appear untranslated (the tests then say which), changed ones become fuzzy, removed ones go. A new
language: copy messages.pot to bot/locales/<lang>/LC_MESSAGES/messages.po and translate it.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from bot.i18n import LOCALES_DIR

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("bot", "cogs")
KEYWORDS = {"_": None, "t": (2,)}
TEMPLATE = LOCALES_DIR / "messages.pot"


def extracted() -> Catalog:
    """Every marked message of the code, with where it is used."""
    template = Catalog(project="upscale-bot", fuzzy=False)
    for folder in SOURCES:
        for filename, lineno, message, comments, context in extract_from_dir(
                ROOT / folder, method_map=[("**.py", "python")], keywords=KEYWORDS, comment_tags=("i18n:",),
                strip_comment_tags=True):
            if isinstance(message, str) and message:
                template.add(message, locations=[(f"{folder}/{filename}", lineno)], auto_comments=comments,
                             context=context, flags=("python-brace-format",) if "{" in message else ())
    return template


def _write(catalog: Catalog, path: Path) -> None:
    """Write the catalogue, unless only its header dates would change (no noise in the history)."""
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=120, omit_header=False, sort_output=True, ignore_obsolete=True)
    if path.exists() and _undated(path.read_bytes()) == _undated(buffer.getvalue()):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())


def _undated(text: bytes) -> list[bytes]:
    return [line for line in text.splitlines() if not line.startswith((b'"POT-Creation-Date:', b'"PO-Revision-Date:'))]


def main() -> int:
    template = extracted()
    _write(template, TEMPLATE)
    for po_path in sorted(LOCALES_DIR.glob("*/LC_MESSAGES/messages.po")):
        with po_path.open("rb") as handle:
            catalog = read_po(handle, locale=po_path.parent.parent.name)
        catalog.update(template, update_header_comment=False)
        _write(catalog, po_path)
        missing = [m.id for m in catalog if m.id and (not m.string or m.fuzzy)]
        print(f"{po_path.relative_to(ROOT)}: {len(catalog)} messages, {len(missing)} to translate")
    print(f"{TEMPLATE.relative_to(ROOT)}: {len(template)} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
