"""The admin API under ``/_importapi/v1/``: a sub-application with its own token and error shape.

Kept import-free: ``keys.py`` imports ``journal`` and ``faults`` from here, and ``routes`` imports
``keys``. ``admin.routes.admin_app()`` builds the sub-application.
"""
