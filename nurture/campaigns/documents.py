"""YAML documents and front matter, read with the line of every key.

The checker reports ``path:line``, so parsing keeps PyYAML's node marks: a
:class:`Document` is the parsed value plus the 1-based line of each mapping key and
sequence item, already shifted to the line numbers of the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

_DELIMITER = "---"


class YamlSyntaxError(Exception):
    """The YAML does not parse; ``line`` is 1-based in the file."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True)
class Document:
    """A parsed YAML mapping with the file line of each key (and each list item)."""

    data: Any
    line: int = 1
    key_lines: dict[str, int] = field(default_factory=dict)
    #: For keys holding a list: the line of each item. For a nested mapping: its keys.
    item_lines: dict[str, list[int]] = field(default_factory=dict)
    nested_key_lines: dict[str, dict[str, int]] = field(default_factory=dict)

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


def parse_yaml(text: str, first_line: int = 1) -> Document:
    """Parses one YAML document whose first line is line ``first_line`` of its file."""
    offset = first_line - 1
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = offset + (mark.line + 1 if mark else 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlSyntaxError(f"YAML syntax error: {problem}{_hint(problem)}", line) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"YAML syntax error: {exc}", first_line) from None
    finally:
        loader.dispose()
    key_lines: dict[str, int] = {}
    item_lines: dict[str, list[int]] = {}
    nested: dict[str, dict[str, int]] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            key_lines[key] = offset + key_node.start_mark.line + 1
            if isinstance(value_node, yaml.SequenceNode):
                item_lines[key] = [offset + item.start_mark.line + 1 for item in value_node.value]
            elif isinstance(value_node, yaml.MappingNode):
                nested[key] = {
                    str(k.value): offset + k.start_mark.line + 1 for k, _ in value_node.value
                }
    return Document(data, first_line, key_lines, item_lines, nested)


def _hint(problem: str) -> str:
    """How to fix the mistakes people make most: an unquoted colon, or a stray quote."""
    if "mapping values are not allowed" in problem:
        return (
            " (a value holding ': ' must be in quotes, e.g. subject: \"Part two: the next step\")"
        )
    if "found unexpected end of stream" in problem:
        return " (check that each quote you opened is closed on the same line)"
    return ""


@dataclass(frozen=True)
class FrontMatterFile:
    """A Markdown file split into its front matter and its body."""

    front: Document
    body: str
    body_line: int


def split_front_matter(text: str) -> FrontMatterFile:
    """Splits ``---`` front matter from the body; raises :class:`YamlSyntaxError`.

    The front matter must open on the first line and close with a line holding only
    ``---``. The body keeps its text exactly (line numbers of Jinja errors depend on it).
    """
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != _DELIMITER:
        raise YamlSyntaxError("missing front matter: the file must start with a '---' line", 1)
    for index in range(1, len(lines)):
        if lines[index].strip() == _DELIMITER:
            front = parse_yaml("".join(lines[1:index]), first_line=2)
            return FrontMatterFile(front, "".join(lines[index + 1 :]), index + 2)
    raise YamlSyntaxError("front matter is not closed: add a line holding only '---'", 1)
