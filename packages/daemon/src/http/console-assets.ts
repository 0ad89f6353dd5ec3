import { existsSync, readdirSync, readFileSync } from "node:fs";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import type { Context, Hono } from "hono";
import { ApiError } from "../errors/api-error.js";
import type { AppEnv } from "./handler.js";
import { sendError } from "./http-errors.js";

/** Where the build (packages/console, Vite) puts the console: beside dist/ in the daemon's package. */
export const DEFAULT_CONSOLE_DIR = fileURLToPath(new URL("../../console/", import.meta.url));

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
  ".map": "application/json",
};

interface Asset {
  body: Buffer;
  /** Compressed once at start (the JS shrinks ~4x); sent to clients that accept gzip. */
  gzip: Buffer;
  type: string;
}

const asset = (body: Buffer, type: string): Asset => ({ body, gzip: gzipSync(body, { level: 9 }), type });

/**
 * The console's files, read once at start: only these names are ever served (no path from a request
 * reaches the filesystem), and the bundle is small (~100 KiB gzipped).
 */
function loadAssets(dir: string): { index: Asset; assets: Map<string, Asset> } | null {
  const indexPath = join(dir, "index.html");
  if (!existsSync(indexPath)) return null;
  const assets = new Map<string, Asset>();
  const assetDir = join(dir, "assets");
  if (existsSync(assetDir)) {
    for (const name of readdirSync(assetDir)) {
      const type = TYPES[extname(name)];
      if (type) assets.set(name, asset(readFileSync(join(assetDir, name)), type));
    }
  }
  return { index: asset(readFileSync(indexPath), TYPES[".html"]!), assets };
}

/**
 * The page's policy: scripts and styles from the daemon only, no inline script; xterm.js's DOM
 * renderer adds <style> elements, hence 'unsafe-inline' for styles alone. Fetches and the terminal's
 * WebSocket go to this host only (`ws:` to self is spelled out: not every browser counts it as 'self').
 */
export function consolePolicy(host: string | undefined): string {
  const self = host && /^[A-Za-z0-9.:[\]-]{1,300}$/.test(host) ? ` ws://${host} wss://${host}` : "";
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    `connect-src 'self'${self}`,
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}

function send(c: Context<AppEnv>, asset: Asset, cache: string): Response {
  const gzip = /\bgzip\b/.test(c.req.header("accept-encoding") ?? "");
  return new Response(new Uint8Array(gzip ? asset.gzip : asset.body), {
    status: 200,
    headers: {
      ...(gzip ? { "content-encoding": "gzip" } : {}),
      vary: "accept-encoding",
      "content-type": asset.type,
      "cache-control": cache,
      "content-security-policy": consolePolicy(c.req.header("host")),
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "x-frame-options": "DENY",
    },
  });
}

/** Serves the web console at /console/ (and / redirects there); hashed assets are cached for a year. */
export function mountConsole(app: Hono<AppEnv>, dir: string = DEFAULT_CONSOLE_DIR): void {
  const files = loadAssets(dir);
  const missing = (c: Context<AppEnv>) =>
    sendError(c, new ApiError("route_not_found", "the web console is not built: run `npm run build -w @stasis/console` (scripts/setup.sh does)"));
  app.get("/", (c) => c.redirect("/console/", 302));
  app.get("/console", (c) => c.redirect("/console/", 301));
  app.get("/console/", (c) => (files ? send(c, files.index, "no-cache") : missing(c)));
  app.get("/console/index.html", (c) => (files ? send(c, files.index, "no-cache") : missing(c)));
  app.get("/console/assets/:name", (c) => {
    if (!files) return missing(c);
    const asset = files.assets.get(c.req.param("name"));
    if (!asset) return sendError(c, new ApiError("route_not_found", `no console asset ${c.req.param("name")}`));
    return send(c, asset, "public, max-age=31536000, immutable");
  });
}
