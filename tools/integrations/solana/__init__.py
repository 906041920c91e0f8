"""Solana: the chain (LiteSVM in-process or RPC), the crash-safe outbox and the payment rail."""
