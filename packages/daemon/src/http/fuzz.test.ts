import { E2bMetricsHistory } from "../e2b/metrics-history.js";
import { DomainStore } from "../store/domain-store.js";
import { PtyService } from "../services/pty-service.js";
import { WatchService } from "../services/watch-service.js";
import { PreviewService } from "../services/preview-service.js";
import { CodeService } from "../services/code/code-service.js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SecretsKey } from "../secrets/secret-crypto.js";
import { SecretStore } from "../secrets/secret-store.js";
import { E2bStore } from "../e2b/e2b-store.js";
import { ExecService } from "../services/exec-service.js";
import { FileService } from "../services/file-service.js";
import { params, TestHost, type Daemon } from "../services/lifecycle/test-support/harness.js";
import { createTemplateService } from "../services/template-service.js";
import { TemplateStore } from "../templates/template-store.js";
import { createApp } from "./app.js";

// Seeded fuzzing of every route of the committed OpenAPI document against an in-process app over the
// fake driver (one live sandbox): wrong types, missing fields, huge values, odd ids and paths, bad JSON,
// wrong content types. Whatever the input, the answer is never a 5xx.
type Schema = { type?: string | string[]; properties?: Record<string, Schema>; required?: string[]; items?: Schema; enum?: unknown[]; anyOf?: Schema[]; $ref?: string; $defs?: Record<string, Schema>; minimum?: number; maximum?: number; default?: unknown; additionalProperties?: Schema | boolean };
type Operation = { parameters?: { name: string; in: "path" | "query"; schema?: Schema }[]; requestBody?: { content: Record<string, { schema?: Schema }> } };
const doc = JSON.parse(readFileSync(join(import.meta.dirname, "../../../../spec/openapi.json"), "utf8")) as { paths: Record<string, Record<string, Operation>> };

const SEED = 0x5ca1ab1e;
const PER_ROUTE = 90;

/** mulberry32: small, seeded, deterministic. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
let random = prng(SEED);

function hashOf(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

const oddStrings = ["", " ", "a", "/", "/tmp/x", "/etc/passwd", "../../etc", "/tmp/" + "n".repeat(300), "x".repeat(70_000), "\u0000", "%00", "sbx_", "é☃\ud83d\ude00", "base", "base:1", "base:0", "nosuch:99999999999", "null", "-1", "1e309", "<script>", "echo hi", "SIGKILL", "a=b", "{}"];
const oddNumbers = [0, -1, 1, 0.5, 255, 65536, 2 ** 31, 2 ** 53 + 2, -(2 ** 53), 1e308, Number.MAX_SAFE_INTEGER];
const oddValues: unknown[] = [null, true, false, [], [null], {}, { a: { b: [1] } }, ...oddStrings, ...oddNumbers];

/** Plausible strings by field name, so that requests also reach the services and the agent. */
const stringsFor: Record<string, string[]> = {
  path: ["/tmp/fuzz", "/tmp/fuzz/a.txt", "/", "/tmp", "/tmp/fuzz/../x", "/tmp/" + "n".repeat(256)],
  from: ["/tmp/fuzz/a.txt", "/tmp/fuzz", "/"],
  to: ["/tmp/fuzz/b.txt", "/tmp/fuzz/a.txt/c", "/"],
  cwd: ["/tmp", "/root", "/nope"],
  cmd: ["echo hi", "false", "cat", "exit 3"],
  name: ["web", "fuzz", "base", "Bad_Name"],
  template: ["base", "nosuch", "base:1"],
  signal: ["SIGTERM", "SIGKILL", "SIGNOPE"],
  data: ["hello", ""],
  user: ["root", "nobody", "nosuchuser", "0"],
  mode: ["644", "7777", "999", "x"],
  depth: ["1", "32", "33", "0"],
  recursive: ["true", "false", "1"],
  replay: ["true", "false"],
};

function resolve(schema: Schema | undefined, defs: Record<string, Schema>): Schema {
  if (!schema) return {};
  if (schema.$ref) return resolve(defs[schema.$ref.replace("#/$defs/", "")], defs);
  if (schema.anyOf) return resolve(pick(schema.anyOf), defs);
  return schema;
}

