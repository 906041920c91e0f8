"""Prompts: one Markdown template per prompt and their loader."""
