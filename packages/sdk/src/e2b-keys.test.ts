import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { E2bKeys } from "./e2b-keys.js";
import { KeyNotFoundError, NotFoundError, ProtocolError } from "./errors.js";
import { e2bKeyRoutes, sendJson, startFakeDaemon, type FakeDaemon, type FakeE2bKeyRoutes } from "./test-support/fake-daemon.js";

describe("E2bKeys", () => {
  let daemon: FakeDaemon;
  let keys: FakeE2bKeyRoutes;
  let broken = false;
  beforeAll(async () => {
    keys = e2bKeyRoutes();
    daemon = await startFakeDaemon((req, res) => {
      // A reply that leaks no key but breaks the schema: the SDK must not pass it on as a typed value.
      if (broken) return sendJson(res, 201, { id: "ek_000000000009", name: "x", prefix: "e2b_", createdAt: "now", lastUsedAt: null, key: "sk_nope" });
      if (!keys.handle(req, res)) sendJson(res, 404, { error: { code: "route_not_found", message: "no route", retryable: false } });
    });
  });
  afterAll(() => daemon.close());
  const conn = () => ({ apiUrl: daemon.url, apiKey: "k" });

  it("creates a key with a name and returns the key itself once", async () => {
    const created = await E2bKeys.create({ name: "ci", ...conn() });
    expect(created).toMatchObject({ id: "ek_000000000001", name: "ci", lastUsedAt: null });
    expect(created.key).toMatch(/^e2b_[0-9a-f]{40}$/);
    expect(created.key.startsWith(created.prefix)).toBe(true);
    const req = daemon.requests.at(-1)!;
    expect(req.method).toBe("POST");
    expect(req.url.pathname).toBe("/v1/e2b/keys");
    expect(req.headers.authorization).toBe("Bearer k");
    // Connection settings stay out of the body.
    expect(JSON.parse(req.body.toString())).toEqual({ name: "ci" });
  });

  it("creates a key without a name, leaving the default to the daemon", async () => {
    const created = await E2bKeys.create(conn());
    expect(created.name).toBe("default");
    expect(JSON.parse(daemon.requests.at(-1)!.body.toString())).toEqual({});
  });

  it("lists keys without the keys themselves", async () => {
    const list = await E2bKeys.list(conn());
    expect(list.map((k) => k.id)).toEqual(["ek_000000000001", "ek_000000000002"]);
    expect(list[0]).toEqual({ id: "ek_000000000001", name: "ci", prefix: keys.keys[0]!.prefix, createdAt: "2025-01-01T00:00:01.000Z", lastUsedAt: null });
    expect(list[0]).not.toHaveProperty("key");
    expect(daemon.requests.at(-1)).toMatchObject({ method: "GET" });
  });

  it("revokes a key by id", async () => {
    await E2bKeys.revoke("ek_000000000001", conn());
    const req = daemon.requests.at(-1)!;
    expect(req.method).toBe("DELETE");
    expect(req.url.pathname).toBe("/v1/e2b/keys/ek_000000000001");
    expect((await E2bKeys.list(conn())).map((k) => k.id)).toEqual(["ek_000000000002"]);
  });

  it("throws KeyNotFoundError for a key that is not there", async () => {
    const err = await E2bKeys.revoke("ek_000000000001", conn()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyNotFoundError);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err).toMatchObject({ name: "KeyNotFoundError", code: "key_not_found", status: 404, retryable: false, message: "no E2B key ek_000000000001" });
  });

  it("rejects a created key that does not match the protocol", async () => {
    broken = true;
    try {
      await expect(E2bKeys.create(conn())).rejects.toBeInstanceOf(ProtocolError);
    } finally {
      broken = false;
    }
  });
});
