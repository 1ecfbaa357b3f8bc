"""Usage, cost and redaction: pure functions, table-tested."""
