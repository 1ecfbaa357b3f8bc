"""`python -m llm_scope` runs the CLI (default: serve)."""

from .cli import main

raise SystemExit(main())
