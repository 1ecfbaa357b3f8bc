"""Run the gateway from a checkout: `python main.py [--port 8000]` (same flags as `llm-scope serve`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "src"))

from llm_scope.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["serve", *sys.argv[1:]]))
