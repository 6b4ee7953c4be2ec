"""The OpenAI-compatible HTTP layer: ``app`` (routes), ``protocol`` (wire models), ``service`` (request →
engine job), ``generation`` (run a job, answer JSON or SSE), ``sse``, ``gate`` (auth, body cap),
``runtime`` (load, admit, drain), ``metrics``, ``server`` (``aurora-serve serve``)."""
