import type { Context } from "hono";
import { z } from "zod";
import { E2bHttpError } from "./e2b-http-error.js";
import { E2bNetworkSchema, e2bPolicy } from "./e2b-network.js";
import { CreateSandboxRequestSchema, MAX_TIMEOUT_MS, type Sandbox } from "@stasis/protocol";
import { ApiError } from "../errors/api-error.js";
import { clientGone, readBody } from "../http/validation.js";
import { listCursor, type SandboxService } from "../services/sandbox-service.js";
import type { TemplateStore } from "../templates/template-store.js";
import type { PreviewService } from "../services/preview-service.js";
import type { E2bAuth } from "./e2b-auth.js";
import { CLIENT_ID, e2bState, isE2bPaused, isE2bVisible } from "./e2b-sandbox.js";
import type { E2bStore } from "./e2b-store.js";
import { ENVD_VERSION } from "./envd.js";
import type { E2bMetricsHistory, MetricSample } from "./metrics-history.js";

/** The template id of E2B's code interpreter SDK. */
const E2B_CODE_INTERPRETER = "code-interpreter-v1";

export interface ControlPlaneDeps {
  sandboxes: SandboxService;
  templates: TemplateStore;
  store: E2bStore;
  auth: E2bAuth;
  history: E2bMetricsHistory;
  /** Preview URLs (getHost): absent where the daemon serves none. */
  preview?: PreviewService;
}

export { E2bHttpError };

const MAX_TIMEOUT_S = MAX_TIMEOUT_MS / 1000;
const timeoutSeconds = z.number().int().min(1).max(MAX_TIMEOUT_S);

const CreateBody = z.looseObject({
  templateID: z.string().min(1).max(256),
  timeout: timeoutSeconds.optional(),
  metadata: z.record(z.string(), z.string()).nullish(),
  envVars: z.record(z.string(), z.string()).nullish(),
  autoPause: z.boolean().nullish(),
  autoPauseMemory: z.boolean().nullish(),
  autoResume: z.union([z.boolean(), z.looseObject({ enabled: z.boolean() })]).nullish(),
  secure: z.boolean().nullish(),
  allow_internet_access: z.boolean().nullish(),
  network: E2bNetworkSchema.nullish(),
  mcp: z.unknown().optional(),
  iam: z.unknown().optional(),
  volumeMounts: z.array(z.unknown()).nullish(),
});
const ConnectBody = z.looseObject({ timeout: timeoutSeconds.nullish(), memory: z.boolean().nullish(), autoPause: z.boolean().nullish() });
const TimeoutBody = z.looseObject({ timeout: timeoutSeconds });
const RefreshBody = z.looseObject({ duration: z.number().int().min(0).max(MAX_TIMEOUT_S).nullish() });
const PauseBody = z.looseObject({ memory: z.boolean().nullish() });
const ForkBody = z.looseObject({ timeout: timeoutSeconds.nullish(), count: z.number().int().min(1).max(16).nullish() });
const ListQuery = z.object({
  metadata: z.string().max(8192).optional(),
  state: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  nextToken: z.string().max(256).optional(),
  template: z.string().max(256).optional(),
  startedAfter: z.iso.datetime({ offset: true }).optional(),
  order: z.enum(["asc", "desc"]).optional(),
});
const unixSeconds = z.coerce.number().int().min(0).max(1e11);
const MetricsQuery = z.object({ start: unixSeconds.optional(), end: unixSeconds.optional() });

function unsupported(what: string): E2bHttpError {
  return new E2bHttpError(400, `${what} is not supported by Stasis yet (see "Coming from E2B" in the README)`);
}

async function body<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  const text = (await readBody(c, 1024 * 1024)).toString("utf8");
  let value: unknown = {};
  if (text.trim() !== "") {
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new E2bHttpError(400, `malformed JSON body: ${(err as Error).message}`);
    }
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new E2bHttpError(400, `invalid body: ${issue ? `${issue.path.join(".") || "(body)"}: ${issue.message}` : "rejected"}`);
  }
  return parsed.data;
}

/**
 * E2B's control plane (api.e2b.app) translated onto Stasis's sandbox service: one implementation of
 * sandboxes, two surfaces. Each handler answers what the published SDK expects, status codes included.
 */
export class ControlPlane {
  constructor(private readonly deps: ControlPlaneDeps) {}

