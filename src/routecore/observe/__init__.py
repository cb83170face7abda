"""Seeing what the router does: the audit trail (records, stores, the batching
recorder), Prometheus metrics and their live quality gauges.

Below routing in the layer order: nothing here knows a Router or a provider;
the server turns its RPCs into `AuditRecord`s and hands them to the `Recorder`.
"""
