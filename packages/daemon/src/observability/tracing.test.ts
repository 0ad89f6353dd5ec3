import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import pino from "pino";
import { SpanStatusCode } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CommandRequestSchema } from "@stasis/protocol";
import { ExecService } from "../services/exec-service.js";
import { TemplateService } from "../services/template-service.js";
import type { TemplateStore } from "../templates/template-store.js";
import type { TemplateBuilder } from "../templates/template-builder.js";
import { busySandbox, params, TestHost, type Daemon } from "../services/lifecycle/test-support/harness.js";
import { tracedRequests } from "./http-tracing.js";
import { createLogger } from "./logger.js";
import { startTracing, tracingWanted, type Tracing } from "./tracing-setup.js";
import { traced } from "./tracing.js";

// One provider for the file (the API's globals), exporting to memory; each test reads what it made.
const exporter = new InMemorySpanExporter();
let tracing: Tracing;
beforeAll(async () => {
  tracing = await startTracing({}, new SimpleSpanProcessor(exporter));
});
afterAll(() => tracing.shutdown());
beforeEach(() => exporter.reset());

const spans = (name: string) => exporter.getFinishedSpans().filter((s) => s.name === name);
const one = (name: string): ReadableSpan => {
  const found = spans(name);
  expect(found, `spans named ${name}`).toHaveLength(1);
  return found[0]!;
};
const childrenOf = (parent: ReadableSpan) => exporter.getFinishedSpans().filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId);

