"""Write the report notebook templates in notebooks/ (no outputs, parameters cell tagged).

Run after editing a template here: python tools/make_notebooks.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1] / "notebooks"


def md(text: str):
    return new_markdown_cell(text.strip())


def code(text: str, tags=()):
    cell = new_code_cell(text.strip())
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def write(name: str, cells: list) -> None:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    path = ROOT / name
    nbformat.write(nb, path)
    print(f"wrote {path}")


SETUP = """
import matplotlib.pyplot as plt
import pandas as pd
import renewforecast as rf

pd.set_option("display.max_rows", 500)
pd.set_option("display.max_colwidth", 200)
pd.set_option("display.float_format", "{:,.2f}".format)
%matplotlib inline
"""

write("00_data_quality.ipynb", [
    md("""
# Data quality

What was loaded from the export, and everything that looks wrong in it. Read this page first:
the other reports are only as good as the data they stand on.
"""),
    code("""
source = "data/demo"  # folder with the Salesforce export (or canonical tables)
as_of = None  # as-of date YYYY-MM-DD; None means the export date of the data
encoding = None  # text encoding of the CSV files; None detects it
""", tags=["parameters"]),
    code(SETUP + """
book = rf.load_book(source, encoding=encoding)
as_of_date = book.resolve_as_of(as_of)
"""),
    md("## What was loaded"),
    code("""
pd.DataFrame({"": [book.source, book.currency, str(as_of_date.date()), book.fingerprint[:16]]},
             index=["source", "reporting currency", "as of", "data fingerprint"])
"""),
    md("""
Rows and date ranges per table. A table with far fewer rows than expected, or a range that stops
early, usually means an export filter or a truncated file.
"""),
    code("book.summary().set_index(\"table\")"),
    md("## ARR by segment"),
    md("""
Annual recurring revenue on the as-of date from the subscription ledger (signed amendment rows,
terminations and MDQ segments included). Compare it with the ARR your finance team reports:
a large gap points at missing subscriptions or prices before any other report is read.
"""),
    code("""
arr = rf.arr_on(book, as_of_date, by="segment")
rf.plotting.bar_by_group(arr, group="segment", value="arr", currency=book.currency,
                         title=f"ARR by segment on {as_of_date.date()}")
plt.show()
arr.set_index("segment").assign(share_pct=(100 * arr["arr"] / arr["arr"].sum()).round(1).to_numpy())
"""),
    md("## Validation warnings"),
    md("""
Problems that did not stop loading but deserve a look, by rule and then one per row with the file,
line, record id and column to fix in Salesforce. No rows here means none were found.
"""),
    code("""
book.warnings.groupby("rule").size().rename("count").to_frame()
"""),
    code("book.warnings.drop(columns=\"severity\")"),
    md("## Schedule reconciliation"),
    md("""
Opportunity product schedules as exported are taken as they are, never regenerated. Each line's
schedule rows should add up to its total price; lines that differ were usually edited after their
schedule was established and will make the pipeline forecast disagree with the opportunity amount.
"""),
    code("""
recon = rf.reconcile_schedules(book)
recon.groupby("status").agg(lines=("line_id", "size"), total_price=("total_price", "sum"),
                            scheduled=("scheduled_revenue", "sum"))
"""),
    code("""
recon[recon["status"] == "differs"].sort_values("difference", key=abs, ascending=False)
"""),
])
