import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { ErrorResponseSchema, SecretListSchema, SecretSchema } from "@stasis/protocol";
import { testApp } from "./test-support/test-app.js";

// Every line the daemon logs while serving these requests, at the most verbose level: the value must be in none.
const logged: string[] = [];
const { app, dir, config, services, close } = testApp({ log: pino({ level: "trace" }, { write: (line: string) => void logged.push(line) }) });
afterAll(close);

const VALUE = "sk-test-VALUE-1b9d6bcd-bbfd-4b2d";
const auth = { authorization: "Bearer k-0123456789abcdef" };
const json = { ...auth, "content-type": "application/json" };
const set = (body: unknown) => app.request("/v1/secrets", { method: "POST", headers: json, body: JSON.stringify(body) });

async function error(res: Response, status: number, code: string) {
  expect(res.status).toBe(status);
  const body = ErrorResponseSchema.parse(await res.json());
  expect(body.error.code).toBe(code);
  return body.error;
}

describe("secret routes", () => {
  it("creates, replaces, lists, gets and deletes a secret without ever returning its value", async () => {
    const replies: string[] = [];
    const created = await set({ name: "OPENAI_API_KEY", value: VALUE, hosts: ["api.openai.com", "*.openai.azure.com"] });
    expect(created.status).toBe(200);
    replies.push(await created.clone().text());
    const secret = SecretSchema.parse(await created.json());
    expect(secret).toMatchObject({ name: "OPENAI_API_KEY", hosts: ["api.openai.com", "*.openai.azure.com"] });
    expect(Object.keys(secret).sort()).toEqual(["createdAt", "hosts", "name", "updatedAt"]);

    const replaced = await set({ name: "OPENAI_API_KEY", value: `${VALUE}-2`, hosts: ["api.openai.com"] });
    expect(replaced.status).toBe(200);
    replies.push(await replaced.clone().text());
    expect(SecretSchema.parse(await replaced.json())).toMatchObject({ hosts: ["api.openai.com"], createdAt: secret.createdAt });

    const listed = await app.request("/v1/secrets", { headers: auth });
    replies.push(await listed.clone().text());
    expect(SecretListSchema.parse(await listed.json()).secrets.map((s) => s.name)).toEqual(["OPENAI_API_KEY"]);
    const got = await app.request("/v1/secrets/OPENAI_API_KEY", { headers: auth });
    replies.push(await got.clone().text());
    expect(SecretSchema.parse(await got.json()).hosts).toEqual(["api.openai.com"]);
    expect(services.secrets.reveal("OPENAI_API_KEY")?.value).toBe(`${VALUE}-2`);

    for (const text of [...replies, ...logged]) expect(text).not.toContain(VALUE);
    // At rest: in its own key file beside the database, never in the database's files.
    expect(statSync(config.secretsKeyFile).mode & 0o777).toBe(0o600);
    for (const file of readdirSync(dir).filter((f) => f.startsWith("db.sqlite"))) expect(readFileSync(join(dir, file)).includes(VALUE)).toBe(false);

    expect((await app.request("/v1/secrets/OPENAI_API_KEY", { method: "DELETE", headers: auth })).status).toBe(204);
    await error(await app.request("/v1/secrets/OPENAI_API_KEY", { method: "DELETE", headers: auth }), 404, "secret_not_found");
    await error(await app.request("/v1/secrets/OPENAI_API_KEY", { headers: auth }), 404, "secret_not_found");
    expect(await (await app.request("/v1/secrets", { headers: auth })).json()).toEqual({ secrets: [] });
  });

  it("refuses bad names, values and hosts with 400, echoing no value", async () => {
    const bad = [
      { name: "1ABC", value: "v", hosts: ["a.example"] },
      { name: "A", value: "line\r\nInjected: yes", hosts: ["a.example"] },
      { name: "A", value: "bell\u0007Injected", hosts: ["a.example"] },
      { name: "A", value: "euro\u20acInjected", hosts: ["a.example"] },
      { name: "A", value: "", hosts: ["a.example"] },
      { name: "A", value: "v", hosts: [] },
      { name: "A", value: "v", hosts: ["203.0.113.7"] },
      { name: "A", value: "v", hosts: ["a.example"], extra: 1 },
    ];
    for (const body of bad) {
      const e = await error(await set(body), 400, "invalid_request");
      expect(JSON.stringify(e)).not.toContain("Injected");
    }
    await error(await app.request("/v1/secrets/not-a-name", { headers: auth }), 400, "invalid_request");
    await error(await app.request("/v1/secrets", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }), 401, "unauthorized");
  });
});