describe("when tracing is on", () => {
  it("needs an OTLP endpoint, and OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none turn it off", () => {
    expect(tracingWanted({})).toBe(false);
    expect(tracingWanted({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" })).toBe(true);
    expect(tracingWanted({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://127.0.0.1:4318/v1/traces" })).toBe(true);
    expect(tracingWanted({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://x:4318", OTEL_SDK_DISABLED: "true" })).toBe(false);
    expect(tracingWanted({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://x:4318", OTEL_TRACES_EXPORTER: "none" })).toBe(false);
  });

  it("names the service stasis unless OTEL_SERVICE_NAME says otherwise", async () => {
    await traced("probe", {}, async () => {});
    expect(one("probe").resource.attributes["service.name"]).toBe(process.env.OTEL_SERVICE_NAME ?? "stasis");
  });
});

describe("lifecycle spans (fake driver)", () => {
  let env: TestHost;
  let d: Daemon;
  beforeEach(async () => {
    env = new TestHost();
    d = await env.startDaemon();
    exporter.reset();
  });
  afterEach(() => env.close());

  it("create, exec, pause, wake, hibernate, wake and fork each make a span with the sandbox's id", async () => {
    const exec = new ExecService(d.service, d.metrics, 1024 * 1024);
    const { id } = await d.service.create(params({ runtime: "gvisor" }));
    const create = one("sandbox.create");
    expect(create.attributes).toMatchObject({ "stasis.sandbox.id": id, "stasis.runtime": "gvisor", "stasis.template": "base", "stasis.created_via": "cold" });
    expect(childrenOf(create).map((s) => s.name)).toEqual(expect.arrayContaining(["create.disk", "sandbox.network_setup", "create.launch", "sandbox.agent_ready"]));

    const r = await exec.run(id, CommandRequestSchema.parse({ cmd: "echo hi" }));
    expect(r.stdout).toBe("hi\n");
    expect(one("sandbox.exec").attributes).toMatchObject({ "stasis.sandbox.id": id, "stasis.exec.kind": "run", "stasis.exec.exit_code": 0, "stasis.exec.pid": r.pid });

    await d.service.pause(id);
    expect(one("sandbox.pause").attributes).toMatchObject({ "stasis.sandbox.id": id, "stasis.standby.reason": "requested" });
    await d.service.resume(id);
    expect(one("sandbox.wake").attributes).toMatchObject({ "stasis.sandbox.id": id, "stasis.wake.from": "paused" });

    exporter.reset();
    await d.service.hibernate(id);
    const hibernate = one("sandbox.hibernate");
    // The network is kept for a while (a wake soon after reuses it): no leave_network step here.
    expect(childrenOf(hibernate).map((s) => s.name)).toEqual(["hibernate.wait_commands", "hibernate.checkpoint", "hibernate.sync_disk"]);

    // An exec on a hibernated sandbox wakes it: the wake (restore, network, agent) is the exec's child.
    exporter.reset();
    await exec.run(id, CommandRequestSchema.parse({ cmd: "echo again" }));
    const wake = one("sandbox.wake");
    expect(wake.parentSpanContext?.spanId).toBe(one("sandbox.exec").spanContext().spanId);
    expect(wake.attributes).toMatchObject({ "stasis.wake.from": "hibernated" });
    expect(childrenOf(wake).map((s) => s.name)).toEqual(expect.arrayContaining(["sandbox.network_setup", "sandbox.restore", "sandbox.agent_ready"]));
    expect(one("sandbox.restore").attributes).toMatchObject({ "stasis.restore.why": "resume", "stasis.restore.attempt": 1 });

    exporter.reset();
    const clones = await d.service.fork(id, 2);
    const fork = one("sandbox.fork");
    expect(fork.attributes).toMatchObject({ "stasis.sandbox.id": id, "stasis.fork.count": 2 });
    const restores = spans("sandbox.restore").filter((s) => s.attributes["stasis.restore.why"] === "fork");
    expect(restores.map((s) => s.attributes["stasis.sandbox.id"]).sort()).toEqual(clones.map((c) => c.id).sort());
    expect(restores.every((s) => s.spanContext().traceId === fork.spanContext().traceId)).toBe(true);
  });

  it("records a failure on the span: status, exception and the API's error code", async () => {
    const { id } = await busySandbox(d.service);
    d.driver.failNext("pause", new Error("freezer: EBUSY"));
    await expect(d.service.pause(id)).rejects.toThrow(/EBUSY/);
    const pause = one("sandbox.pause");
    expect(pause.status).toMatchObject({ code: SpanStatusCode.ERROR, message: expect.stringMatching(/EBUSY/) });
    expect(pause.attributes["stasis.error.code"]).toBe("agent_timeout");
    expect(pause.events.map((e) => e.name)).toContain("exception");
  });

  it("a create refused up front (unknown template) is a failed create span", async () => {
    await expect(d.service.create(params({ template: "no-such-template" }))).rejects.toMatchObject({ code: "template_not_found" });
    expect(one("sandbox.create").attributes["stasis.error.code"]).toBe("template_not_found");
  });
});

describe("warm pools and template builds", () => {
  let env: TestHost;
  afterEach(() => env.close());

  it("a warm-pool member's boot is one span; a create that claims it says so", async () => {
    env = new TestHost();
    const d = await env.startDaemon({ config: { warmPools: { base: 1 } } });
    await expect.poll(() => d.service.warmPools()[0]?.ready, { timeout: 5_000 }).toBe(1);
    const boot = one("warm_pool.boot");
    expect(boot.attributes).toMatchObject({ "stasis.template": "base", "stasis.created_via": "cold" });
    expect(childrenOf(boot).map((s) => s.name)).toEqual(expect.arrayContaining(["create.launch", "sandbox.pause"]));
    const { id } = await d.service.create(params({}));
    expect(one("sandbox.create").attributes).toMatchObject({ "stasis.sandbox.id": id, "stasis.created_via": "warm_pool" });
  });

  it("a template import or build is a span with the template's name, failed when the build fails", async () => {
    env = new TestHost();
    const d = await env.startDaemon();
    const builder = {
      importImage: async () => {
        throw new Error("no manifest.json in the archive");
      },
    } as unknown as TemplateBuilder;
    const store = { isBuiltinName: () => false } as unknown as TemplateStore;
    const templates = new TemplateService({ config: d.config, store, builder, sandboxes: d.service, log: pino({ level: "silent" }) });
    const events = [];
    const body = (async function* () {
      yield new Uint8Array([1, 2, 3]);
    })();
    for await (const e of templates.import({ name: "mine", image: undefined, cpu: undefined, memoryMiB: undefined, diskMiB: undefined, pool: undefined } as never, body, new AbortController().signal)) events.push(e);
    expect(events.at(-1)).toMatchObject({ type: "error", code: "internal" });
    const build = one("template.build");
    expect(build.attributes).toMatchObject({ "stasis.template": "mine", "stasis.template.source": "import" });
    expect(build.status).toMatchObject({ code: SpanStatusCode.ERROR, message: expect.stringMatching(/manifest/) });
  });
});

describe("API requests", () => {
  let server: Server;
  let inner: string | undefined;
  beforeAll(async () => {
    server = createServer(
      tracedRequests((_req, res) => {
        void traced("inner", {}, async () => {
          inner = "ran";
          res.statusCode = 201;
          res.end("ok");
        });
      }),
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const get = (headers: Record<string, string>) =>
    new Promise<void>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: (server.address() as AddressInfo).port, path: "/v1/sandboxes?x=1", headers }, (res) => {
        res.resume();
        res.on("end", resolve);
      });
      req.on("error", reject);
      req.end();
    });

  it("continue the client's trace from its W3C traceparent", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    await get({ traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
    await expect.poll(() => spans("GET").length).toBe(1);
    const server = one("GET");
    expect(server.spanContext().traceId).toBe(traceId);
    expect(server.parentSpanContext?.spanId).toBe("00f067aa0ba902b7");
    expect(server.attributes).toMatchObject({ "http.request.method": "GET", "url.path": "/v1/sandboxes", "http.response.status_code": 201 });
    expect(inner).toBe("ran");
    expect(one("inner").parentSpanContext?.spanId).toBe(server.spanContext().spanId);
  });

  it("record nothing when the client's traceparent says its trace is not sampled", async () => {
    await get({ traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00" });
    await get({});
    await expect.poll(() => spans("GET").length).toBe(1);
    expect(exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === "4bf92f3577b34da6a3ce929d0e0e4736")).toEqual([]);
  });

  it("start a new trace without one", async () => {
    await get({});
    await expect.poll(() => spans("GET").length).toBe(1);
    expect(one("GET").parentSpanContext).toBeUndefined();
  });
});

describe("logs", () => {
  it("a line written inside a span carries its trace and span ids; one outside carries none", async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    const log = createLogger("info", sink).child({ component: "test" });
    await traced("logged", {}, async () => log.info("inside"));
    log.info("outside");
    const span = one("logged").spanContext();
    expect(lines.find((l) => l.msg === "inside")).toMatchObject({ trace_id: span.traceId, span_id: span.spanId, component: "test" });
    const outside = lines.find((l) => l.msg === "outside");
    expect(outside).toBeDefined();
    expect(outside).not.toHaveProperty("trace_id");
  });
});
