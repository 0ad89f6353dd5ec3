import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@stasis/sdk";
import { startTestDaemon, type TestDaemon } from "./harness.js";

interface OtlpSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  attributes: { key: string; value: { stringValue?: string; intValue?: number | string } }[];
}

/** A tiny OTLP/HTTP collector: it keeps the spans of every JSON export posted to /v1/traces. */
class Collector {
  readonly spans: OtlpSpan[] = [];
  readonly services = new Set<string>();
  private readonly server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.url === "/v1/traces" && req.headers["content-type"]?.includes("json")) {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as { resourceSpans: { resource: { attributes: OtlpSpan["attributes"] }; scopeSpans: { spans: OtlpSpan[] }[] }[] };
        for (const rs of body.resourceSpans) {
          const service = rs.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue;
          if (service) this.services.add(service);
          for (const ss of rs.scopeSpans) this.spans.push(...ss.spans);
        }
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });

  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }

  named(name: string): OtlpSpan[] {
    return this.spans.filter((s) => s.name === name);
  }
}

const attr = (s: OtlpSpan, key: string) => {
  const v = s.attributes.find((a) => a.key === key)?.value;
  return v?.stringValue ?? (v?.intValue === undefined ? undefined : Number(v.intValue));
};

describe("OpenTelemetry tracing to an OTLP/HTTP collector", () => {
  const collector = new Collector();
  let daemon: TestDaemon;

  beforeAll(async () => {
    const endpoint = await collector.start();
    // A long batch delay: what the collector gets, it gets from the flush at shutdown.
    daemon = await startTestDaemon({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: "600000", OTEL_SERVICE_NAME: "stasis-e2e" });
  });
  afterAll(async () => {
    await daemon?.destroy();
    await collector.close();
  });

  it("exports create, exec, hibernate and wake spans, continues the client's trace, and logs carry the trace id", async () => {
    // The create continues the client's trace.
    const clientTrace = "0af7651916cd43dd8448eb211c80319c";
    const res = await fetch(`${daemon.url}/v1/sandboxes`, {
      method: "POST",
      headers: { authorization: `Bearer ${daemon.apiKey}`, "content-type": "application/json", traceparent: `00-${clientTrace}-b7ad6b7169203331-01` },
      body: JSON.stringify({ runtime: "gvisor" }),
    });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    const sandbox = await Sandbox.connect(id, daemon.conn);
    expect((await sandbox.commands.run("echo hi")).stdout).toBe("hi\n");
    expect((await sandbox.hibernate()).state).toBe("hibernated");
    expect((await sandbox.commands.run("echo awake")).stdout).toBe("awake\n");
    // The E2B surface's routes are named too (a refused key still makes its span).
    expect((await fetch(`${daemon.url}/v2/sandboxes`, { headers: { "x-api-key": "e2b_wrong" } })).status).toBe(401);
    await sandbox.kill();
    expect(collector.spans).toHaveLength(0);
    await daemon.stop();

    const create = collector.named("sandbox.create");
    expect(create).toHaveLength(1);
    expect(create[0]!.traceId).toBe(clientTrace);
    expect(attr(create[0]!, "stasis.sandbox.id")).toBe(id);
    const request = collector.spans.find((s) => s.spanId === create[0]!.parentSpanId);
    expect(request?.name).toBe("POST /v1/sandboxes");
    expect(request?.parentSpanId).toBe("b7ad6b7169203331");
    expect(collector.named("sandbox.exec").map((s) => attr(s, "stasis.sandbox.id"))).toEqual([id, id]);
    expect(collector.named("sandbox.hibernate").map((s) => attr(s, "stasis.sandbox.id"))).toEqual([id]);
    const wake = collector.named("sandbox.wake");
    expect(wake.map((s) => attr(s, "stasis.wake.from"))).toEqual(["hibernated"]);
    // The wake's phases: restore, network and agent, each a child span with its own duration.
    const phases = collector.spans.filter((s) => s.parentSpanId === wake[0]!.spanId).map((s) => s.name);
    expect(phases).toEqual(expect.arrayContaining(["sandbox.restore", "sandbox.network_setup", "sandbox.agent_ready"]));
    expect([...collector.services]).toEqual(["stasis-e2e"]);
    const e2b = collector.named("GET /v2/sandboxes");
    expect(e2b.map((s) => [attr(s, "stasis.operation"), attr(s, "http.response.status_code")])).toEqual([[expect.stringMatching(/^e2b\./), 401]]);

    const created = daemon.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === "sandbox created");
    expect(created).toMatchObject({ trace_id: clientTrace, sandbox: id });
  });
});
