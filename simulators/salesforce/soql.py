"""SOQL: the subset the connector sends, parsed against the org's tables and run on its rows."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any

from simulators.salesforce.ids import ID_RE
from simulators.salesforce.schema import FieldSpec, FieldType
from simulators.salesforce.store import Row, Table
from simulators.salesforce.wire import ApiError, Value, parse_datetime_literal

SOQL_MAX_LENGTH = 100_000
WHERE_STRING_MAX = 4_000

_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<string>'(?:[^'\\]|\\.)*')
    |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:\d{2}))
    |(?P<date>\d{4}-\d{2}-\d{2})
    |(?P<number>-?\d+(?:\.\d+)?)
    |(?P<op><=|>=|!=|<>|=|<|>)
    |(?P<punct>[(),])
    |(?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
    """,
    re.X,
)
_KEYWORDS = frozenset(
    {
        "select",
        "from",
        "where",
        "and",
        "or",
        "not",
        "in",
        "like",
        "order",
        "by",
        "asc",
        "desc",
        "nulls",
        "first",
        "last",
        "limit",
        "offset",
        "null",
        "true",
        "false",
        "count",
    }
)


@dataclass
class _Tok:
    kind: str
    text: str
    column: int  # 1-based, as Salesforce reports it

    @property
    def lower(self) -> str:
        return self.text.lower()


def _malformed(soql: str, tok: _Tok | None, message: str) -> ApiError:
    column = tok.column if tok is not None else len(soql) + 1
    caret = " " * (column - 1) + "^"
    return ApiError(
        400, "MALFORMED_QUERY", f"\n{soql}\n{caret}\nERROR at Row:1:Column:{column}\n{message}"
    )


def _tokenize(soql: str) -> list[_Tok]:
    out: list[_Tok] = []
    position = 0
    while position < len(soql):
        match = _TOKEN.match(soql, position)
        if match is None:
            tok = _Tok("bad", soql[position], position + 1)
            raise _malformed(soql, tok, f"unexpected token: {soql[position]!r}")
        kind = match.lastgroup or "bad"
        if kind != "space":
            out.append(_Tok(kind, match.group(), position + 1))
        position = match.end()
    return out


Predicate = Callable[[Row], bool]


@dataclass
class ParsedQuery:
    table: Table
    fields: list[str]
    count: bool
    where: Predicate
    order: list[tuple[int, bool, bool, FieldType]]
    limit: int | None
    offset: int


