"""Job callbacks: a signed JSON event POSTed to a job's `callbackUrl` when it ends.

    urls.py     which URLs may be called (the SSRF guard), at submission and delivery
    signing.py  Soundcheck-Signature: t=<unix>,v1=<HMAC-SHA256 of "t.body">
    store.py    signing secrets and deliveries in Postgres (migration 0007)
    send.py     one POST, pinned to a checked address, no redirects, bounded
    deliver.py  claim due events, send, record, retry with backoff

Pure Python without numpy or urllib3: the API functions import it.
"""

import threading

# Set when this process ended a job: its deliverer thread looks for due events at once
# instead of at its next poll (chalicelib.webhooks.deliver.run_forever).
woken = threading.Event()


def nudge() -> None:
    """A job of this process just ended: its event may be due now."""
    woken.set()
