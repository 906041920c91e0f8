"""Interfaces: the tgtg CLI, the FastAPI /api/v1 routes and the Gradio console."""
