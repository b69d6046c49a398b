"""``connection_slots.longest_idle``, apart from the servers that use it (their eviction tests
are in ``pipeline_http_limits_protocol_test.py`` and ``pipeline_control_limits_test.py``)."""

from __future__ import annotations

from taskdaemon.pipeline.connection_slots import longest_idle


def test_connections_idle_since_the_same_instant_need_no_order() -> None:
    """Two connections whose waits began at the same reading of the loop's clock (one of
    coarse resolution): the first is chosen, and the connections, which have no order, are
    never compared."""
    first, second = object(), object()
    assert first is longest_idle([first, second], lambda connection: 5.0)
