import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** Prometheus metrics, on a registry per daemon (tests start several in one process). */
export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests = new Counter({
    name: "stasis_http_requests_total",
    help: "HTTP requests by route and status",
    labelNames: ["route", "method", "status"] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: "stasis_http_request_duration_seconds",
    help: "HTTP request duration until the response head (streams: until the first byte)",
    labelNames: ["route", "method"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly sandboxCreate = new Histogram({
    name: "stasis_sandbox_create_seconds",
    help: "Time from create request to a ready agent, by how the sandbox came (cold boot or warm pool)",
    labelNames: ["runtime", "via"] as const,
    buckets: [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10],
    registers: [this.registry],
  });
  readonly createsWaiting = new Gauge({
    name: "stasis_sandbox_creates_waiting",
    help: "Creates queued for a boot slot (STASIS_CREATE_PARALLELISM)",
    registers: [this.registry],
  });
  readonly warmPool = new Gauge({
    name: "stasis_warm_pool_sandboxes",
    help: "Warm-pool members booted or booting, by template (STASIS_WARM_POOL)",
    labelNames: ["template"] as const,
    registers: [this.registry],
  });
  readonly standbyTransition = new Histogram({
    name: "stasis_standby_transition_seconds",
    help: "Standby transitions: pause, thaw, hibernate, restore (wake from disk), restore_clone and fork",
    labelNames: ["op"] as const,
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [this.registry],
  });
  readonly sandboxes = new Gauge({
    name: "stasis_sandboxes",
    help: "Sandboxes by state",
    labelNames: ["state"] as const,
    registers: [this.registry],
  });
  readonly networkAttach = new Histogram({
    name: "stasis_network_attach_seconds",
    help: "Time to give a sandbox its network before a start: how=made (namespace, veth, rules) or how=kept (a namespace kept through a hibernation or a fork's checkpoint: its address back)",
    labelNames: ["how"] as const,
    buckets: [0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  /** Filled at each scrape from the sandboxes' interfaces (set by the composition root). */
  networkBytesSource: () => { id: string; sent: number; received: number }[] = () => [];
  readonly sandboxNetworkBytes = new Gauge({
    name: "stasis_sandbox_network_bytes",
    help: "Bytes a sandbox sent (direction=out) and received (direction=in) on its network over its life",
    labelNames: ["sandbox", "direction"] as const,
    registers: [this.registry],
    collect: () => {
      this.sandboxNetworkBytes.reset();
      for (const s of this.networkBytesSource()) {
        this.sandboxNetworkBytes.set({ sandbox: s.id, direction: "out" }, s.sent);
        this.sandboxNetworkBytes.set({ sandbox: s.id, direction: "in" }, s.received);
      }
    },
  });
  readonly sandboxFailures = new Counter({
    name: "stasis_sandbox_failures_total",
    help: "Sandboxes that failed to start or died",
    labelNames: ["runtime", "phase"] as const,
    registers: [this.registry],
  });
  readonly commands = new Counter({
    name: "stasis_commands_total",
    help: "Commands and processes started",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "stasis_process_" });
  }
}
