// Polls the daemon's health check from its own thread (its own event loop), so that the bench's clients
// cannot delay the probe's timing. Started by health.ts; stops and reports when told to.
import { parentPort, workerData } from "node:worker_threads";

const { url, intervalMs } = workerData as { url: string; intervalMs: number };
const samples: number[] = [];
let failures = 0;
let stopping = false;
parentPort?.on("message", () => (stopping = true));

// The first fetch of a thread loads the HTTP client (~50-100 ms): not the daemon's time, so not timed.
await fetch(url)
  .then((r) => r.arrayBuffer())
  .catch(() => undefined);
parentPort?.postMessage({ ready: true });

while (!stopping) {
  const t = performance.now();
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    await res.arrayBuffer();
    if (res.ok) samples.push(performance.now() - t);
    else failures++;
  } catch {
    failures++;
  }
  const wait = intervalMs - (performance.now() - t);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
parentPort?.postMessage({ samples, failures });
