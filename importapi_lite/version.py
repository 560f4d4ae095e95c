"""The package's version, in a module of its own: the status endpoint and the admin API's
document show it without importing the package's root (which builds the whole server)."""

__version__ = "0.1.0"