/** A value that mostly fits the schema (so that requests get past validation now and then). */
function sample(schema: Schema | undefined, defs: Record<string, Schema>, depth = 0, key = ""): unknown {
  const s = resolve(schema, defs);
  if (s.enum) return pick(s.enum);
  if (s.default !== undefined && random() < 0.3) return s.default;
  const type = Array.isArray(s.type) ? pick(s.type) : s.type;
  switch (type) {
    case "object": {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(s.properties ?? {})) if (s.required?.includes(k) || random() < 0.5) out[k] = sample(v, defs, depth + 1, k);
      if (!s.properties && typeof s.additionalProperties === "object" && random() < 0.5) out[pick(["A", "PATH", "k"])] = sample(s.additionalProperties, defs, depth + 1);
      return out;
    }
    case "array":
      return depth > 3 ? [] : [sample(s.items, defs, depth + 1)];
    case "integer":
    case "number": {
      const lo = s.minimum ?? 0;
      const hi = Math.min(s.maximum ?? 1000, lo + 1000);
      return type === "integer" ? Math.floor(lo + random() * (hi - lo)) : lo + random() * (hi - lo);
    }
    case "boolean":
      return random() < 0.5;
    case "string":
      return pick(stringsFor[key] ?? ["echo hi", "/tmp/fuzz", "base", "hello", "SIGTERM", "1"]);
    default:
      return pick(oddValues);
  }
}

/** Breaks a value: a field dropped, retyped or huge; extra fields; deep nesting. */
function mutate(value: unknown): unknown {
  if (random() < 0.15) return pick(oddValues);
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    const keys = Object.keys(out);
    const n = 1 + Math.floor(random() * 3);
    for (let i = 0; i < n; i++) {
      const r = random();
      if (keys.length > 0 && r < 0.3) delete out[pick(keys)];
      else if (keys.length > 0 && r < 0.8) out[pick(keys)] = random() < 0.5 ? pick(oddValues) : mutate(out[pick(keys)]);
      else out[pick(["__proto__", "constructor", "extra", "cmd", "path"])] = pick(oddValues);
    }
    return out;
  }
  if (Array.isArray(value)) return random() < 0.5 ? [...value, pick(oddValues)] : Array.from({ length: 2000 }, () => pick(oddStrings));
  return pick(oddValues);
}