class _Parser:
    def __init__(self, soql: str, tables: Mapping[str, Table]) -> None:
        if len(soql) > SOQL_MAX_LENGTH:
            raise ApiError(
                400,
                "MALFORMED_QUERY",
                f"Query is too long: the maximum length is {SOQL_MAX_LENGTH} characters",
            )
        self.soql = soql
        self.tables = tables
        self.toks = _tokenize(soql)
        self.i = 0
        self.table: Table | None = None

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise _malformed(self.soql, None, "unexpected end of query")
        self.i += 1
        return tok

    def accept(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind in ("ident", "punct", "op") and tok.lower == word:
            self.i += 1
            return True
        return False

    def expect(self, word: str) -> _Tok:
        tok = self.next()
        if tok.lower != word:
            raise _malformed(self.soql, tok, f"unexpected token: {tok.text}")
        return tok

    def field_ref(self, tok: _Tok) -> FieldSpec:
        assert self.table is not None
        if tok.kind != "ident" or tok.lower in _KEYWORDS:
            raise _malformed(self.soql, tok, f"unexpected token: {tok.text}")
        spec = self.table.spec.field(tok.text)
        if spec is None:
            caret = " " * (tok.column - 1) + "^"
            if "." in tok.text:
                message = (
                    f"Didn't understand relationship '{tok.text.split('.')[0]}' in field "
                    f"path. If you are attempting to use a custom relationship, be sure "
                    f"to append the '__r' after the custom relationship name. Please "
                    f"reference your WSDL or the describe call for the appropriate names."
                )
            else:
                message = (
                    f"No such column '{tok.text}' on entity '{self.table.spec.name}'. If "
                    f"you are attempting to use a custom field, be sure to append the "
                    f"'__c' after the custom field name. Please reference your WSDL or "
                    f"the describe call for the appropriate names."
                )
            raise ApiError(
                400,
                "INVALID_FIELD",
                f"\n{self.soql}\n{caret}\nERROR at Row:1:Column:{tok.column}\n{message}",
            )
        return spec

    def parse(self) -> ParsedQuery:
        self.expect("select")
        select_toks: list[_Tok] = []
        counting = False
        tok = self.peek()
        if tok is not None and tok.lower == "count":
            self.next()
            self.expect("(")
            self.expect(")")
            counting = True
        else:
            while True:
                select_toks.append(self.next())
                if not self.accept(","):
                    break
        self.expect("from")
        name_tok = self.next()
        table = self.tables.get(name_tok.lower) if name_tok.kind == "ident" else None
        if table is None:
            caret = " " * (name_tok.column - 1) + "^"
            raise ApiError(
                400,
                "INVALID_TYPE",
                f"\n{self.soql}\n{caret}\nERROR at Row:1:Column:{name_tok.column}\n"
                f"sObject type '{name_tok.text}' is not supported. If you are "
                f"attempting to use a custom object, be sure to append the '__c' after "
                f"the entity name. Please reference your WSDL or the describe call for "
                f"the appropriate names.",
            )
        self.table = table
        fields: list[str] = []
        seen: set[str] = set()
        for tok in select_toks:
            spec = self.field_ref(tok)
            if spec.name.lower() in seen:
                raise _malformed(self.soql, tok, f"duplicate field selected: {spec.name}")
            seen.add(spec.name.lower())
            fields.append(spec.name)
        where: Predicate = _always
        if self.accept("where"):
            where = self.expression()
        order: list[tuple[int, bool, bool, FieldType]] = []
        if self.accept("order"):
            self.expect("by")
            while True:
                spec = self.field_ref(self.next())
                if not spec.filterable:
                    raise ApiError(
                        400,
                        "INVALID_FIELD",
                        f"field '{spec.name}' can not be sorted in a query call",
                    )
                descending = False
                if self.accept("desc"):
                    descending = True
                else:
                    self.accept("asc")
                nulls_last = False
                if self.accept("nulls"):
                    if self.accept("last"):
                        nulls_last = True
                    else:
                        self.expect("first")
                order.append((table.position(spec.name), descending, nulls_last, spec.type))
                if not self.accept(","):
                    break
        limit: int | None = None
        offset = 0
        if self.accept("limit"):
            limit = self.integer()
        if self.accept("offset"):
            offset = self.integer()
        trailing = self.peek()
        if trailing is not None:
            raise _malformed(self.soql, trailing, f"unexpected token: {trailing.text}")
        return ParsedQuery(table, fields, counting, where, order, limit, offset)

    def integer(self) -> int:
        tok = self.next()
        if tok.kind != "number" or not tok.text.isdigit():
            raise _malformed(self.soql, tok, f"unexpected token: {tok.text}")
        return int(tok.text)

    def expression(self) -> Predicate:
        terms = [self.unary()]
        joiner: str | None = None
        while True:
            tok = self.peek()
            if tok is None or tok.lower not in ("and", "or"):
                break
            if joiner is not None and tok.lower != joiner:
                raise _malformed(
                    self.soql,
                    tok,
                    f"unexpected token: {tok.text.upper()} (use parentheses to combine AND and OR)",
                )
            joiner = tok.lower
            self.next()
            terms.append(self.unary())
        if len(terms) == 1:
            return terms[0]
        if joiner == "and":
            return lambda row: all(term(row) for term in terms)
        return lambda row: any(term(row) for term in terms)

    def unary(self) -> Predicate:
        if self.accept("not"):
            inner = self.unary()
            return lambda row: not inner(row)
        if self.accept("("):
            inner = self.expression()
            self.expect(")")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        assert self.table is not None
        field_tok = self.next()
        spec = self.field_ref(field_tok)
        if not spec.filterable:
            raise ApiError(
                400,
                "INVALID_FIELD",
                f"\n{self.soql}\nERROR at Row:1:Column:{field_tok.column}\nfield "
                f"'{spec.name}' can not be filtered in query call",
            )
        position = self.table.position(spec.name)
        negate_in = False
        if self.accept("not"):
            tok = self.peek()
            if tok is None or tok.lower != "in":
                raise _malformed(self.soql, tok, "unexpected token: NOT")
            negate_in = True
        tok = self.next()
        if tok.lower == "in":
            self.expect("(")
            nxt = self.peek()
            if nxt is not None and nxt.lower == "select":
                semi = self.semi_join(spec, nxt)
                self.expect(")")
                if negate_in:
                    return lambda row: _compare_key(spec.type, row.values[position]) not in semi
                return lambda row: _compare_key(spec.type, row.values[position]) in semi
            values = [self.literal(spec)]
            while self.accept(","):
                values.append(self.literal(spec))
            self.expect(")")
            keys = {_compare_key(spec.type, v) for v in values}
            if negate_in:
                return lambda row: _compare_key(spec.type, row.values[position]) not in keys
            return lambda row: _compare_key(spec.type, row.values[position]) in keys
        if tok.lower == "like":
            pattern_tok = self.next()
            if pattern_tok.kind != "string":
                raise _malformed(self.soql, pattern_tok, f"unexpected token: {pattern_tok.text}")
            regex = re.compile(
                "^"
                + "".join(
                    ".*" if c == "%" else "." if c == "_" else re.escape(c)
                    for c in _unquote(pattern_tok.text)
                )
                + "$",
                re.I | re.S,
            )
            return lambda row: (
                isinstance(row.values[position], str)
                and bool(regex.match(str(row.values[position])))
            )
        if tok.kind != "op":
            raise _malformed(self.soql, tok, f"unexpected token: {tok.text}")
        op = "!=" if tok.text == "<>" else tok.text
        value = self.literal(spec)
        if value is None:
            if op == "=":
                return lambda row: row.values[position] is None
            if op == "!=":
                return lambda row: row.values[position] is not None
            raise _malformed(self.soql, tok, f"invalid operator on null: {op}")
        key = _compare_key(spec.type, value)
        if op == "=":
            return lambda row: _compare_key(spec.type, row.values[position]) == key
        if op == "!=":
            return lambda row: _compare_key(spec.type, row.values[position]) != key
        compare: Callable[[Any, Any], bool] = {
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
        }[op]
        if spec.type == "boolean":
            raise _malformed(self.soql, tok, f"invalid operator on boolean field: {op}")

        def ordered(row: Row) -> bool:
            stored = row.values[position]
            return stored is not None and compare(_compare_key(spec.type, stored), key)

        return ordered

    def semi_join(self, outer: FieldSpec, start: _Tok) -> set[Any]:
        """``field IN (SELECT Id FROM Object WHERE ...)``: the inner query's keys, read now."""
        if outer.type not in ("id", "reference"):
            raise _malformed(
                self.soql, start, "semi join sub-selects are only allowed on Id or reference fields"
            )
        self.expect("select")
        field_tok = self.next()
        self.expect("from")
        name_tok = self.next()
        table = self.tables.get(name_tok.lower) if name_tok.kind == "ident" else None
        if table is None:
            raise ApiError(
                400,
                "INVALID_TYPE",
                f"\n{self.soql}\nERROR at Row:1:Column:{name_tok.column}\nsObject type "
                f"'{name_tok.text}' is not supported.",
            )
        outer_table, self.table = self.table, table
        try:
            inner = self.field_ref(field_tok)
            if inner.type not in ("id", "reference"):
                raise _malformed(
                    self.soql, field_tok, "semi join sub-selects must select an Id field"
                )
            where = self.expression() if self.accept("where") else _always
        finally:
            self.table = outer_table
        position = table.position(inner.name)
        deleted = table.index.get("isdeleted")
        return {
            _compare_key(inner.type, row.values[position])
            for row in table.rows
            if where(row) and not (deleted is not None and row.values[deleted] is True)
        }

    def literal(self, spec: FieldSpec) -> Value:
        tok = self.next()
        kind = spec.type
        if tok.kind == "ident" and tok.lower == "null":
            return None
        if kind == "datetime":
            if tok.kind != "datetime":
                raise self._type_error(spec, tok, "dateTime")
            parsed = parse_datetime_literal(tok.text)
            assert parsed is not None
            return parsed
        if kind == "date":
            if tok.kind != "date":
                raise self._type_error(spec, tok, "date")
            return date.fromisoformat(tok.text)
        if kind == "boolean":
            if tok.kind != "ident" or tok.lower not in ("true", "false"):
                raise self._type_error(spec, tok, "boolean")
            return tok.lower == "true"
        if kind in ("int", "double", "currency", "percent"):
            if tok.kind != "number":
                raise self._type_error(spec, tok, "number")
            return float(tok.text) if "." in tok.text else int(tok.text)
        if tok.kind != "string":
            raise ApiError(
                400,
                "MALFORMED_QUERY",
                f"\n{self.soql}\nERROR at Row:1:Column:{tok.column}\nvalue of filter "
                f"criterion for field '{spec.name}' must be of type {kind} and should "
                "be enclosed in quotes",
            )
        text = _unquote(tok.text)
        if len(text) > WHERE_STRING_MAX:
            raise _malformed(self.soql, tok, f"String too long (max {WHERE_STRING_MAX})")
        if kind in ("id", "reference"):
            if not ID_RE.match(text):
                raise ApiError(
                    400,
                    "INVALID_QUERY_FILTER_OPERATOR",
                    f"\n{self.soql}\nERROR at Row:1:Column:{tok.column}\ninvalid ID field: {text}",
                )
        return text

    def _type_error(self, spec: FieldSpec, tok: _Tok, wanted: str) -> ApiError:
        return ApiError(
            400,
            "INVALID_FIELD",
            f"\n{self.soql}\nERROR at Row:1:Column:{tok.column}\nvalue of filter "
            f"criterion for field '{spec.name}' must be of type {wanted} and should "
            "not be enclosed in quotes",
        )


def _always(row: Row) -> bool:
    return True


def _unquote(text: str) -> str:
    inner = text[1:-1]
    return re.sub(
        r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), inner
    )


