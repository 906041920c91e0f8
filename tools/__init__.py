"""Tools: the domain packages (grid, broker, money, incidents), vendor integrations and agent tools.

`grid/`, `broker/`, `money/` and `incidents/` hold plain typed functions over the store and
declare the small protocols they need; `integrations/` implements those protocols with vendor
SDKs; `agent_tools/` adapts domain functions into LangChain tools. `errors.py` and `clock.py`
are shared by all of them.
"""
