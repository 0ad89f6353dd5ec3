import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NotFoundError, ProtocolError, SecretNotFoundError } from "./errors.js";
import { Secrets } from "./secrets.js";
import { sendJson, startFakeDaemon, type FakeDaemon } from "./test-support/fake-daemon.js";

const secret = { name: "OPENAI_API_KEY", hosts: ["api.openai.com"], createdAt: "2025-01-01T00:00:00.000Z", updatedAt: "2025-01-02T00:00:00.000Z" };

describe("Secrets", () => {
  let daemon: FakeDaemon;
  let leak = false;
  beforeAll(async () => {
    daemon = await startFakeDaemon((req, res) => {
      const path = req.url.pathname;
      if (path === "/v1/secrets" && req.method === "POST") return sendJson(res, 200, leak ? { ...secret, createdAt: "yesterday" } : secret);
      if (path === "/v1/secrets" && req.method === "GET") return sendJson(res, 200, { secrets: [secret] });
      if (path === "/v1/secrets/OPENAI_API_KEY" && req.method === "GET") return sendJson(res, 200, secret);
      if (path === "/v1/secrets/OPENAI_API_KEY" && req.method === "DELETE") return res.writeHead(204).end();
      return sendJson(res, 404, { error: { code: "secret_not_found", message: `no secret '${path.split("/").pop()}'`, retryable: false } });
    });
  });
  afterAll(() => daemon.close());
  const conn = () => ({ apiUrl: daemon.url, apiKey: "k" });

  it("sets a secret with its value and hosts in the body, connection settings out of it", async () => {
    expect(await Secrets.set("OPENAI_API_KEY", { value: "sk-1", hosts: ["api.openai.com"], ...conn() })).toEqual(secret);
    const req = daemon.requests.at(-1)!;
    expect(req).toMatchObject({ method: "POST" });
    expect(req.url.pathname).toBe("/v1/secrets");
    expect(req.headers.authorization).toBe("Bearer k");
    expect(JSON.parse(req.body.toString())).toEqual({ name: "OPENAI_API_KEY", value: "sk-1", hosts: ["api.openai.com"] });
  });

  it("lists, gets and deletes by name", async () => {
    expect(await Secrets.list(conn())).toEqual([secret]);
    expect(await Secrets.get("OPENAI_API_KEY", conn())).toEqual(secret);
    await Secrets.delete("OPENAI_API_KEY", conn());
    expect(daemon.requests.at(-1)).toMatchObject({ method: "DELETE" });
    expect(daemon.requests.at(-1)!.url.pathname).toBe("/v1/secrets/OPENAI_API_KEY");
  });

  it("throws SecretNotFoundError for a secret that is not there", async () => {
    const err = await Secrets.delete("NOPE", conn()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SecretNotFoundError);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err).toMatchObject({ code: "secret_not_found", status: 404 });
  });

  it("rejects a reply that does not match the protocol", async () => {
    leak = true;
    try {
      await expect(Secrets.set("OPENAI_API_KEY", { value: "v", hosts: ["a.example"], ...conn() })).rejects.toBeInstanceOf(ProtocolError);
    } finally {
      leak = false;
    }
  });
});
