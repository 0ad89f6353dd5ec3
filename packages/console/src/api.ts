import type { CommandEvent, DaemonInfo, DoctorReport, Template, E2bKey, ProcessInfo as Process, Secret, FileInfo, FileList, PortList, Sandbox, SandboxList, SandboxMetrics, SandboxMetricsHistory, SignedPreviewUrl, TemplateBuildEvent, TemplateList } from "@stasis/protocol";

/** The API key lives in this tab's session storage only: closing the tab logs out. */
const KEY = "stasis.key";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function savedKey(): string | null {
  return sessionStorage.getItem(KEY);
}
export function saveKey(key: string | null): void {
  if (key === null) sessionStorage.removeItem(KEY);
  else sessionStorage.setItem(KEY, key);
}

async function call(method: string, path: string, init: { json?: unknown; body?: BodyInit; key?: string; signal?: AbortSignal } = {}): Promise<Response> {
  const headers: Record<string, string> = { authorization: `Bearer ${init.key ?? savedKey() ?? ""}` };
  let body = init.body;
  if (init.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(init.json);
  }
  const res = await fetch(path, { method, headers, body, ...(init.signal ? { signal: init.signal } : {}) });
  if (!res.ok) {
    const text = await res.text();
    let code = "http_" + res.status;
    let message = text || res.statusText;
    try {
      const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
      code = parsed.error?.code ?? code;
      message = parsed.error?.message ?? message;
    } catch {
      // not JSON: keep the text
    }
    throw new ApiError(res.status, code, message);
  }
  return res;
}

async function json<T>(method: string, path: string, init: { json?: unknown; body?: BodyInit; key?: string } = {}): Promise<T> {
  return (await (await call(method, path, init)).json()) as T;
}

const sbx = (id: string): string => `/v1/sandboxes/${encodeURIComponent(id)}`;
const q = (params: Record<string, string>): string => new URLSearchParams(params).toString();

export type SandboxAction = "pause" | "hibernate" | "resume";

export const api = {
  info: (key?: string) => json<DaemonInfo>("GET", "/v1/info", key === undefined ? {} : { key }),
  list: (state?: string) => json<SandboxList>("GET", `/v1/sandboxes?${q(state ? { state, limit: "1000" } : { limit: "1000" })}`),
  get: (id: string) => json<Sandbox>("GET", sbx(id)),
  create: (body: { template?: string; runtime?: string; cpu?: number; memoryMiB?: number }) => json<Sandbox>("POST", "/v1/sandboxes", { json: body }),
  action: (id: string, action: SandboxAction) => json<Sandbox>("POST", `${sbx(id)}/${action}`),
  fork: (id: string) => json<{ sandboxes: Sandbox[] }>("POST", `${sbx(id)}/fork`, { json: { count: 1 } }),
  kill: async (id: string) => void (await call("DELETE", sbx(id))),
  metrics: (id: string) => json<SandboxMetrics>("GET", `${sbx(id)}/metrics`),
  metricsHistory: (id: string) => json<SandboxMetricsHistory>("GET", `${sbx(id)}/metrics/history`),
  listFiles: (id: string, path: string) => json<FileList>("GET", `${sbx(id)}/files/list?${q({ path, depth: "1" })}`),
  readFile: async (id: string, path: string) => (await call("GET", `${sbx(id)}/files?${q({ path })}`)).blob(),
  writeFile: (id: string, path: string, body: Blob | string) => json<FileInfo>("PUT", `${sbx(id)}/files?${q({ path })}`, { body }),
  ports: (id: string) => json<PortList>("GET", `${sbx(id)}/ports`),
  signUrl: (id: string, port: number) => json<SignedPreviewUrl>("POST", `${sbx(id)}/preview/sign`, { json: { port, expiresInS: 3600 } }),
  templates: () => json<TemplateList>("GET", "/v1/templates"),
  setPool: (ref: string, pool: number) => json<Template>("PUT", `/v1/templates/${encodeURIComponent(ref)}`, { json: { pool } }),
  doctor: () => json<DoctorReport>("GET", "/v1/doctor"),
  e2bKeys: () => json<{ keys: E2bKey[] }>("GET", "/v1/e2b/keys"),
  secrets: () => json<{ secrets: Secret[] }>("GET", "/v1/secrets"),
  /** Streams a template build's NDJSON events to onEvent until the stream ends. */
  buildTemplate: async (name: string, tar: Blob, onEvent: (e: TemplateBuildEvent) => void) => ndjson(await call("POST", `/v1/templates/build?${q({ name })}`, { body: tar }), onEvent),
  processes: (id: string) => json<{ processes: Process[] }>("GET", `${sbx(id)}/processes`),
  killProcess: async (id: string, pid: number) => void (await call("DELETE", `${sbx(id)}/processes/${pid}`)),
  /** A process's recent output, then its live output, until it exits or `signal` aborts. */
  attach: async (id: string, pid: number, onEvent: (e: CommandEvent) => void, signal: AbortSignal) => ndjson(await call("GET", `${sbx(id)}/processes/${pid}/stream`, { signal }), onEvent),
};

async function ndjson<T>(res: Response, onEvent: (e: T) => void): Promise<void> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += value;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) if (line.trim()) onEvent(JSON.parse(line) as T);
  }
}

/** The terminal WebSocket: browsers cannot set headers, so the key goes as a subprotocol. */
/** A new terminal, or (with `pid`) the same one again, without replaying what the screen already shows. */
export function ptySocket(id: string, cols: number, rows: number, pid?: number): WebSocket {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const again: Record<string, string> = pid === undefined ? {} : { pid: String(pid), replay: "false" };
  const url = `${scheme}//${location.host}${sbx(id)}/pty?${q({ cols: String(cols), rows: String(rows), ...again })}`;
  return new WebSocket(url, [`stasis.key.${savedKey() ?? ""}`]);
}
