import { PassThrough, Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { parseCommandLine } from "./parse.js";
import { run } from "./run.js";
import { UsageError } from "./usage-error.js";

const secret = { name: "OPENAI_API_KEY", hosts: ["api.openai.com", "*.openai.azure.com"], createdAt: "2025-01-01T00:00:00.000Z", updatedAt: "2025-01-02T03:04:05.678Z" };
const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

function capture(stdinText = "") {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: string[] = [];
  const err: string[] = [];
  stdout.on("data", (d: Buffer) => out.push(d.toString()));
  stderr.on("data", (d: Buffer) => err.push(d.toString()));
  return { io: { stdout, stderr, stdin: Readable.from([stdinText]) }, out: () => out.join(""), err: () => err.join("") };
}

const command = (line: string) => parseCommandLine(line.split(" ")).command;
function usageError(line: string): UsageError {
  try {
    parseCommandLine(line.split(" "));
  } catch (err) {
    if (err instanceof UsageError) return err;
    throw err;
  }
  throw new Error(`expected a usage error for ${line}`);
}

describe("stasis secret", () => {
  it("parses set, ls and rm", () => {
    expect(command("secret set OPENAI_API_KEY --host api.openai.com --host *.openai.azure.com --value-stdin")).toEqual({
      kind: "secret.set",
      name: "OPENAI_API_KEY",
      hosts: ["api.openai.com", "*.openai.azure.com"],
      value: { stdin: true },
    });
    expect(command("secret set A --host a.example --value v1")).toMatchObject({ value: { text: "v1" } });
    expect(command("secret ls")).toEqual({ kind: "secret.list" });
    expect(command("secret list")).toEqual({ kind: "secret.list" });
    expect(command("secret rm A B")).toEqual({ kind: "secret.rm", names: ["A", "B"] });
    expect(usageError("secret set A --host a.example").message).toMatch(/exactly one of --value-stdin or --value/);
    expect(usageError("secret set A --host a.example --value v --value-stdin").message).toMatch(/exactly one/);
    expect(usageError("secret set A --value v").message).toMatch(/--host/);
    expect(usageError("secret set A --host 10.0.0.1 --value v").message).toMatch(/not a domain name/);
    expect(usageError("secret set 9A --host a.example --value v").topic).toEqual(["secret", "set"]);
    expect(usageError("secret rm").topic).toEqual(["secret", "rm"]);
    expect(usageError("secret").message).toBe("missing subcommand for 'secret'");
  });

  describe("against a daemon", () => {
    let calls: { method: string; path: string; body: string | undefined }[];
    beforeEach(() => {
      calls = [];
      vi.stubGlobal("fetch", (input: string | URL, init?: RequestInit) => {
        const url = new URL(String(input));
        const method = init?.method ?? "GET";
        calls.push({ method, path: url.pathname, body: typeof init?.body === "string" ? init.body : undefined });
        if (url.pathname === "/v1/secrets" && method === "POST") return Promise.resolve(json(200, secret));
        if (url.pathname === "/v1/secrets" && method === "GET") return Promise.resolve(json(200, { secrets: [secret] }));
        if (url.pathname === "/v1/secrets/OPENAI_API_KEY" && method === "DELETE") return Promise.resolve(new Response(null, { status: 204 }));
        return Promise.resolve(json(404, { error: { code: "secret_not_found", message: `no secret '${url.pathname.split("/").pop()}'`, retryable: false } }));
      });
    });
    afterEach(() => vi.unstubAllGlobals());
    const env = { STASIS_API_URL: "http://daemon.test", STASIS_API_KEY: "k" };

    it("sets a secret from stdin without its trailing newline, printing no value", async () => {
      const c = capture("sk-from-stdin\n");
      expect(await run(["secret", "set", "OPENAI_API_KEY", "--host", "api.openai.com", "--value-stdin"], c.io, env)).toBe(0);
      expect(JSON.parse(calls.at(-1)!.body!)).toEqual({ name: "OPENAI_API_KEY", value: "sk-from-stdin", hosts: ["api.openai.com"] });
      expect(c.out()).toBe("");
      expect(c.err()).toBe("secret OPENAI_API_KEY set for api.openai.com, *.openai.azure.com\n");
      expect(c.err()).not.toContain("sk-from-stdin");
    });

    it("lists secrets as a table, or JSON with --json", async () => {
      const c = capture();
      expect(await run(["secret", "ls"], c.io, env)).toBe(0);
      expect(c.out()).toBe("NAME            HOSTS                              UPDATED\nOPENAI_API_KEY  api.openai.com,*.openai.azure.com  2025-01-02 03:04:05Z\n");
      const m = capture();
      expect(await run(["secret", "ls", "--json"], m.io, env)).toBe(0);
      expect(JSON.parse(m.out())).toEqual([secret]);
    });

    it("deletes each name, reporting the missing ones and failing", async () => {
      const c = capture();
      expect(await run(["secret", "rm", "OPENAI_API_KEY", "NOPE"], c.io, env)).toBe(1);
      expect(calls.map((x) => `${x.method} ${x.path}`)).toEqual(["DELETE /v1/secrets/OPENAI_API_KEY", "DELETE /v1/secrets/NOPE"]);
      expect(c.err()).toBe("deleted OPENAI_API_KEY\nerror [secret_not_found]: no secret 'NOPE'\n");
    });
  });
});
