"""The loading model, pure: how a record is shaped (flattened objects, subtables, Stitch types,
split columns), the rules for names, and the plans a destination applies. No I/O, no SQL."""
