"""Appearance providers: one file each, registered with ``registry.register_appearance``.
Every module here is imported when the engine lists its providers: keep imports cheap."""
