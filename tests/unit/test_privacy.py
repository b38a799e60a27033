"""Personal data detectors (``bot.core.privacy``): card numbers (Luhn-checked), e-mail addresses
and phone numbers are masked; order numbers, dates, prices and ids are not."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bot.core.privacy import (
    CARD_MASK,
    EMAIL_MASK,
    PHONE_MASK,
    PersonalDataFilter,
    contains_card_number,
    find_card_numbers,
    install_log_masking,
    luhn_ok,
    mask_personal_data,
    uninstall_log_masking,
)


def test_luhn() -> None:
    assert luhn_ok("4242424242424242") and luhn_ok("378282246310005")
    assert not luhn_ok("4242424242424241")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("my card is 4242 4242 4242 4242, thanks", f"my card is {CARD_MASK}, thanks"),
        ("4111-1111-1111-1111", CARD_MASK),
        ("amex 3782 822463 10005", f"amex {CARD_MASK}"),
        ("mail me at jo.doe+x@example.co.uk", f"mail me at {EMAIL_MASK}"),
        ("call +44 20 7946 0958 or (555) 123-4567", f"call {PHONE_MASK} or {PHONE_MASK}"),
        ("ring +4915112345678", f"ring {PHONE_MASK}"),
    ],
)
def test_personal_data_is_masked(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567890123 arrived",  # not a valid card number (Luhn)
        "order #123456789",
        "delivered on 2024-01-15 10:22",
        "on 12 03 2024",
        "it cost 25.99",
        "conversation 3f2a9c0e/17",
        "from 192.168.100.200",
        "id 123e4567-e89b-12d3-a456-426614174000",
        "a 4242 4242 4242 4241 typo",
    ],
)
def test_ordinary_numbers_are_left_alone(text: str) -> None:
    assert mask_personal_data(text) == text
    assert not contains_card_number(text)


def test_card_numbers_are_found_as_written() -> None:
    assert find_card_numbers("a 4242-4242-4242-4242 b 5555555555554444") == [
        "4242-4242-4242-4242",
        "5555555555554444",
    ]


def test_filter_masks_message_arguments_and_traceback() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "customer %s paid with %s (%d)", None, None
    )
    record.args = ("jo@example.com", "4242 4242 4242 4242", 3)
    try:
        raise ValueError("bad card 4242424242424242")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert PersonalDataFilter().filter(record)
    assert record.getMessage() == f"customer {EMAIL_MASK} paid with {CARD_MASK} (3)"
    assert record.exc_text is not None and "4242424242424242" not in record.exc_text
    assert CARD_MASK in record.exc_text


@pytest.fixture
def masking() -> Iterator[None]:
    install_log_masking()
    install_log_masking()  # idempotent
    yield
    uninstall_log_masking()


def test_every_logger_is_masked_once_installed(
    masking: None, caplog: pytest.LogCaptureFixture
) -> None:
    from uvicorn.logging import AccessFormatter

    with caplog.at_level(logging.INFO):
        logging.getLogger("some.library").info("user wrote %r", "call me on +1 555 010 0199")
        logging.getLogger("tests.access").info(
            '%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "GET", "/x?e=jo@example.com", "1.1", 200
        )
    text = caplog.text
    assert "+1 555 010 0199" not in text and PHONE_MASK in text
    assert "jo@example.com" not in text and EMAIL_MASK in text
    # Arguments are masked one by one, so a formatter that reads them by position still works.
    access = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s')
    assert access.format(caplog.records[-1]) == '1.2.3.4:5 - "GET /x?e=[email] HTTP/1.1" 200 OK'
