import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Database } from "../store/database.js";
import { loadConfig } from "../config/config.js";
import { SecretsKey, SecretsKeyError } from "./secret-crypto.js";
import { SecretStore } from "./secret-store.js";

const VALUE = "sk-live-0123456789abcdefVALUE";

describe("SecretStore", () => {
  let dir: string;
  let db: Database;
  let keyPath: string;
  let store: SecretStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "stasis-secrets-"));
    db = new Database(join(dir, "stasis.db"));
    keyPath = loadConfig({ STASIS_DATA_DIR: dir, STASIS_API_KEY: "k-0123456789abcdef" }).secretsKeyFile;
    store = new SecretStore(db, new SecretsKey(keyPath));
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps the key in its own 0600 file, created on first use, and the value out of the database files", () => {
    expect(readdirSync(dir)).not.toContain("secrets.key");
    const { secret, created } = store.put({ name: "OPENAI_API_KEY", value: VALUE, hosts: ["API.openai.com.", "*.Example.com", "api.openai.com"] });
    expect(created).toBe(true);
    expect(secret).toMatchObject({ name: "OPENAI_API_KEY", hosts: ["api.openai.com", "*.example.com"] });
    expect(secret).not.toHaveProperty("value");
    expect(statSync(keyPath).mode & 0o777).toBe(0o600);
    expect(readFileSync(keyPath)).toHaveLength(32);
    db.close();
    for (const file of readdirSync(dir).filter((f) => f.startsWith("stasis.db"))) {
      expect(readFileSync(join(dir, file)).includes(VALUE), file).toBe(false);
    }
    db = new Database(join(dir, "stasis.db"));
    store = new SecretStore(db, new SecretsKey(keyPath));
    expect(store.reveal("OPENAI_API_KEY")).toEqual({ name: "OPENAI_API_KEY", hosts: ["api.openai.com", "*.example.com"], value: VALUE });
  });

  it("follows STASIS_SECRETS_KEY_FILE and accepts a hex key", () => {
    const elsewhere = join(dir, "elsewhere.key");
    expect(loadConfig({ STASIS_DATA_DIR: dir, STASIS_API_KEY: "k-0123456789abcdef", STASIS_SECRETS_KEY_FILE: elsewhere }).secretsKeyFile).toBe(elsewhere);
    writeFileSync(elsewhere, `${"ab".repeat(32)}\n`, { mode: 0o600 });
    const other = new SecretStore(db, new SecretsKey(elsewhere));
    other.put({ name: "A", value: "v", hosts: ["a.example"] });
    expect(other.reveal("A")?.value).toBe("v");
    expect(readdirSync(dir)).not.toContain("secrets.key");
  });

  it("replaces a secret's value and hosts, keeping its creation time", () => {
    const first = store.put({ name: "TOKEN", value: "one", hosts: ["a.example"] }).secret;
    const again = store.put({ name: "TOKEN", value: "two", hosts: ["b.example"] });
    expect(again.created).toBe(false);
    expect(again.secret.createdAt).toBe(first.createdAt);
    expect(store.reveal("TOKEN")).toEqual({ name: "TOKEN", hosts: ["b.example"], value: "two" });
    expect(store.list().map((s) => s.name)).toEqual(["TOKEN"]);
  });

  it("lists by name and deletes", () => {
    store.put({ name: "B", value: "b", hosts: ["b.example"] });
    store.put({ name: "A", value: "a", hosts: ["a.example"] });
    expect(store.list().map((s) => s.name)).toEqual(["A", "B"]);
    expect(store.delete("A")).toBe(true);
    expect(store.delete("A")).toBe(false);
    expect(store.get("A")).toBeNull();
    expect(store.reveal("A")).toBeNull();
    expect(store.hostsOf("B")).toEqual(["b.example"]);
  });

  it("fails a use, not the start, with a wrong or missing key", () => {
    store.put({ name: "A", value: "a", hosts: ["a.example"] });
    writeFileSync(keyPath, Buffer.alloc(32, 7));
    const wrong = new SecretStore(db, new SecretsKey(keyPath));
    expect(wrong.list().map((s) => s.name)).toEqual(["A"]);
    expect(() => wrong.reveal("A")).toThrow(/encrypted with another secrets key/);
    rmSync(keyPath);
    const missing = new SecretStore(db, new SecretsKey(keyPath));
    expect(missing.hostsOf("A")).toEqual(["a.example"]);
    expect(() => missing.reveal("A")).toThrow(SecretsKeyError);
    expect(() => missing.reveal("A")).toThrow(/is missing/);
    // No new key is made behind the back of the secrets sealed with the lost one...
    expect(() => missing.put({ name: "B", value: "b", hosts: ["b.example"] })).toThrow(/missing but 1 secret/);
    expect(readdirSync(dir)).not.toContain("secrets.key");
    // ...but once they are gone (deleting needs no key), one is.
    expect(missing.delete("A")).toBe(true);
    missing.put({ name: "B", value: "b", hosts: ["b.example"] });
    expect(missing.reveal("B")?.value).toBe("b");
  });

  it("refuses a row whose hosts were edited in the database", () => {
    store.put({ name: "A", value: "a", hosts: ["a.example"] });
    db.statement("UPDATE secrets SET hosts = ? WHERE name = ?").run(JSON.stringify(["evil.example"]), "A");
    expect(() => store.reveal("A")).toThrow(/altered or damaged/);
  });

  it("keeps the newest audit rows only", () => {
    const small = new SecretStore(db, new SecretsKey(keyPath), { maxUses: 3 });
    for (let i = 1; i <= 7; i++) small.recordUse({ sandboxId: i % 2 ? "sbx_odd" : "sbx_even", secret: "A", host: "a.example", at: i * 1000 });
    small.pruneUses();
    const uses = small.uses();
    expect(uses.map((u) => u.usedAt)).toEqual([7000, 6000, 5000].map((t) => new Date(t).toISOString()));
    expect(small.uses({ sandboxId: "sbx_even" })).toEqual([{ sandboxId: "sbx_even", secret: "A", host: "a.example", usedAt: new Date(6000).toISOString() }]);
  });
});
