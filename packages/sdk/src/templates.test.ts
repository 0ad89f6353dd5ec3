import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TemplateBuildEvent } from "@stasis/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  InvalidRequestError,
  InvalidTemplateError,
  PayloadTooLargeError,
  ProtocolError,
  RuntimeUnavailableError,
  TemplateBuildError,
  TemplateInUseError,
  TemplateNotFoundError,
} from "./errors.js";
import { Templates } from "./templates.js";
import { sendJson, sendNdjson, startFakeDaemon, templateResource, type FakeDaemon } from "./test-support/fake-daemon.js";
import { tarEntries } from "./test-support/tar.js";

const built = templateResource("py", 2);
const step = (n: number, instruction: string, cached = false) => ({ type: "step", step: n, total: 3, instruction, cached });
const done = { type: "done", template: built, durationMs: 1500, cachedSteps: 1, builtSteps: 2 };
const failure = (code: string, extra: Record<string, unknown> = {}) => ({ type: "error", code, message: `${code} happened`, step: null, instruction: null, line: null, ...extra });

/** What each build name makes the fake daemon stream back. */
const scenarios: Record<string, (string | object)[]> = {
  py: [
    step(1, "FROM debian:bookworm", true),
    // A line split across two chunks.
    '{"type":"step","step":2,"total":3,"instr',
    'uction":"RUN pip install x","cached":false}\n',
    { type: "log", step: 2, data: "Collecting x" },
    { type: "progress", message: "committing layer" },
    step(3, "COPY . /app"),
    done,
  ],
  failing: [
    step(1, "FROM debian:bookworm", true),
    step(2, "RUN false"),
    { type: "log", step: 2, data: "oops" },
    failure("template_build_failed", { message: "step 2/3 RUN false: exit code 1", step: 2, instruction: "RUN false", line: 4 }),
  ],
  invalid: [failure("invalid_template", { message: "line 7: unknown instruction FOO", line: 7 })],
  noruntime: [step(1, "FROM debian:bookworm"), failure("runtime_unavailable", { step: 1, instruction: "FROM debian:bookworm" })],
  truncated: [step(1, "FROM debian:bookworm"), { type: "log", step: 1, data: "and then silence" }],
  garbage: [step(1, "FROM debian:bookworm"), '{"type":"step","step":"two"}\n'],
};

