"""llm-scope: an LLM gateway that sees every call."""

__version__ = "0.1.0"
