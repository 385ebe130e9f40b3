"""The web UI under /ui/: HTML pages, scripts and styles shipped in this package.

The pages talk to the services only through the public HTTP API (the same one
every other client uses); this package imports no service code.
"""
