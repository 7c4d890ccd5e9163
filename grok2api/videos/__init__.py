"""Video jobs (OpenAI's Videos API): kept in the store, run in the background by a runner in every process.

``claim`` is one runner's hold on one job, ``generate`` makes the video of a claimed job, and ``runner`` claims
jobs, keeps their leases alive and runs them.
"""
