"""The running service: the wiring (:mod:`services`), the jobs and their schedule, the server."""
