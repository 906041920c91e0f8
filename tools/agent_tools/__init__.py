"""Every LangChain tool the agents call, each a thin adapter over one domain function.

`registry` (READ/WRITE marking), `broker` (broker chat tools), `billing` and `clerk` (billing
clerk tools, all READ), `handoff` (the supervisor's `transfer_to_<agent>` tools).
"""
