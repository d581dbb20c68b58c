"""Hand-written fixes for the ruff findings no fixer handles, run once by ``tools/lint_fix.sh``.

Reads ``ruff check --output-format json`` on standard input. Each fix is found through ruff's own
report and applied only when the reported line holds exactly the text it was written for; anything
else is printed and left for a person. Every fix keeps behaviour the same.
"""

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

_DROP = re.compile(r'(\s*)(\S+)\.drop\(columns=\[("[^"]+")\], inplace=True(, errors="ignore")?\)\n')


def _line_edit(path: Path, row: int, fn: Callable[[str], str | None]) -> bool:
    """Rewrite line ``row`` (1-based) of ``path`` with ``fn``, which returns None to give up."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    new = fn(lines[row - 1])
    if new is None:
        return False
    lines[row - 1] = new
    path.write_text("".join(lines), encoding="utf-8")
    return True


def _text_edit(path: Path, old: str, new: str) -> bool:
    """Replace the first ``old`` in ``path`` with ``new``; False when it is not there."""
    text = path.read_text(encoding="utf-8")
    if old not in text:
        return False
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return True


def _values(line: str) -> str | None:
    # .values -> .to_numpy(): the same array, without .values' DataFrame/ExtensionArray ambiguity.
    return line.replace(".values.tolist()", ".to_numpy().tolist()", 1) if ".values.tolist()" in line else None


def _drop_inplace(line: str) -> str | None:
    # The callers rely on the frame changing in place (it is shared with a tuple or a dict), and
    # `del` still does that, without inplace=True.
    m = _DROP.fullmatch(line)
    if not m:
        return None
    pad, frame, col, lenient = m.groups()
    if lenient:
        return f"{pad}if {col} in {frame}:\n{pad}    del {frame}[{col}]\n"
    return f"{pad}del {frame}[{col}]\n"


def _unused_month_end(line: str) -> str | None:
    return "" if line.strip() == "month_end = last_month_end(as_of)" else None


def _file_count(path: Path) -> bool:
    # set_aside_summary counts files for the plural, which PD101 takes for a constancy check;
    # count once into a name.
    old = "f\"({q['file'].nunique()} file{'s' if q['file'].nunique() != 1 else ''})\","
    text = path.read_text(encoding="utf-8")
    at = text.find(old)
    ret = text.rfind("\n    return {", 0, at)
    if at < 0 or ret < 0:
        return False
    text = text.replace(old, "f\"({files} file{'s' if files != 1 else ''})\",", 1)
    text = text[:ret] + '\n    files = q["file"].nunique()' + text[ret:]
    path.write_text(text, encoding="utf-8")
    return True


def _split_duration(line: str) -> str | None:
    old = '{e(str(r["name"]))}, {e(format_duration('
    if old not in line:
        return None
    pad = " " * (len(line) - len(line.lstrip()))
    return line.replace(old, '{e(str(r["name"]))}, \'\n' + pad + "f'{e(format_duration(", 1)


def _dict_comprehension(line: str) -> str | None:
    # {k: v for k, v in x.items()} -> dict(x). A groupby keeps its comprehension: dict(groupby)
    # would take the groupby's `keys` attribute for a mapping's keys() and fail.
    m = re.search(r"\{(\w+): (\w+) for \1, \2 in (.+)\.items\(\)\}", line)
    if m:
        return line[: m.start()] + f"dict({m.group(3)})" + line[m.end() :]
    if ".groupby(" in line and "# noqa" not in line:
        return line.rstrip("\n") + "  # noqa: C416 (dict() of a groupby fails)\n"
    return None


def fix(finding: dict) -> bool:
    """Apply the hand-written fix for one ruff finding; False when there is none or it does not match."""
    path, row, code = Path(finding["filename"]), finding["location"]["row"], finding["code"]
    where = path.as_posix()
    if code == "PD011":
        return _line_edit(path, row, _values)
    if code == "C416":
        return _line_edit(path, row, _dict_comprehension)
    if code == "PD002":
        return _line_edit(path, row, _drop_inplace)
    if code == "F841" and where.endswith("reports/headline.py"):
        return _line_edit(path, row, _unused_month_end)
    if code == "PD101" and where.endswith("ledger/revenue.py"):
        return _file_count(path)
    if code == "E501" and where.endswith("analyses/__init__.py"):
        return _text_edit(path, '"""Engines that answer the three questions:', '"""Engines for the three questions:')
    if code == "E501" and where.endswith("reports/__init__.py"):
        return _text_edit(path, '"""Everything that turns results into pages:', '"""What turns results into pages:')
    if code == "E501" and where.endswith("reports/index_page.py"):
        return _line_edit(path, row, _split_duration)
    return False


def main() -> int:
    findings = json.load(sys.stdin)
    # Bottom-up inside each file, so that an edit never moves the line of a finding still to come.
    findings.sort(key=lambda f: (f["filename"], -f["location"]["row"]))
    left = []
    for finding in findings:
        where = f"{finding['filename']}:{finding['location']['row']}:{finding['location']['column']}"
        if fix(finding):
            print(f"fixed  {where} {finding['code']}")
        else:
            left.append(f"{where} {finding['code']} {finding['message']}")
    if left:
        print("left for a person:")
        print("\n".join(left))
    return 0


if __name__ == "__main__":
    sys.exit(main())
