"""The HTTP face of the Stitch Import API: the routing table, the checks (route, slot, auth, media
type, size) in SPEC order, one module per endpoint, responses and the application's keys."""
