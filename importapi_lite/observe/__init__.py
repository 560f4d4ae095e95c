"""Watching the server: the request journal, recent activity per table, injected faults, the
rejection log. Used by web, ingest and admin; imports none of them."""