  /** POST /sandboxes (SDK <= 2.50) and POST /v2/sandboxes (2.51 on). */
  async create(c: Context): Promise<Response> {
    const req = await body(c, CreateBody);
    const network = e2bPolicy(req.allow_internet_access, req.network);
    if (req.mcp !== undefined && req.mcp !== null) throw unsupported("MCP gateways");
    if (req.iam !== undefined && req.iam !== null) throw unsupported("IAM tokens");
    if (req.volumeMounts && req.volumeMounts.length > 0) throw unsupported("volumes");
    if (req.autoPauseMemory === false) throw unsupported("pausing without memory (keepMemory: false); Stasis always keeps memory");
    const autoResume = typeof req.autoResume === "object" && req.autoResume !== null ? req.autoResume.enabled : req.autoResume === true;
    const template = this.template(req.templateID);
    const params = CreateSandboxRequestSchema.safeParse({
      template,
      ...(req.timeout ? { timeoutMs: req.timeout * 1000 } : {}),
      env: req.envVars ?? {},
      metadata: req.metadata ?? {},
      // E2B kills a sandbox at its timeout unless asked to pause it; idle standby stays on (requests wake it).
      onTimeout: req.autoPause ? "standby" : "kill",
      network: network.policy,
    });
    if (!params.success) {
      const issue = params.error.issues[0];
      throw new E2bHttpError(400, `invalid sandbox: ${issue ? `${issue.path.join(".")}: ${issue.message}` : "rejected"}`);
    }
    const sandbox = await this.deps.sandboxes.create(params.data, { headerRules: network.rules, abandoned: clientGone(c) });
    if (autoResume) this.deps.store.setAutoResume(sandbox.id, true);
    // E2B's ports are public unless allowPublicTraffic is false (then the traffic access token opens them).
    if (req.network?.allowPublicTraffic !== false && sandbox.network?.address) await this.deps.preview?.set(sandbox.id, { public: true });
    return c.json(this.created(sandbox, req.templateID), 201);
  }

  /** POST /sandboxes/{id}/connect and /v2/...: resumes a paused sandbox; a timeout only ever extends. */
  async connect(c: Context): Promise<Response> {
    const id = c.req.param("id") ?? "";
    const req = await body(c, ConnectBody);
    if (req.memory === false) throw unsupported("resuming with a reboot (onResume: 'reboot')");
    const before = this.visible(id);
    const asleep = isE2bPaused(before);
    if (asleep) await this.deps.sandboxes.resume(id);
    if (req.timeout) this.extendTimeout(id, req.timeout * 1000);
    return c.json(this.created(this.deps.sandboxes.get(id)), asleep ? 201 : 200);
  }

  /** POST /sandboxes/{id}/resume (older SDKs): like connect, but only for a paused sandbox. */
  async resume(c: Context): Promise<Response> {
    const id = c.req.param("id") ?? "";
    const req = await body(c, ConnectBody);
    if (!isE2bPaused(this.visible(id))) throw new E2bHttpError(409, `sandbox ${id} is already running`);
    await this.deps.sandboxes.resume(id);
    if (req.timeout) this.deps.sandboxes.setTimeout(id, req.timeout * 1000);
    return c.json(this.created(this.deps.sandboxes.get(id)), 201);
  }

  /** PUT /sandboxes/{id}/network: replaces the egress settings; a field left out is cleared. */
  async updateNetwork(c: Context): Promise<Response> {
    const id = c.req.param("id") ?? "";
    this.visible(id);
    const req = await body(c, E2bNetworkSchema.extend({ allow_internet_access: z.boolean().nullish() }));
    const network = e2bPolicy(req.allow_internet_access, req);
    const internet = network.policy.internet ?? true;
    await this.deps.sandboxes.setNetwork(id, { internet, allowOut: network.policy.allowOut ?? [], denyOut: network.policy.denyOut ?? [] }, network.rules);
    return c.body(null, 204);
  }

  async kill(c: Context): Promise<Response> {
    const id = c.req.param("id") ?? "";
    await this.deps.sandboxes.delete(id).catch((err: unknown) => {
      if (err instanceof ApiError && err.code === "sandbox_not_found") throw new E2bHttpError(404, `sandbox ${id} not found`);
      throw err;
    });
    this.deps.store.forgetSandbox(id);
    return c.body(null, 204);
  }

  async get(c: Context): Promise<Response> {
    const sandbox = this.visible(c.req.param("id") ?? "");
    return c.json({ ...this.listed(sandbox), envdAccessToken: this.deps.auth.envdToken(sandbox.id), domain: this.deps.preview?.e2bDomain() ?? null });
  }

