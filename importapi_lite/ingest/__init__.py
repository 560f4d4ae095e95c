"""One body's way in: decode (JSON, Transit), validate (push, batch), plan and load through a
destination; the worker processes that run the same steps for big bodies. No aiohttp here."""
