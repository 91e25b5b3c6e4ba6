"""Polling: one task per physical link, every pump on it polled at its own interval."""

from gateway.poller.link_poller import LinkPoller, SnapshotSink, group_by_link

__all__ = ["LinkPoller", "SnapshotSink", "group_by_link"]
