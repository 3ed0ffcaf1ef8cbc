"""Geometry providers: one file each, registered with ``registry.register_geometry``.
Every module here is imported when the engine lists its providers: keep imports cheap."""
