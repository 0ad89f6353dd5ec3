import { Worker } from "node:worker_threads";

export interface HealthProbe {
  /** Stops polling; resolves with every successful latency (ms) and the failed or non-200 polls. */
  stop(): Promise<{ samples: number[]; failures: number }>;
}

interface Report {
  ready?: boolean;
  samples?: number[];
  failures?: number;
}

/** Polls GET `url` about every `intervalMs` in a worker thread until stopped; resolves once it polls. */
export async function startHealthProbe(url: string, intervalMs = 100): Promise<HealthProbe> {
  const worker = new Worker(new URL("./health-worker.js", import.meta.url), { workerData: { url, intervalMs } });
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  const result = new Promise<{ samples: number[]; failures: number }>((resolve, reject) => {
    worker.on("message", (m: Report) => {
      if (m.ready) onReady();
      else resolve({ samples: m.samples ?? [], failures: m.failures ?? 0 });
    });
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`health probe exited (${code}) before reporting`)));
  });
  await Promise.race([ready, result]);
  return {
    async stop() {
      worker.postMessage("stop");
      try {
        return await result;
      } finally {
        void worker.terminate();
      }
    },
  };
}
