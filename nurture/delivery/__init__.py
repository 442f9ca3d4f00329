"""The delivery pipeline, in the order a message travels through it.

- :mod:`~nurture.delivery.sequencing`: pure rules of time (delays, send windows, retries);
- :mod:`~nurture.delivery.planning`: due steps and newsletters become outbox rows;
- :mod:`~nurture.delivery.composing`: outbox rows become rendered batches;
- :mod:`~nurture.delivery.dispatch`: batches are claimed, sent and recorded;
- :mod:`~nurture.delivery.outcomes`: what a provider's answer means for a row;
- :mod:`~nurture.delivery.reconciliation`: rows whose answer was lost;
- :mod:`~nurture.delivery.events`: the provider's webhook events applied.
"""
