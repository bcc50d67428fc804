"""The web page: upload a file, watch it, listen to before/after, see spectrograms and the plan.

Pages are server-rendered shells; their JavaScript reads the JSON API with the key the user typed
(kept in ``localStorage``). Media for ``<audio>``/``<img>`` elements, which cannot send headers,
comes from URLs signed per job (see :mod:`avagent.service.web.tokens`).
"""

from avagent.service.web.routes import router

__all__ = ["router"]
