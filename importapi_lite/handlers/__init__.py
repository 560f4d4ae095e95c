"""One module per endpoint; each handler: decode, validate, store, reply. Errors are raised."""
