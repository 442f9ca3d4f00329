"""``make chaos``: the service's real processes, hurt on purpose, against a fake SendGrid.

Each scenario (:mod:`benchmarks.chaos.scenarios`) seeds a newsletter's subscribers,
runs ``nurture serve`` / ``nurture tick`` against the fake SendGrid (which records
every accepted personalization and posts signed events back to the webhook), strikes
(SIGKILL, SIGTERM, SIGSTOP, provider outages, contradictory settings), lets the queue
drain and reports duplicates, lost emails and the time to drain.

    python -m benchmarks.chaos --n 10000 --kills 20 [--scenarios a,b] [--parallel 3]
"""
