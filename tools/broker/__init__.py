"""The broker: score nodes, decide which are eligible, place and reroute workloads.

`scoring` (the composite score), `placement` (eligibility and recommendations), `workloads`
(the life cycle), `fleet` (node views, demo fleet), `routing` (route and reroute with every
candidate recorded), `briefs` (compact views, zone comparison and chat write limits),
`baseline` (the one baseline of CO2 avoided).
"""
