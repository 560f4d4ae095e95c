"""Watching the server: the request journal, injected faults, the rejection log. Used by web,
ingest and admin; imports none of them."""