  /** GET /sandboxes (v1): running sandboxes. */
  async listV1(c: Context): Promise<Response> {
    const q = this.listQuery(c);
    const { items } = this.page({ ...q, state: "running", limit: 1000 });
    return c.json(items.map((s) => this.listed(s)));
  }

  /** GET /v2/sandboxes: filtered by metadata and state, paginated with the X-Next-Token header. */
  async listV2(c: Context): Promise<Response> {
    const q = this.listQuery(c);
    const { items, nextToken } = this.page(q);
    if (nextToken) c.header("X-Next-Token", nextToken);
    return c.json(items.map((s) => this.listed(s)));
  }

  async setTimeout(c: Context): Promise<Response> {
    const id = c.req.param("id") ?? "";
    const { timeout } = await body(c, TimeoutBody);
    this.visible(id);
    this.deps.sandboxes.setTimeout(id, timeout * 1000);
    return c.body(null, 204);
  }

  /** POST /sandboxes/{id}/refreshes (older SDKs' keep-alive): the sandbox lives `duration` s more. */
  async refresh(c: Context): Promise<Response> {
    const id = c.req.param("id") ?? "";
    const { duration } = await body(c, RefreshBody);
    this.visible(id);
    this.extendTimeout(id, (duration || 60) * 1000);
    return c.body(null, 204);
  }

  /** POST /sandboxes/{id}/pause: frozen in RAM (hibernated later by the standby policy), processes intact. */
  async pause(c: Context): Promise<Response> {
    const id = c.req.param("id") ?? "";
    const req = await body(c, PauseBody);
    if (req.memory === false) throw unsupported("pausing without memory (keepMemory: false); Stasis always keeps memory");
    const sandbox = this.visible(id);
    if (isE2bPaused(sandbox)) throw new E2bHttpError(409, `sandbox ${id} is already paused`);
    await this.deps.sandboxes.pause(id);
    return c.body(null, 204);
  }

  /**
   * GET /sandboxes/{id}/metrics?start=&end= (unix seconds): the samples taken in that window, oldest first
   * (one every 5 s, the last 30 minutes). Without a window and before the first sample, one reading taken now.
   */
  async metrics(c: Context): Promise<Response> {
    const id = c.req.param("id") ?? "";
    const sandbox = this.visible(id);
    const q = MetricsQuery.safeParse(c.req.query());
    if (!q.success) throw new E2bHttpError(400, `invalid query: ${q.error.issues[0]?.path.join(".") ?? ""}: ${q.error.issues[0]?.message ?? "rejected"}`);
    const { start, end } = q.data;
    if (start !== undefined && end !== undefined && start > end) throw new E2bHttpError(400, "start must not be after end");
    let samples = this.deps.history.window(id, start, end);
    if (samples.length === 0 && start === undefined && end === undefined) samples = [this.deps.history.current(sandbox, Date.now())];
    return c.json(samples.map(toE2bMetric));
  }

  /** POST /sandboxes/{id}/fork (2.51): Stasis's fork, memory and processes included. */
  async fork(c: Context): Promise<Response> {
    const id = c.req.param("id") ?? "";
    const req = await body(c, ForkBody);
    this.visible(id);
    const clones = await this.deps.sandboxes.fork(id, req.count ?? 1);
    const out = clones.map((clone) => {
      if (req.timeout) this.deps.sandboxes.setTimeout(clone.id, req.timeout * 1000);
      return { sandbox: this.created(this.deps.sandboxes.get(clone.id)) };
    });
    return c.json(out, 201);
  }

  /**
   * E2B names its default template `base`; any other name is a Stasis template of that name, except E2B's
   * code interpreter (`code-interpreter-v1`, @e2b/code-interpreter's default), which is Stasis's built-in
   * `code-interpreter` (its server speaks the same wire protocol on the same port).
   */
  private template(templateID: string): string {
    let name = templateID.replace(/:default$/, "");
    if (name === E2B_CODE_INTERPRETER && !this.deps.templates.exists(name)) name = "code-interpreter";
    if (/^[a-z0-9][a-z0-9._-]{0,62}(:[1-9][0-9]{0,8})?$/.test(name) && this.deps.templates.exists(name)) return name;
    const known = [...new Set(this.deps.templates.list().map((t) => `'${t.name}'`))].join(", ");
    throw new E2bHttpError(404, `template '${templateID}' not found: Stasis has ${known || "no templates"} (build one with \`stasis template build\`)`);
  }