def _compare_key(kind: FieldType, value: Value) -> Any:
    if value is None:
        return None
    if kind in ("id", "reference") and isinstance(value, str):
        return value[:15]
    if kind in ("string", "picklist", "textarea", "email", "phone") and isinstance(value, str):
        return value.casefold()
    if kind in ("double", "currency", "percent", "int") and not isinstance(value, bool):
        return float(value)  # type: ignore[arg-type]
    return value


def parse_soql(soql: str, tables: Mapping[str, Table]) -> ParsedQuery:
    """Parse one SOQL statement against the org's tables; raises ApiError as Salesforce would."""
    return _Parser(soql, tables).parse()


def _row_sort_key(kind: FieldType, position: int, row: Row) -> Any:
    return _sort_key(kind, row.values[position])


def _sort_key(kind: FieldType, value: Value) -> Any:
    if kind in ("string", "picklist", "textarea", "email", "phone") and isinstance(value, str):
        return value.casefold()
    if kind in ("id", "reference") and isinstance(value, str):
        return value[:15]
    return value


def select_rows(parsed: ParsedQuery, *, include_deleted: bool) -> list[Row]:
    """The rows a parsed query returns: filtered, without deleted ones unless asked, sorted, cut."""
    table = parsed.table
    rows = [row for row in table.rows if parsed.where(row)]
    if not include_deleted:
        deleted = table.index.get("isdeleted")
        archived = table.index.get("isarchived")
        rows = [
            row
            for row in rows
            if not (deleted is not None and row.values[deleted] is True)
            and not (archived is not None and row.values[archived] is True)
        ]
    if parsed.order:
        for position, descending, nulls_last, kind in reversed(parsed.order):
            present = [r for r in rows if r.values[position] is not None]
            missing = [r for r in rows if r.values[position] is None]
            present.sort(key=partial(_row_sort_key, kind, position), reverse=descending)
            rows = present + missing if nulls_last else missing + present
    if parsed.offset:
        rows = rows[parsed.offset :]
    if parsed.limit is not None:
        rows = rows[: parsed.limit]
    return rows
