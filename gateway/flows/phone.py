"""Phone numbers typed on a keypad, checked and written in E.164 (as Connect's Store customer input does).

A caller types either a national number for a known country ("Local", e.g. 0301234567 in DE) or the
country calling code followed by the number ("E164", e.g. 4930123456; a keypad has no "+"). The
result is "+<calling code><national number>" or None when the digits cannot be such a number.

The rules are a table, not the whole numbering plan: for each country its calling code, the lengths
its national significant numbers may have, and the trunk prefix a caller may type in front (a "0"
in most of Europe). North American numbers also need area code and exchange to start with 2-9.
In E164 format a calling code that is not in the table is accepted when the whole number has a
plausible E.164 length (7 to 15 digits).
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_E164_DIGITS = 7
MAX_E164_DIGITS = 15


@dataclass(frozen=True)
class Country:
    calling_code: str
    lengths: tuple[int, int]  # national significant number, shortest and longest
    trunk: str = ""  # prefix dialled before a national number inside the country


def _c(code: str, shortest: int, longest: int | None = None, trunk: str = "") -> Country:
    return Country(code, (shortest, longest or shortest), trunk)


COUNTRIES: dict[str, Country] = {
    # North American Numbering Plan
    "US": _c("1", 10, trunk="1"), "CA": _c("1", 10, trunk="1"), "PR": _c("1", 10, trunk="1"),
    "DO": _c("1", 10, trunk="1"), "JM": _c("1", 10, trunk="1"), "TT": _c("1", 10, trunk="1"),
    "BS": _c("1", 10, trunk="1"), "BB": _c("1", 10, trunk="1"), "GU": _c("1", 10, trunk="1"),
    # Europe
    "GB": _c("44", 9, 10, "0"), "IE": _c("353", 7, 10, "0"), "DE": _c("49", 6, 13, "0"),
    "AT": _c("43", 4, 13, "0"), "CH": _c("41", 9, trunk="0"), "LI": _c("423", 7, 9),
    "FR": _c("33", 9, trunk="0"), "BE": _c("32", 8, 9, "0"), "NL": _c("31", 9, trunk="0"),
    "LU": _c("352", 4, 11), "ES": _c("34", 9), "PT": _c("351", 9), "IT": _c("39", 6, 11),
    "MT": _c("356", 8), "GR": _c("30", 10), "CY": _c("357", 8), "DK": _c("45", 8), "NO": _c("47", 8),
    "SE": _c("46", 7, 10, "0"), "FI": _c("358", 5, 12, "0"), "IS": _c("354", 7, 9), "EE": _c("372", 7, 8),
    "LV": _c("371", 8), "LT": _c("370", 8, trunk="8"), "PL": _c("48", 9), "CZ": _c("420", 9),
    "SK": _c("421", 9, trunk="0"), "HU": _c("36", 8, 9, "06"), "SI": _c("386", 8, trunk="0"),
    "HR": _c("385", 8, 9, "0"), "RS": _c("381", 8, 12, "0"), "BA": _c("387", 8, 9, "0"),
    "RO": _c("40", 9, trunk="0"), "BG": _c("359", 6, 9, "0"), "UA": _c("380", 9, trunk="0"),
    "RU": _c("7", 10, trunk="8"), "KZ": _c("7", 10, trunk="8"), "TR": _c("90", 10, trunk="0"),
    # Middle East and Africa
    "IL": _c("972", 8, 9, "0"), "AE": _c("971", 8, 9, "0"), "SA": _c("966", 9, trunk="0"),
    "EG": _c("20", 8, 10, "0"), "MA": _c("212", 9, trunk="0"), "ZA": _c("27", 9, trunk="0"),
    "NG": _c("234", 8, 10, "0"), "KE": _c("254", 9, trunk="0"),
    # Asia and Oceania
    "IN": _c("91", 10, trunk="0"), "PK": _c("92", 9, 10, "0"), "CN": _c("86", 9, 11, "0"),
    "HK": _c("852", 8), "TW": _c("886", 8, 9, "0"), "JP": _c("81", 9, 10, "0"),
    "KR": _c("82", 8, 10, "0"), "SG": _c("65", 8), "MY": _c("60", 8, 10, "0"), "TH": _c("66", 8, 9, "0"),
    "PH": _c("63", 10, trunk="0"), "ID": _c("62", 8, 12, "0"), "VN": _c("84", 9, 10, "0"),
    "AU": _c("61", 9, trunk="0"), "NZ": _c("64", 8, 10, "0"),
    # Latin America
    "MX": _c("52", 10), "BR": _c("55", 10, 11, "0"), "AR": _c("54", 10, 11, "0"), "CL": _c("56", 9),
    "CO": _c("57", 10), "PE": _c("51", 8, 9, "0"), "VE": _c("58", 10, trunk="0"),
}
NUMBER_FORMATS = ("Local", "E164")
LEADING_ZERO_CODES = frozenset({"39"})  # Italy keeps the 0 of fixed-line numbers after +39

_BY_CODE: dict[str, list[Country]] = {}
for _country in COUNTRIES.values():
    _BY_CODE.setdefault(_country.calling_code, []).append(_country)


def to_e164(digits: str, number_format: str, country_code: str | None = None) -> str | None:
    """The E.164 form of a typed number, or None when it is not a valid number in that format."""
    if not digits.isdigit() or not digits.isascii():
        return None
    if number_format == "Local":
        country = COUNTRIES.get((country_code or "").upper())
        if country is None:
            return None
        national = _national(digits, country)
        return None if national is None else f"+{country.calling_code}{national}"
    if number_format == "E164":
        return _international(digits)
    return None


def _national(digits: str, country: Country) -> str | None:
    """The national significant number in `digits`, typed with or without the trunk prefix."""
    candidates = [digits]
    if country.trunk and digits.startswith(country.trunk):
        candidates.insert(0, digits[len(country.trunk):])
    for number in candidates:
        if _fits(number, country):
            return number
    return None


def _fits(number: str, country: Country) -> bool:
    shortest, longest = country.lengths
    if not shortest <= len(number) <= longest:
        return False
    if country.calling_code == "1":  # NANP: area code and exchange start with 2-9
        return number[0] >= "2" and number[3] >= "2"
    return number[0] != "0" or country.calling_code in LEADING_ZERO_CODES


def _international(digits: str) -> str | None:
    if not MIN_E164_DIGITS <= len(digits) <= MAX_E164_DIGITS or digits[0] == "0":
        return None
    for size in (1, 2, 3):
        countries = _BY_CODE.get(digits[:size])
        if countries:
            national = digits[size:]
            for country in countries:
                shortest, longest = country.lengths
                if shortest <= len(national) <= longest and _national(national, country) == national:
                    return f"+{digits}"
            return None
    return f"+{digits}"
