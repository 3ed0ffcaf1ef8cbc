"""The built-in procedural abdominal CT (``make_abdomen``): the default data of ``make demo``
and the tests. ``abdomen`` assembles it from ``body``, ``organs``, ``gut``, ``tissue`` and
``shapes``."""
from .abdomen import make_abdomen

__all__ = ["make_abdomen"]
