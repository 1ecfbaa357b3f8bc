"""Tables as CSV for the read API's `format=csv` (calls, sessions, usage, unpriced models): what a team lead
opens in a spreadsheet, so an unknown stays an empty cell (never 0) and a cell a spreadsheet would run as a
formula is defused."""

from __future__ import annotations

import csv
import io
from typing import Any

from starlette.responses import Response


def csv_response(rows: list[dict[str, Any]], filename: str) -> Response:
    """Rows as CSV, columns in the first row's order; lists joined with ';'; an unknown (None) stays empty."""
    out = io.StringIO()
    columns = list(rows[0]) if rows else []
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"', "cache-control": "no-cache"},
    )


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ";".join("" if v is None else str(v) for v in value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value  # a spreadsheet would run it as a formula (CSV injection)
    return value
