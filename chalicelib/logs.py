"""One JSON object per log line, and CloudWatch Embedded Metric Format metrics.

Lambda sends stdout to CloudWatch Logs; JSON lines are queryable field by field in
Logs Insights, and EMF lines become metrics without any API call.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO


def event(name: str, *, stream: TextIO | None = None, **fields: Any) -> None:
    """Write one log line: {"ts", "event", **fields}."""
    line = {"ts": round(time.time(), 3), "event": name, **fields}
    print(
        json.dumps(line, default=str, separators=(",", ":")), file=stream or sys.stdout, flush=True
    )