function bodyFor(op: Operation): { body?: string | Uint8Array; type?: string } {
  const content = op.requestBody?.content ?? {};
  const r = random();
  if (r < 0.08) return {};
  if (r < 0.16) return { body: pick(["{", "[1,", "nul", '{"a":1}}', "\u0000", "{}".repeat(5000)]), type: "application/json" };
  if (r < 0.22) return { body: '{"cmd":"echo"}', type: pick(["text/plain", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", ""]) };
  if (content["application/octet-stream"]) return { body: Uint8Array.from(Array.from({ length: Math.floor(random() * 3000) }, () => Math.floor(random() * 256))), type: pick(["application/octet-stream", "application/json", "multipart/form-data"]) };
  const json = content["application/json"];
  if (!json) return random() < 0.5 ? {} : { body: JSON.stringify(pick(oddValues)), type: "application/json" };
  const defs = json.schema?.$defs ?? {};
  const valid = sample(json.schema, defs);
  return { body: JSON.stringify(random() < 0.3 ? valid : mutate(valid)), type: "application/json" };
}

function pathParam(name: string, liveId: string, pid: number): string {
  const odd = pick(["nope", "sbx_0000000000000000", "", "%2e%2e", "%2F", "a".repeat(3000), "%00", "-1", "1.5", "99999999999999999999999", "%E2%98%83"]);
  if (random() < 0.5) return odd;
  if (name === "id") return liveId;
  if (name === "pid") return String(pid);
  if (name === "ref") return pick(["base", "base:1", "nosuch", "web:3"]);
  return pick(["k1", "key_x"]);
}

function queryFor(op: Operation): string {
  const q = new URLSearchParams();
  for (const p of op.parameters ?? []) {
    if (p.in !== "query" || random() < 0.25) continue;
    const v = random() < 0.6 ? sample(p.schema, {}, 0, p.name) : pick(oddValues);
    q.append(p.name, typeof v === "string" ? v : JSON.stringify(v));
    if (random() < 0.1) q.append(p.name, "again");
  }
  if (random() < 0.1) q.append("unknown", "1");
  return q.size > 0 ? `?${q.toString()}` : "";
}

let env: TestHost;
let daemon: Daemon;
let app: ReturnType<typeof createApp>;
let liveId = "";
let livePid = 1;
beforeAll(async () => {
  env = new TestHost();
  daemon = await env.startDaemon();
  const log = pino({ level: "silent" });
  const sandboxes = daemon.service;
  const templates = new TemplateStore(join(env.dir, "real-templates"));
  const fuzzExec = new ExecService(sandboxes, daemon.metrics, 64 * 1024);
  const fuzzPreview = new PreviewService(sandboxes, fuzzExec, { domain: "localhost", urlTemplate: () => "http://{port}-{id}.localhost:7070" }, new DomainStore(daemon.database));
  app = createApp({
    apiKey: "k-0123456789abcdef",
    log,
    metrics: daemon.metrics,
    services: {
      pty: new PtyService(sandboxes, fuzzExec), watch: new WatchService(sandboxes), sandboxes,
      exec: fuzzExec,
      code: new CodeService(sandboxes, fuzzPreview),
      preview: fuzzPreview,
      files: new FileService(sandboxes, 1024 * 1024),
      templates,
      templateBuilds: createTemplateService({ config: daemon.config, store: templates, sandboxes, steps: undefined, log }),
      e2bKeys: new E2bStore(daemon.database),
      secrets: new SecretStore(daemon.database, new SecretsKey(daemon.config.secretsKeyFile)),
      metrics: daemon.metrics,
      metricsHistory: new E2bMetricsHistory(sandboxes),
      doctor: async () => [{ name: "root", ok: true, severity: "error" as const, detail: "running as root" }],
    version: "test",
      defaultRuntime: "gvisor",
    },
  });
  liveId = (await sandboxes.create(params({}))).id;
  const live = await sandboxes.acquire(liveId);
  livePid = (await live.agent.exec({ cmd: ["/bin/sh", "-c", "echo ready"], env: {}, user: "root" })).pid;
});
afterAll(() => env.close());

describe("fuzzing every route of the OpenAPI document", () => {
  it(`answers ${PER_ROUTE} mutated requests per route (seed ${SEED}) without a single 5xx`, { timeout: 60_000 }, async () => {
    random = prng(SEED);
    const failures: string[] = [];
    let sent = 0;
    const reached = new Set<number>();
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        // A sequence per route, so that a route added to the API leaves every other route's requests as they were.
        random = prng(SEED ^ hashOf(`${method} ${path}`));
        for (let i = 0; i < PER_ROUTE; i++) {
          // The live sandbox stays: its delete, and creates that would fill the host, are left out.
          const url = path.replace(/\{(\w+)\}/g, (_, name: string) => pathParam(name, liveId, livePid));
          if (method === "delete" && url === `/v1/sandboxes/${liveId}`) continue;
          const { body, type } = bodyFor(op);
          const headers: Record<string, string> = random() < 0.95 ? { authorization: "Bearer k-0123456789abcdef" } : {};
          if (type !== undefined) headers["content-type"] = type;
          const request = `${method.toUpperCase()} ${url.slice(0, 120)}${queryFor(op).slice(0, 200)} ${typeof body === "string" ? body.slice(0, 200) : ""}`;
          const res = await app.request(url + queryFor(op), { method: method.toUpperCase(), headers, ...(body !== undefined && method !== "get" ? { body } : {}) });
          const text = await res.text();
          sent++;
          reached.add(res.status);
          if (res.status >= 500) failures.push(`${res.status} ${request} -> ${text.slice(0, 300)}`);
          else if (res.status >= 400 && !text.includes('"code"')) failures.push(`${res.status} without the error shape: ${request}`);
        }
        // Sandboxes the fuzzer created or forked go, so that capacity never runs out.
        for (const s of daemon.service.list({ limit: 100 }).sandboxes) if (s.id !== liveId) await daemon.service.delete(s.id).catch(() => {});
      }
    }
    expect(sent).toBeGreaterThan(2000);
    // Requests got past validation into the services and the agent, not only refused at the door.
    for (const status of [200, 201, 204, 400, 401, 404, 409, 415]) expect(reached).toContain(status);
    expect(failures.slice(0, 20)).toEqual([]);
  });
});
