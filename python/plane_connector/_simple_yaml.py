"""A strict reader for the small YAML subset of ``ssot/secrets/*.yaml``.

The guard must run where PyYAML is absent (the wheel has no runtime dependencies), and a reviewed
data file is better rejected than half-understood: anything outside the subset is an error with
its line number. Subset: block mappings and lists, ``- key: value`` list items, plain / single /
double-quoted scalars, flow lists of scalars (``[a, "b"]``), ``{}``, comments.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["YamlSubsetError", "load"]


class YamlSubsetError(ValueError):
    """The text is not in the supported subset; ``line`` is 1-based."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass
class _Line:
    indent: int
    text: str
    number: int


_INT = re.compile(r"[-+]?[0-9]+\Z")
_UNSUPPORTED_START = ("&", "*", "!", "|", ">", "%", "@", "`", "{")


def load(text: str) -> Any:
    """Parse ``text``; raise :class:`YamlSubsetError` for anything outside the subset."""
    lines = _split_lines(text)
    if not lines:
        return None
    if lines[0].indent != 0:
        raise YamlSubsetError("the document must start at column 0", lines[0].number)
    value, pos = _block(lines, 0, 0)
    if pos != len(lines):
        raise YamlSubsetError("unexpected indentation", lines[pos].number)
    return value


def _split_lines(text: str) -> list[_Line]:
    out: list[_Line] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.strip() in ("---", "..."):
            if out:
                raise YamlSubsetError("only one document is supported", number)
            continue
        body = _strip_comment(raw, number).rstrip()
        if not body.strip():
            continue
        stripped = body.lstrip(" ")
        if stripped.startswith("\t"):
            raise YamlSubsetError("tabs are not allowed for indentation", number)
        out.append(_Line(len(body) - len(stripped), stripped, number))
    return out


def _strip_comment(raw: str, number: int) -> str:
    quote = ""
    for i, ch in enumerate(raw):
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"':
                continue
        elif ch in "\"'" and (i == 0 or raw[i - 1] in " [,:-"):
            quote = ch
        elif ch == "#" and (i == 0 or raw[i - 1] in " \t"):
            return raw[:i]
    return raw


def _is_item(line: _Line) -> bool:
    return line.text == "-" or line.text.startswith("- ")


def _block(lines: list[_Line], pos: int, indent: int) -> tuple[Any, int]:
    if _is_item(lines[pos]):
        return _list(lines, pos, indent)
    return _mapping(lines, pos, indent)


def _list(lines: list[_Line], pos: int, indent: int) -> tuple[list[Any], int]:
    items: list[Any] = []
    while pos < len(lines) and lines[pos].indent == indent and _is_item(lines[pos]):
        line = lines[pos]
        rest = line.text[1:].lstrip(" ")
        if not rest:
            if pos + 1 < len(lines) and lines[pos + 1].indent > indent:
                value, pos = _block(lines, pos + 1, lines[pos + 1].indent)
            else:
                value, pos = None, pos + 1
        elif _split_key(rest, line.number) is not None:
            # `- key: value`: a mapping whose column is where `key` starts.
            column = indent + (len(line.text) - len(rest))
            lines[pos] = _Line(column, rest, line.number)
            value, pos = _mapping(lines, pos, column)
        else:
            value, pos = _scalar(rest, line.number), pos + 1
        items.append(value)
    return items, pos


def _mapping(lines: list[_Line], pos: int, indent: int) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    while pos < len(lines) and lines[pos].indent == indent:
        line = lines[pos]
        if _is_item(line):
            raise YamlSubsetError("a list item where a mapping key was expected", line.number)
        split = _split_key(line.text, line.number)
        if split is None:
            raise YamlSubsetError("expected `key: value`", line.number)
        key, rest = split
        if key in out:
            raise YamlSubsetError(f"duplicate key {key!r}", line.number)
        pos += 1
        if rest:
            out[key] = _scalar(rest, line.number)
        elif pos < len(lines) and lines[pos].indent > indent:
            out[key], pos = _block(lines, pos, lines[pos].indent)
        elif pos < len(lines) and lines[pos].indent == indent and _is_item(lines[pos]):
            out[key], pos = _list(lines, pos, indent)  # YAML allows a list at the key's column
        else:
            out[key] = None
    if pos < len(lines) and lines[pos].indent > indent:
        raise YamlSubsetError("unexpected indentation", lines[pos].number)
    return out, pos


def _split_key(text: str, number: int) -> tuple[str, str] | None:
    if text[0] in "\"'":
        end = _closing_quote(text, number)
        key = _scalar(text[: end + 1], number)
        after = text[end + 1 :]
        if after == ":" or after.startswith(": "):
            return str(key), after[1:].strip()
        return None
    match = re.match(r"([^\s:\"'][^:]*?)\s*:(?:\s+(.*)|$)", text)
    if not match or match.group(1).startswith(_UNSUPPORTED_START):
        return None
    return match.group(1), (match.group(2) or "").strip()


def _closing_quote(text: str, number: int) -> int:
    quote = text[0]
    i = 1
    while i < len(text):
        if text[i] == "\\" and quote == '"':
            i += 2
            continue
        if text[i] == quote:
            if quote == "'" and text[i + 1 : i + 2] == "'":
                i += 2
                continue
            return i
        i += 1
    raise YamlSubsetError("unterminated quoted string", number)


def _scalar(text: str, number: int) -> Any:
    text = text.strip()
    if text.startswith('"'):
        end = _closing_quote(text, number)
        if text[end + 1 :].strip():
            raise YamlSubsetError("text after a quoted string", number)
        try:
            return json.loads(text[: end + 1])
        except ValueError:
            raise YamlSubsetError("unsupported escape in a double-quoted string", number) from None
    if text.startswith("'"):
        end = _closing_quote(text, number)
        if text[end + 1 :].strip():
            raise YamlSubsetError("text after a quoted string", number)
        return text[1:end].replace("''", "'")
    if text.startswith("["):
        return _flow_list(text, number)
    if text == "{}":
        return {}
    if text.startswith(_UNSUPPORTED_START) or ": " in text or text.endswith(":"):
        raise YamlSubsetError("unsupported YAML (quote the value)", number)
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "~"):
        return None
    if _INT.match(text):
        return int(text)
    return text


def _flow_list(text: str, number: int) -> list[Any]:
    if not text.endswith("]"):
        raise YamlSubsetError("unterminated flow list", number)
    inner = text[1:-1].strip()
    if not inner:
        return []
    items, current, quote = [], "", ""
    for ch in inner:
        if quote:
            current += ch
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            current += ch
        elif ch == ",":
            items.append(current)
            current = ""
        elif ch in "[]{}":
            raise YamlSubsetError("nested flow collections are not supported", number)
        else:
            current += ch
    items.append(current)
    if any(not item.strip() for item in items):
        raise YamlSubsetError("empty item in a flow list", number)
    return [_scalar(item, number) for item in items]
