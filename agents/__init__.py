"""Agents: one module per LLM agent (name, prompt, tools, output schema, factory)."""
