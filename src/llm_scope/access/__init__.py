"""Access: virtual keys, their budgets and rate limits."""
