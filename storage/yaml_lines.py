"""YAML files that people edit (the site file, procedures): data with the line of every field, and problems
that name the file, the line and the field to change.

A person fixing a file needs every problem at once and where it is, so the YAML is read as a node tree
(which keeps line numbers) and turned into plain data with a map path → line; a pydantic error or a rule
of a model is then mapped back to the line it is about.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

Path_ = tuple[str | int, ...]
Lines = dict[Path_, int]


@dataclass(frozen=True)
class Problem:
    line: int | None
    where: str
    message: str
    #: The file; empty when the error already names it (SiteFileError puts it before each problem).
    source: str = ""

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.source:
            return f"{self.source}:{self.line}: {text}" if self.line else f"{self.source}: {text}"
        return f"line {self.line}: {text}" if self.line else text


class YamlFileError(ValueError):
    """A file cannot be loaded; `problems` says where and why each is, and nothing was loaded."""

    def __init__(self, what: str, problems: list[Problem]):
        self.what = what
        self.problems = problems
        listing = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{what} has {len(problems)} problem(s), nothing was loaded:\n{listing}")


def _to_data(node: yaml.Node, path: Path_, lines: Lines, scalars: yaml.SafeLoader, dupes: list[Path_]) -> Any:
    """Plain data from the node tree, noting the line of every path; a key given twice is noted in `dupes`
    (PyYAML would silently keep the last one, hiding a mistake)."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = scalars.construct_object(key_node)
            if key in out:
                dupes.append((*path, key))
            out[key] = _to_data(value_node, (*path, key), lines, scalars, dupes)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_data(item, (*path, i), lines, scalars, dupes) for i, item in enumerate(node.value)]
    return scalars.construct_object(node)


def line_of(path: Path_, lines: Lines) -> int | None:
    """The line of `path`, or of its nearest parent that is in the file (a missing field: its mapping)."""
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return None


def dotted(path: Iterable[str | int]) -> str:
    return ".".join(str(p) for p in path)


def problem_at(path: Path_, lines: Lines, message: str, source: str = "") -> Problem:
    return Problem(line_of(path, lines), dotted(path), message, source)


def parse_yaml(text: str, source: str = "", empty_hint: str = "") -> tuple[Any, Lines]:
    """The data of a YAML text and the line of every path in it; bad YAML, an empty file or a key given
    twice raises YamlFileError (with `source` in each problem)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise YamlFileError(source, [Problem(line, "", f"not valid YAML: {exc.problem}", source)]) from exc
    if root is None:
        raise YamlFileError(
            source, [Problem(None, "", f"the file is empty{': ' + empty_hint if empty_hint else ''}", source)]
        )
    lines: Lines = {}
    dupes: list[Path_] = []
    data = _to_data(root, (), lines, yaml.SafeLoader(""), dupes)
    if dupes:
        raise YamlFileError(source, [problem_at(p, lines, "this key is given twice: keep one", source) for p in dupes])
    return data, lines


def validation_problems(exc: ValidationError, lines: Lines, source: str = "") -> list[Problem]:
    """One problem per pydantic error, at its line. A model's own rule may raise a ValueError with `issues`
    (a list of (path relative to that model, message), e.g. core.procedures.ProcedureIssues): each issue
    then becomes a problem at its own field's line instead of one at the model's."""
    problems: list[Problem] = []
    for err in exc.errors():
        loc: Path_ = tuple(err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        issues = getattr(cause, "issues", None)
        if isinstance(cause, ValueError) and isinstance(issues, list):
            problems.extend(problem_at((*loc, *path), lines, message, source) for path, message in issues)
        else:
            problems.append(problem_at(loc, lines, err["msg"], source))
    return problems
