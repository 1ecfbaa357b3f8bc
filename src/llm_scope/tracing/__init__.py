"""tracing layer."""
