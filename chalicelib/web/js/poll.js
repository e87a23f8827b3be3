// Polling with backoff: fast while something changes, slower while nothing does,
// stopped when the section is left (its AbortSignal).

/**
 * poller(signal, step, onError): `step()` fetches and renders, returning true while
 * there is something to wait for. Delays grow 0.5 s x1.6 up to 8 s; `refresh()`
 * runs a step now and starts over fast. One step at a time: a refresh during a step
 * runs one more right after it (never a second chain of timers).
 */
export function poller(signal, step, onError, { first = 500, max = 8000, factor = 1.6 } = {}) {
  let timer = null;
  let delay = first;
  let last = null;
  let running = null; // the step in flight
  let again = false; // a refresh came during it
  async function tick() {
    timer = null;
    if (signal.aborted) return;
    let more = false;
    try {
      const result = await step();
      more = Boolean(result);
      const fingerprint = JSON.stringify(result);
      delay = fingerprint !== last ? first : Math.min(max, delay * factor);
      last = fingerprint;
    } catch (e) {
      if (signal.aborted) return;
      onError?.(e);
      more = e.status === 0 || e.status === 429 || e.status >= 500;
      const retryAfter = Number(e.retryAfter) * 1000;
      delay = Math.min(max * 4, Math.max(retryAfter || 0, delay * factor * 2));
    }
    if (more && !signal.aborted) timer = setTimeout(run, delay);
  }
  function run() {
    running = tick().finally(() => {
      running = null;
      if (again && !signal.aborted) {
        again = false;
        clearTimeout(timer);
        run();
      }
    });
    return running;
  }
  signal.addEventListener('abort', () => clearTimeout(timer));
  return {
    refresh() {
      clearTimeout(timer);
      delay = first;
      last = null;
      if (running) { again = true; return running; }
      return run();
    },
  };
}
