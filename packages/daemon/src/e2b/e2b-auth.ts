import { createHmac, timingSafeEqual } from "node:crypto";
import type { E2bStore } from "./e2b-store.js";

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Who may use the E2B surface. The control plane takes an issued `e2b_` key (or the daemon's own key) in
 * X-API-KEY. Sandbox traffic takes the sandbox's envd access token (X-Access-Token), handed out by create
 * and connect: an HMAC of the sandbox id under the daemon's key, so it opens that one sandbox only and
 * needs no storage.
 */
export class E2bAuth {
  constructor(
    private readonly apiKey: string,
    private readonly store: E2bStore,
  ) {}

  apiKeyValid(key: string | undefined): boolean {
    if (!key) return false;
    return same(key, this.apiKey) || this.store.findKey(key) !== null;
  }

  envdToken(sandboxId: string): string {
    return createHmac("sha256", this.apiKey).update(`envd-access:${sandboxId}`).digest("hex");
  }

  envdTokenValid(sandboxId: string, token: string | undefined): boolean {
    return token !== undefined && same(token, this.envdToken(sandboxId));
  }
}
