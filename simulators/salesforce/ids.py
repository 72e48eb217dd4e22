"""Salesforce record ids: key prefix, pod, base-62 serial and the case-insensitivity checksum."""

from __future__ import annotations

import re

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
ID_RE = re.compile(r"^[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?$")
_DIGIT_VALUES = {char: value for value, char in enumerate(_BASE62)}
# Upper-case letters to "1", everything else to "0": a chunk's checksum bits, read backwards.
_UPPER_BITS = str.maketrans({char: ("1" if "A" <= char <= "Z" else "0") for char in _BASE62})
_BINARY = re.compile(r"[01]{15}")


def salesforce_id(prefix: str, number: int) -> str:
    """An 18-character Salesforce id: key prefix, pod, a base-62 serial and the case checksum."""
    digits = ""
    while True:
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
        if number == 0:
            break
    body = f"{prefix}Hp0{digits.rjust(9, '0')}"
    if len(body) != 15:
        raise ValueError("id serial out of range")
    return body + id_checksum(body)


def id_serial(record_id: str) -> int:
    """The base-62 serial of an id made by :func:`salesforce_id` (0 for any other id)."""
    serial = 0
    for char in record_id[6:15]:
        position = _DIGIT_VALUES.get(char)
        if position is None:
            return 0
        serial = serial * 62 + position
    return serial


def id_checksum(id15: str) -> str:
    """The three-character suffix that makes a 15-character id case-insensitive."""
    # Bit i of a chunk's number is set when its i-th character is an upper-case letter.
    bits = id15[:15].translate(_UPPER_BITS)
    if len(bits) == 15 and _BINARY.fullmatch(bits):
        return "".join(_ID_SUFFIX[int(bits[start : start + 5][::-1], 2)] for start in (0, 5, 10))
    out = ""  # not 15 base-62 characters: the same rule, a character at a time
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        out += _ID_SUFFIX[sum(1 << i for i, char in enumerate(chunk) if "A" <= char <= "Z")]
    return out
