"""Tools: deterministic domain functions and their thin LangChain adapters."""
