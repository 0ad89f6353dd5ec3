import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import { gunzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { consolePolicy, mountConsole } from "./console-assets.js";
import type { AppEnv } from "./handler.js";

const dir = mkdtempSync(join(tmpdir(), "stasis-console-"));
mkdirSync(join(dir, "assets"));
writeFileSync(join(dir, "index.html"), '<!doctype html><script type="module" src="/console/assets/app-1.js"></script>');
writeFileSync(join(dir, "assets", "app-1.js"), "console.log(1)");
writeFileSync(join(dir, "assets", "notes.txt"), "not an asset type");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function app(consoleDir: string): Hono<AppEnv> {
  const a = new Hono<AppEnv>();
  mountConsole(a, consoleDir);
  return a;
}

describe("the web console's files", () => {
  const served = app(dir);

  it("redirects / and /console to /console/, whose page carries a strict policy and is revalidated", async () => {
    expect((await served.request("/")).headers.get("location")).toBe("/console/");
    expect((await served.request("/console")).headers.get("location")).toBe("/console/");
    const page = await served.request("/console/", { headers: { host: "127.0.0.1:7070" } });
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(page.headers.get("cache-control")).toBe("no-cache");
    const csp = page.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("script-src 'self';");
    expect(csp).toContain("connect-src 'self' ws://127.0.0.1:7070 wss://127.0.0.1:7070");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(await page.text()).toContain("/console/assets/app-1.js");
  });

  it("serves hashed assets for a year, and nothing it did not list at start", async () => {
    const js = await served.request("/console/assets/app-1.js");
    expect(js.status).toBe(200);
    expect(js.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(js.headers.get("x-content-type-options")).toBe("nosniff");
    for (const path of ["/console/assets/notes.txt", "/console/assets/..%2Findex.html", "/console/assets/missing.js"]) {
      expect((await served.request(path)).status, path).toBe(404);
    }
  });

  it("sends the gzipped copy to a client that accepts gzip", async () => {
    const res = await served.request("/console/assets/app-1.js", { headers: { "accept-encoding": "gzip, deflate, br" } });
    expect(res.headers.get("content-encoding")).toBe("gzip");
    expect(res.headers.get("vary")).toBe("accept-encoding");
    expect(gunzipSync(Buffer.from(await res.arrayBuffer())).toString()).toBe("console.log(1)");
    expect((await served.request("/console/assets/app-1.js")).headers.get("content-encoding")).toBeNull();
  });

  it("a host header that is not a host name adds no connect source", () => {
    expect(consolePolicy("evil.example; script-src *")).toContain("connect-src 'self';");
    expect(consolePolicy(undefined)).toContain("connect-src 'self';");
  });

  it("says how to build it when the console was not built", async () => {
    const res = await app(join(dir, "nowhere")).request("/console/");
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain("npm run build -w @stasis/console");
  });
});
