"""Personal data in free text: e-mail addresses, phone numbers and payment card numbers.

Customers type these into the chat whatever we ask. Three places must not keep or pass them on:
the logs (a log line outlives the conversation and is read by people who should not see a card
number), the prompt sent to a hosted LLM provider (another company's servers), and, for card
numbers, the chat itself (the customer is told not to send them). The detectors live here, once,
so the log filter, the prompt builders and the chat agree on what counts.

Card numbers are 13 to 19 digits (spaces or dashes allowed between them) that pass the Luhn
check, which ordinary order numbers and phone numbers almost never do. Phone numbers need a
``+`` country prefix with at least 8 digits, or at least 9 digits in groups separated by spaces,
dashes or brackets: an order number written as one run of digits is left alone, and so are dates
and times.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

EMAIL_MASK = "[email]"
PHONE_MASK = "[phone]"
CARD_MASK = "[card number]"

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_CARD = re.compile(r"(?<![\d+-])\d(?:[ -]?\d){12,18}(?![\d])")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ -]?)?(?:\(\d{1,5}\)[ -]?)?\d{2,5}(?:[ -]\d{2,5}){1,5}(?![\w])"
    r"|(?<![\w+])\+\d{8,15}(?![\w])"
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}-\d{2}-\d{4}")


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


def _card_like(match: re.Match[str]) -> bool:
    digits = _digits(match.group(0))
    return 13 <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1


def find_card_numbers(text: str) -> list[str]:
    """The card numbers in ``text`` as written (Luhn-checked, 13-19 digits)."""
    return [match.group(0) for match in _CARD.finditer(text) if _card_like(match)]


def contains_card_number(text: str) -> bool:
    return any(_card_like(match) for match in _CARD.finditer(text))


def _phone_like(match: re.Match[str]) -> bool:
    text = match.group(0)
    digits = _digits(text)
    if _DATE.search(text):
        return False
    if text.startswith("+"):
        return 8 <= len(digits) <= 15
    return 9 <= len(digits) <= 15


def mask_personal_data(text: str) -> str:
    """``text`` with card numbers, e-mail addresses and phone numbers replaced by placeholders
    (``[card number]``, ``[email]``, ``[phone]``): the words around them stay, so a model still
    understands "my card [card number] was charged twice"."""
    if not text:
        return text
    text = _CARD.sub(lambda m: CARD_MASK if _card_like(m) else m.group(0), text)
    text = _EMAIL.sub(EMAIL_MASK, text)
    return _PHONE.sub(lambda m: PHONE_MASK if _phone_like(m) else m.group(0), text)


# --- logs ---------------------------------------------------------------------------------------


def _mask_value(value: Any) -> Any:
    """One ``%``-argument of a log call, masked without changing what a formatter expects:
    strings stay strings, numbers stay numbers unless they are card numbers."""
    if isinstance(value, str):
        return mask_personal_data(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return CARD_MASK if contains_card_number(str(value)) else value
    if isinstance(value, bytes):
        return value
    text = str(value)
    masked = mask_personal_data(text)
    return value if masked == text else masked


class PersonalDataFilter(logging.Filter):
    """A logging filter that masks personal data in the message, its arguments and the
    formatted traceback of every record it sees. It never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


def mask_record(record: logging.LogRecord) -> None:
    """Mask ``record`` in place. Arguments are masked one by one (not merged into the message)
    because some formatters read them positionally (uvicorn's access log does)."""
    if getattr(record, "_supportbot_masked", False):
        return
    setattr(record, "_supportbot_masked", True)  # noqa: B010  (LogRecord has no such field)
    if isinstance(record.msg, str):
        record.msg = mask_personal_data(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_mask_value(arg) for arg in record.args)
    elif isinstance(record.args, dict):
        record.args = {key: _mask_value(value) for key, value in record.args.items()}
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = mask_personal_data(record.exc_text)


_install_lock = threading.Lock()
_installed: list[Callable[..., logging.LogRecord]] = []


def install_log_masking() -> None:
    """Mask every log record of the process from now on, whichever logger or handler it goes
    through (ours, uvicorn's, a library's): the filter runs where records are created, so a
    handler configured later cannot miss it. Idempotent."""
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            mask_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed.append(previous)


def uninstall_log_masking() -> None:
    """Undo :func:`install_log_masking` (tests)."""
    with _install_lock:
        if _installed:
            logging.setLogRecordFactory(_installed.pop())
