import { describe, expect, it } from "vitest";
import { errorCodes, errorRegistry, ErrorResponseSchema, statusOf } from "./errors.js";
import { buildOpenApi } from "./openapi/build-openapi.js";
import { routes } from "./routes.js";

describe("error registry", () => {
  it("gives every code a 4xx/5xx status and a description", () => {
    for (const code of errorCodes) {
      const status = statusOf(code);
      expect(status >= 400 && status < 600, code).toBe(true);
      expect(errorRegistry[code].description.length).toBeGreaterThan(10);
    }
  });

  it("accepts exactly the registered codes on the wire", () => {
    const ok = ErrorResponseSchema.safeParse({ error: { code: "sandbox_not_found", message: "m", retryable: false } });
    expect(ok.success).toBe(true);
    const bad = ErrorResponseSchema.safeParse({ error: { code: "made_up", message: "m", retryable: false } });
    expect(bad.success).toBe(false);
  });

  it("documents every route and every error a route declares in the OpenAPI document", () => {
    const doc = buildOpenApi() as { paths: Record<string, Record<string, { responses: Record<string, { description: string }> }>> };
    for (const route of Object.values(routes)) {
      const op = doc.paths[route.path]?.[route.method];
      expect(op, `${route.method} ${route.path}`).toBeDefined();
      for (const code of route.errors) {
        expect(op!.responses[String(statusOf(code))]?.description, `${route.path} ${code}`).toContain(code);
      }
    }
  });
});
