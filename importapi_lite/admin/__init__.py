"""The admin API under ``/_importapi/v1/`` (a sub-application with its own token and error
shape), its OpenAPI document and the dashboard at ``/_importapi/``. It reads and resets through
the destination and shows what ``observe`` recorded. ``admin.routes.admin_app()`` builds it.
"""
