"""Reading the procedure files: one YAML file per incident type, all checked before any is used.

The shipped files (files/ beside this module) are the company's written procedures; a company that
changes them points PATROL_PROCEDURES_DIR at its own copy of the whole directory. A directory with a wrong
file is refused as a whole, with every problem of every file as "file:line: field: what to change".
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from core.procedures import REQUIRED_PROCEDURES, Procedure
from storage.yaml_lines import Problem, YamlFileError, parse_yaml, problem_at, validation_problems

#: The procedures shipped with the product (package data).
SHIPPED_DIR = Path(__file__).resolve().parent / "files"
SUFFIXES = (".yaml", ".yml")
EMPTY_HINT = "copy one of storage/procedures/files/*.yaml and change it"


class ProcedureFileError(YamlFileError):
    """A procedure file or directory cannot be loaded; `problems` lists each with its file and line."""


def parse_procedure_text(text: str, source: str = "<procedure>", expected_code: str | None = None) -> Procedure:
    """One procedure from the text of its file; `expected_code` is the file's name, which must be the code."""
    try:
        data, lines = parse_yaml(text, source, EMPTY_HINT)
    except YamlFileError as exc:
        raise ProcedureFileError(source, exc.problems) from exc
    if not isinstance(data, dict):
        raise ProcedureFileError(
            source, [Problem(lines.get(()), "", "a procedure file is a mapping (code:, name:, steps: …)", source)]
        )
    problems: list[Problem] = []
    if expected_code is not None and data.get("code") != expected_code:
        problems.append(
            problem_at(
                ("code",),
                lines,
                f"the file is named {expected_code!r} but its code is {data.get('code')!r}: "
                "name the file <code>.yaml or change the code",
                source,
            )
        )
    try:
        procedure = Procedure.model_validate(data)
    except ValidationError as exc:
        problems.extend(validation_problems(exc, lines, source))
    if problems:
        raise ProcedureFileError(source, problems)
    return procedure


def parse_procedure_file(path: Path) -> Procedure:
    return parse_procedure_text(path.read_text(encoding="utf-8"), str(path), expected_code=path.stem)


def load_procedures(directory: Path | None = None) -> dict[str, Procedure]:
    """Every procedure of `directory` (default: the shipped ones) by code; every required one must be there.

    Reads every file before refusing, so one error lists the problems of all files at once.
    """
    directory = directory or SHIPPED_DIR
    if not directory.is_dir():
        raise ProcedureFileError(
            str(directory), [Problem(None, "", "is not a directory of procedure files", str(directory))]
        )
    procedures: dict[str, Procedure] = {}
    problems: list[Problem] = []
    for path in sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file()):
        if path.stem in procedures:
            problems.append(Problem(None, "", f"procedure {path.stem!r} has two files: keep one", str(path)))
            continue
        try:
            procedures[path.stem] = parse_procedure_file(path)
        except ProcedureFileError as exc:
            problems.extend(exc.problems)
    missing = [code for code in REQUIRED_PROCEDURES if code not in procedures]
    for code in missing:
        if not any(p.source == str(directory / f"{code}{s}") for p in problems for s in SUFFIXES):
            problems.append(
                Problem(
                    None,
                    "",
                    f"the required procedure {code!r} has no file {code}.yaml: copy it from {SHIPPED_DIR}",
                    str(directory),
                )
            )
    if problems:
        raise ProcedureFileError(str(directory), problems)
    return procedures
