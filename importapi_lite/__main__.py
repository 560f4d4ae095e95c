"""``python -m importapi_lite`` is the ``importapi-lite`` command."""

from .cli import main

raise SystemExit(main())
