"""How long the dashboard takes to show one call of a coding agent's long conversation:
`python -m bench.ui_render`.

Seeds a gateway (the fake upstream) with one chat call of a 20 KB system prompt and 40 turns of ~3.5 KB (about
160 KB), opens its detail page in headless Debian chromium, and reports the median and best of `--repeat`
renders (from the hash change to the view's `data-ready` and the next frame), and how much text and how many
elements the view holds: long messages fold and the folded parts are built only when opened, so both stay small
however long the conversation. A timing, so it lives here and not in the tests (tests/ui/test_polish.py checks
what is folded).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from tests.conftest import upstream_models
from tests.fakes.upstream import start_fake_upstream
from tests.gateway_server import GatewayServer, make_settings, model_config
from tests.ui.browser import chromium

SYSTEM = "You are a careful coding agent.\n" + "Rule: keep modules small and named by what they do.\n" * 400
FILE = "def handler(request):\n    return respond(request)\n" * 70
RENDER = """async (tid) => {
  const t0 = performance.now();
  location.hash = '#/call/' + tid;
  const ready = () => document.querySelector("main#view[data-view='call'][data-ready='1']");
  while (!ready()) await new Promise(r => setTimeout(r, 1));
  await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  return performance.now() - t0;
}"""


def conversation(turns: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    for i in range(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}\n{FILE}"})
    return messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--turns", type=int, default=40)
    args = parser.parse_args()
    upstream = start_fake_upstream(slow_seconds=3.0)
    settings = make_settings(Path(tempfile.mkdtemp()), max_body_bytes=16 * 1024 * 1024)
    try:
        with GatewayServer(settings, model_config=model_config(upstream_models(upstream))) as gw, gw.client() as http:
            body = {"model": "gpt-fake", "messages": conversation(args.turns)}
            trace_id = http.post("/v1/chat/completions", json=body).headers["x-trace-id"]
            with chromium() as browser:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(f"{gw.url}/ui#/calls")
                page.wait_for_selector("main#view[data-ready='1']")
                times = []
                for _ in range(args.repeat):
                    page.evaluate("location.hash = '#/calls'")
                    page.wait_for_selector("main#view[data-view='calls'][data-ready='1']")
                    times.append(page.evaluate(RENDER, trace_id))
                text = page.evaluate("document.getElementById('view').innerText.length")
                elements = page.evaluate("document.getElementById('view').getElementsByTagName('*').length")
        size = len(str(body).encode()) / 1024
        print(
            f"call detail of a {size:.0f} KB conversation: median {statistics.median(times):.1f} ms, "
            f"best {min(times):.1f} ms over {args.repeat}; view text {text} characters, {elements} elements"
        )
    finally:
        upstream.stop()


if __name__ == "__main__":
    main()