describe("Templates", () => {
  let daemon: FakeDaemon;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "stasis-templates-"));
    daemon = await startFakeDaemon(async (req, res) => {
      const path = req.url.pathname;
      const name = req.url.searchParams.get("name") ?? "";
      if (path === "/v1/templates/build" && name === "rejected") {
        return sendJson(res, 422, { error: { code: "invalid_template", message: "no Dockerfile in the context", retryable: false } });
      }
      if (path === "/v1/templates/build" || path === "/v1/templates/import") {
        const lines = scenarios[name] ?? [done];
        return sendNdjson(res, lines, { "x-request-id": `req-${name}` });
      }
      if (path === "/v1/templates" && req.method === "GET") return sendJson(res, 200, { templates: [built, templateResource("py", 1, { latest: false })] });
      if (path === "/v1/templates/broken") return sendJson(res, 200, { ...built, version: "two" });
      if (path === "/v1/templates/py:2" || path === "/v1/templates/py%3A2") {
        if (req.method === "GET") return sendJson(res, 200, built);
        if (req.method === "PUT") {
          const changes = JSON.parse(req.body.toString()) as { pool?: number; resources?: object };
          return sendJson(res, 200, { ...built, pool: changes.pool ?? 0, resources: { ...(built.resources as object), ...changes.resources } });
        }
        if (req.method === "DELETE") return sendJson(res, 409, { error: { code: "template_in_use", message: "2 sandboxes use py:2", retryable: false } });
      }
      if (path === "/v1/templates/old" && req.method === "DELETE") return res.writeHead(204).end();
      sendJson(res, 404, { error: { code: "template_not_found", message: `no template ${decodeURIComponent(path.split("/").pop() ?? "")}`, retryable: false } });
    });
  });
  afterAll(async () => {
    await daemon.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const conn = () => ({ apiUrl: daemon.url, apiKey: "k" });

  function context(files: Record<string, string>): string {
    const root = mkdtempSync(join(dir, "ctx-"));
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(join(root, path, ".."), { recursive: true });
      writeFileSync(join(root, path), content);
    }
    return root;
  }

  describe("build", () => {
    it("sends the context as a tar, streams the events and resolves with the template", async () => {
      const ctx = context({ Dockerfile: "FROM debian:bookworm\n", ".dockerignore": "secrets\n", "app.py": "print(1)\n", "secrets/key": "s3cret" });
      const events: TemplateBuildEvent[] = [];
      const template = await Templates.build({ context: ctx, name: "py", noCache: true, snapshot: false, cpu: 2, memoryMiB: 1024, pool: 1, onEvent: (e) => events.push(e), ...conn() });
      expect(template).toEqual(built);
      expect(events.map((e) => e.type)).toEqual(["step", "step", "log", "progress", "step", "done"]);
      expect(events[1]).toEqual({ type: "step", step: 2, total: 3, instruction: "RUN pip install x", cached: false });
      const req = daemon.requests.at(-1)!;
      expect(req.method).toBe("POST");
      expect(req.url.pathname).toBe("/v1/templates/build");
      expect(Object.fromEntries(req.url.searchParams)).toEqual({ name: "py", noCache: "true", snapshot: "false", cpu: "2", memoryMiB: "1024", pool: "1" });
      expect(req.headers["content-type"]).toBe("application/x-tar");
      expect(req.headers.authorization).toBe("Bearer k");
      const entries = await tarEntries(req.body);
      expect(entries.map((e) => e.path)).toEqual([".dockerignore", "Dockerfile", "app.py"]);
      expect(entries.find((e) => e.path === "app.py")?.content).toBe("print(1)\n");
    });

    it("names the build file in the query and sends it even when ignored", async () => {
      const ctx = context({ "ci/Dockerfile.ci": "FROM base\n", ".stasisignore": "ci\n", "main.c": "" });
      await Templates.build({ context: ctx, name: "c", file: "./ci/Dockerfile.ci", ...conn() });
      const req = daemon.requests.at(-1)!;
      expect(req.url.searchParams.get("file")).toBe("ci/Dockerfile.ci");
      expect((await tarEntries(req.body)).map((e) => e.path)).toEqual([".stasisignore", "ci/", "ci/Dockerfile.ci", "main.c"]);
    });

    it("rejects a failed step with a TemplateBuildError naming the step and line", async () => {
      const events: string[] = [];
      const err = await Templates.build({ context: context({ Dockerfile: "" }), name: "failing", onEvent: (e) => events.push(e.type), ...conn() }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TemplateBuildError);
      expect(err).toMatchObject({
        name: "TemplateBuildError",
        code: "template_build_failed",
        status: 422,
        requestId: "req-failing",
        message: "step 2/3 RUN false: exit code 1",
        step: 2,
        instruction: "RUN false",
        line: 4,
      });
      // The error event reaches onEvent too (the CLI prints it with --json).
      expect(events).toEqual(["step", "step", "log", "error"]);
    });

    it("rejects an invalid spec with InvalidTemplateError, also a TemplateBuildError", async () => {
      const err = await Templates.build({ context: context({ Dockerfile: "" }), name: "invalid", ...conn() }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidTemplateError);
      expect(err).toBeInstanceOf(TemplateBuildError);
      expect(err).toMatchObject({ code: "invalid_template", line: 7, step: null, instruction: null });
    });

    it("maps any other code in an error event to its class, keeping where the build was in details", async () => {
      const err = await Templates.build({ context: context({ Dockerfile: "" }), name: "noruntime", ...conn() }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RuntimeUnavailableError);
      expect(err).toMatchObject({ code: "runtime_unavailable", status: 503, details: { step: 1, instruction: "FROM debian:bookworm", line: null } });
    });

    it("rejects an HTTP error before the stream with its typed error", async () => {
      const err = await Templates.build({ context: context({}), name: "rejected", ...conn() }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidTemplateError);
      expect(err).toMatchObject({ message: "no Dockerfile in the context", line: null });
    });

    it("rejects a stream that ends without done or error", async () => {
      const events: string[] = [];
      const err = await Templates.build({ context: context({}), name: "truncated", onEvent: (e) => events.push(e.type), ...conn() }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProtocolError);
      expect((err as Error).message).toMatch(/ended without a done or error event/);
      expect(events).toEqual(["step", "log"]);
    });

    it("rejects an event that breaks the protocol", async () => {
      await expect(Templates.build({ context: context({}), name: "garbage", ...conn() })).rejects.toBeInstanceOf(ProtocolError);
    });

    it("passes an error thrown by onEvent through as it is", async () => {
      const mine = new Error("stop here");
      const err = await Templates.build({
        context: context({}),
        name: "py",
        onEvent: () => {
          throw mine;
        },
        ...conn(),
      }).catch((e: unknown) => e);
      expect(err).toBe(mine);
    });

    it("rejects with the caller's reason when its signal aborts", async () => {
      const controller = new AbortController();
      const build = Templates.build({ context: context({}), name: "py", signal: controller.signal, onEvent: () => controller.abort(new Error("caller gave up")), ...conn() });
      await expect(build).rejects.toThrow("caller gave up");
    });

    it("checks the request before reading or sending anything", async () => {
      const before = daemon.requests.length;
      await expect(Templates.build({ context: context({}), name: "Not_Valid", ...conn() })).rejects.toBeInstanceOf(InvalidRequestError);
      await expect(Templates.build({ context: context({}), name: "py", cpu: 1000, ...conn() })).rejects.toThrow(/cpu/);
      await expect(Templates.build({ context: join(dir, "missing"), name: "py", ...conn() })).rejects.toThrow(/not a directory/);
      await expect(Templates.build({ context: context({}), name: "py", file: "../Dockerfile", ...conn() })).rejects.toThrow(/inside the build context/);
      await expect(Templates.build({ context: context({}), name: "py", file: "a/../..", ...conn() })).rejects.toThrow(/inside the build context/);
      expect(daemon.requests.length).toBe(before);
    });

    it("refuses a context over 4 GiB (the daemon's default limit) before sending it", async () => {
      const ctx = context({ ".dockerignore": "# nothing left out\n" });
      // Sparse: 4 GiB and a byte in size, no disk used.
      writeFileSync(join(ctx, "huge.bin"), "");
      truncateSync(join(ctx, "huge.bin"), 4 * 1024 ** 3 + 1);
      const before = daemon.requests.length;
      const err = await Templates.build({ context: ctx, name: "py", ...conn() }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PayloadTooLargeError);
      expect((err as Error).message).toMatch(/is 4(\.0)? GiB after \.dockerignore, over the 4(\.0)? GiB limit/);
      expect(daemon.requests.length).toBe(before);
    });
  });

  describe("import", () => {
    it("streams a docker-save tarball as it is", async () => {
      const archive = join(dir, "image.tar");
      writeFileSync(archive, "pretend this is a tar");
      const events: string[] = [];
      const template = await Templates.import({ archive, name: "py", image: "python:3.12", diskMiB: 8192, onEvent: (e) => events.push(e.type), ...conn() });
      expect(template).toEqual(built);
      expect(events).toEqual(["step", "step", "log", "progress", "step", "done"]);
      const req = daemon.requests.at(-1)!;
      expect(req.url.pathname).toBe("/v1/templates/import");
      expect(Object.fromEntries(req.url.searchParams)).toEqual({ name: "py", image: "python:3.12", diskMiB: "8192" });
      expect(req.headers["content-type"]).toBe("application/x-tar");
      expect(req.headers["content-length"]).toBe(String("pretend this is a tar".length));
      expect(req.body.toString()).toBe("pretend this is a tar");
    });

    it("tars an OCI layout directory on the fly", async () => {
      const layout = context({ "oci-layout": '{"imageLayoutVersion":"1.0.0"}', "index.json": "{}", "blobs/sha256/abc": "layer" });
      await Templates.import({ archive: layout, name: "oci", ...conn() });
      const entries = await tarEntries(daemon.requests.at(-1)!.body);
      expect(entries.map((e) => e.path)).toEqual(["blobs/", "blobs/sha256/", "blobs/sha256/abc", "index.json", "oci-layout"]);
    });

    it("rejects a failed import with its typed error, and a directory that is no image", async () => {
      const archive = join(dir, "bad.tar");
      writeFileSync(archive, "x");
      await expect(Templates.import({ archive, name: "invalid", ...conn() })).rejects.toBeInstanceOf(InvalidTemplateError);
      await expect(Templates.import({ archive: context({ "a.txt": "" }), name: "x", ...conn() })).rejects.toThrow(/not an OCI image layout/);
      await expect(Templates.import({ archive: join(dir, "nope.tar"), name: "x", ...conn() })).rejects.toBeInstanceOf(InvalidRequestError);
    });
  });

  describe("list, get, update, delete", () => {
    it("lists every version", async () => {
      const list = await Templates.list(conn());
      expect(list.map((t) => t.ref)).toEqual(["py:2", "py:1"]);
      expect(daemon.requests.at(-1)).toMatchObject({ method: "GET" });
    });

    it("gets a version by name:version", async () => {
      expect(await Templates.get("py:2", conn())).toEqual(built);
      const err = await Templates.get("nope", conn()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TemplateNotFoundError);
      expect(err).toMatchObject({ code: "template_not_found", status: 404, message: "no template nope" });
    });

    it("rejects a template that breaks the protocol", async () => {
      await expect(Templates.get("broken", conn())).rejects.toBeInstanceOf(ProtocolError);
    });

    it("updates pool and resources with PUT", async () => {
      const updated = await Templates.update("py:2", { pool: 3, resources: { cpu: 2 } }, conn());
      expect(updated).toMatchObject({ pool: 3, resources: { cpu: 2, memoryMiB: 512, diskMiB: 4096 } });
      const req = daemon.requests.at(-1)!;
      expect(req.method).toBe("PUT");
      expect(JSON.parse(req.body.toString())).toEqual({ pool: 3, resources: { cpu: 2 } });
    });

    it("deletes, with typed errors for a template in use or missing", async () => {
      await Templates.delete("old", conn());
      expect(daemon.requests.at(-1)).toMatchObject({ method: "DELETE" });
      await expect(Templates.delete("py:2", conn())).rejects.toBeInstanceOf(TemplateInUseError);
      await expect(Templates.delete("gone", conn())).rejects.toBeInstanceOf(TemplateNotFoundError);
    });
  });
});
