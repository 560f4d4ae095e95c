"""Request bodies to models, or a Stitch-shaped error. Pure: no I/O, no aiohttp.

``push`` covers /v2/import/push and /v2/import/validate (SPEC §3, §4); ``batch`` covers
/v2/import/batch (SPEC §5). Both validate the whole request before anything is written.
"""

from .batch import parse_batch
from .push import parse_push

__all__ = ["parse_batch", "parse_push"]
