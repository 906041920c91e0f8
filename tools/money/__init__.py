"""Money: usage and the 15 % fee split, metering, payouts, carbon receipts, profitability.

Integer minor units throughout. `ports` declares what the pipeline needs from outside (a biller,
a payment rail); `settlement` runs one completed workload through it, resumably.
"""
