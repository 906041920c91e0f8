"""Incident response: detect anomalies, reroute the work at stake, escalate stuck work, alert.

`detection` (triggers and grid overrides), `response` (reroutes and escalation), `alerts`
(spoken alerts and incident timelines), `ports` (alert sink and speech engine protocols).
"""
