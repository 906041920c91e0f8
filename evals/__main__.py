"""Run the evals command line: `python -m evals replay ...`."""

from evals.cli import app

app()
