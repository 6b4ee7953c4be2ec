"""The OpenAI-compatible HTTP layer, in the order a request meets it: ``transport`` (uvicorn's connection and
header limits), ``gate`` (auth or ``hosts``, ``admission``, the ``body`` under its limits), ``routes`` (parse,
one call, respond), ``protocol`` (wire models), ``serving`` (run, answer JSON or SSE; the one cleanup),
``engine_request`` (request → engine job: checks, template, media), ``sse`` (the wire format); beside them
``lifecycle`` (load, readiness, drain), ``metrics``, ``playground`` and ``server`` (``aurora-serve serve``)."""