  private visible(id: string): Sandbox {
    let sandbox: Sandbox;
    try {
      sandbox = this.deps.sandboxes.get(id);
    } catch (err) {
      if (err instanceof ApiError && err.code === "sandbox_not_found") throw new E2bHttpError(404, `sandbox ${id} not found`);
      throw err;
    }
    if (!isE2bVisible(sandbox)) throw new E2bHttpError(404, `sandbox ${id} not found (${sandbox.state}${sandbox.stateReason ? `: ${sandbox.stateReason}` : ""})`);
    return sandbox;
  }

  private extendTimeout(id: string, timeoutMs: number): void {
    const end = this.deps.sandboxes.expiryIfWoken(id);
    if (end === null || end < Date.now() + timeoutMs) this.deps.sandboxes.setTimeout(id, timeoutMs);
  }

  /** The create/connect reply. */
  private created(s: Sandbox, templateID = s.template): object {
    return {
      templateID,
      sandboxID: s.id,
      alias: s.template,
      clientID: CLIENT_ID,
      envdVersion: ENVD_VERSION,
      envdAccessToken: this.deps.auth.envdToken(s.id),
      trafficAccessToken: this.trafficToken(s.id),
      domain: this.deps.preview?.e2bDomain() ?? null,
    };
  }

  /** The preview token of a sandbox whose ports are private (E2B's trafficAccessToken); null otherwise. */
  private trafficToken(id: string): string | null {
    try {
      const p = this.deps.preview?.get(id);
      return p && !p.public ? p.token : null;
    } catch {
      return null;
    }
  }

  /** A sandbox as E2B lists and describes it. */
  private listed(s: Sandbox): object {
    const end = this.deps.sandboxes.expiryIfWoken(s.id) ?? Date.parse(s.createdAt) + s.timeoutMs;
    return {
      templateID: s.template,
      alias: s.template,
      sandboxID: s.id,
      clientID: CLIENT_ID,
      startedAt: s.createdAt,
      endAt: new Date(end).toISOString(),
      cpuCount: Math.max(1, Math.round(s.cpu)),
      memoryMB: s.memoryMiB,
      diskSizeMB: s.diskMiB,
      metadata: s.metadata,
      state: e2bState(s),
      envdVersion: ENVD_VERSION,
      lifecycle: { onTimeout: s.onTimeout === "standby" ? "pause" : "kill", autoResume: this.deps.store.autoResume(s.id) },
      volumeMounts: [],
    };
  }

  private listQuery(c: Context): z.output<typeof ListQuery> {
    const parsed = ListQuery.safeParse(c.req.query());
    if (!parsed.success) throw new E2bHttpError(400, `invalid query: ${parsed.error.issues[0]?.message ?? "rejected"}`);
    if (parsed.data.order === "asc") throw unsupported("order=asc (lists are newest first)");
    return parsed.data;
  }

  /** One page of E2B-visible sandboxes, walking Stasis's own list (newest first) as far as needed. */
  private page(q: z.output<typeof ListQuery>): { items: Sandbox[]; nextToken: string | null } {
    const states = new Set((q.state ?? "running,paused").split(",").map((s) => s.trim()).filter(Boolean));
    for (const s of states) if (s !== "running" && s !== "paused") throw new E2bHttpError(400, `unknown state '${s}': use running, paused`);
    const startedAfter = q.startedAfter ? Date.parse(q.startedAfter) : null;
    const items: Sandbox[] = [];
    let cursor = q.nextToken;
    for (;;) {
      const page = this.deps.sandboxes.list({ limit: 200, ...(q.metadata ? { metadata: q.metadata } : {}), ...(cursor ? { cursor } : {}) });
      for (const s of page.sandboxes) {
        if (!isE2bVisible(s) || !states.has(e2bState(s))) continue;
        if (q.template && s.template !== q.template.replace(/:default$/, "")) continue;
        // "After" includes the instant itself, as E2B's filter does.
        if (startedAfter !== null && Date.parse(s.createdAt) < startedAfter) continue;
        // A full page is the last one unless one more sandbox matches: only then is there a next page.
        if (items.length === q.limit) return { items, nextToken: listCursor(items[items.length - 1]!) };
        items.push(s);
      }
      if (!page.nextCursor) return { items, nextToken: null };
      cursor = page.nextCursor;
    }
  }
}

function toE2bMetric(s: MetricSample): object {
  const { at, ...figures } = s;
  return { timestamp: new Date(at).toISOString(), timestampUnix: Math.floor(at / 1000), ...figures, memCache: 0 };
}
