"""Passages: chunk articles, embed them, and find the ones that answer a question."""
