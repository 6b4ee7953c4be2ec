"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS): keep generated requests on this machine.

Generated media URLs could name any host; the server would resolve and fetch them. Bodies that mention an
http(s) URL are dropped, so the fuzzer never makes the server reach past loopback (data: and file:// stay).
"""

from __future__ import annotations

import json
import re

import schemathesis

REMOTE = re.compile(r"(?i)h\s*t\s*t\s*p\s*s?\s*:")


@schemathesis.hook
def filter_body(context, body) -> bool:
    try:
        text = body if isinstance(body, str) else json.dumps(body, default=repr)
    except (TypeError, ValueError):
        text = repr(body)
    return not REMOTE.search(text)
