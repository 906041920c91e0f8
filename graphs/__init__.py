"""Graphs: LangGraph state, context, settings and one module per graph."""
