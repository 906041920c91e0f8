"""Vendor integrations, one module per vendor, each implementing a domain protocol.

Every one runs in a labelled demo mode without its key and through the vendor's SDK or API with
it: `electricitymaps` (live grid), `stripe` (biller, webhooks), `solana` (payment rail),
`incidentio` (alert sink), `paid` (usage signals), `speech` (ElevenLabs or espeak-ng).
"""
