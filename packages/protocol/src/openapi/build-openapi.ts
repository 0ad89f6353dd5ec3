import { z } from "zod";
import { errorRegistry, ErrorResponseSchema } from "../errors.js";
import { routes, type RouteSpec } from "../routes.js";
import { PROTOCOL_VERSION } from "../version.js";

type JsonObject = Record<string, unknown>;

function schemaOf(schema: z.ZodType, io: "input" | "output"): JsonObject {
  const json = z.toJSONSchema(schema, { io, unrepresentable: "any", target: "draft-2020-12" }) as JsonObject;
  delete json.$schema;
  return json;
}

function queryParameters(query: z.ZodType | undefined): JsonObject[] {
  if (!query) return [];
  const json = schemaOf(query, "input") as { properties?: Record<string, JsonObject>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, schema]) => ({
    name,
    in: "query",
    required: json.required?.includes(name) ?? false,
    schema,
    ...(typeof schema.description === "string" ? { description: schema.description } : {}),
  }));
}

function responseOf(route: RouteSpec): [string, JsonObject] {
  const r = route.response;
  switch (r.kind) {
    case "json":
      return [String(r.status), { description: "OK", content: { "application/json": { schema: schemaOf(r.schema, "output") } } }];
    case "ndjson":
      return ["200", { description: "A stream of JSON lines; the last is an `exit` or `error` event.", content: { "application/x-ndjson": { schema: schemaOf(r.schema, "output") } } }];
    case "raw":
      return ["200", { description: "Raw bytes", content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } } }];
    case "text":
      return ["200", { description: "Text", content: { "text/plain": { schema: { type: "string" } } } }];
    case "empty":
      return ["204", { description: "Done" }];
  }
}

/** Builds the OpenAPI 3.1 document from the route table: the contract has exactly one source. */
export function buildOpenApi(): JsonObject {
  const paths: Record<string, Record<string, JsonObject>> = {};
  const errorSchema = schemaOf(ErrorResponseSchema, "output");
  for (const [operationId, route] of Object.entries(routes) as [string, RouteSpec][]) {
    const pathParams = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
      name: m[1],
      in: "path",
      required: true,
      schema: m[1] === "pid" ? { type: "integer" } : { type: "string" },
    }));
    const [status, okResponse] = responseOf(route);
    const responses: Record<string, JsonObject> = { [status]: okResponse };
    const codes = new Set([...route.errors, "invalid_request", "internal", ...(route.auth ? ["unauthorized"] : [])]);
    for (const code of codes) {
      const entry = errorRegistry[code as keyof typeof errorRegistry];
      const key = String(entry.status);
      const existing = responses[key];
      const list = existing ? `${String(existing.description)}, ${code}` : `Error: ${code}`;
      responses[key] = { description: list, content: { "application/json": { schema: { $ref: "#/components/schemas/ErrorResponse" } } } };
    }
    const operation: JsonObject = {
      operationId,
      summary: route.summary,
      tags: [route.tag],
      parameters: [...pathParams, ...queryParameters(route.query)],
      responses,
      ...(route.auth ? {} : { security: [] }),
    };
    if (route.body?.kind === "json") {
      operation.requestBody = { required: true, content: { "application/json": { schema: schemaOf(route.body.schema, "input") } } };
    } else if (route.body?.kind === "raw") {
      operation.requestBody = { required: true, content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } } };
    }
    (paths[route.path] ??= {})[route.method] = operation;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Stasis API",
      version: PROTOCOL_VERSION,
      description:
        "Self-hosted sandboxes for AI agents. Errors share one shape; codes:\n\n" +
        Object.entries(errorRegistry)
          .map(([code, e]) => `- \`${code}\` (${e.status}${e.retryable ? ", retryable" : ""}): ${e.description}`)
          .join("\n"),
    },
    servers: [{ url: "http://127.0.0.1:7070" }],
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: { ErrorResponse: errorSchema },
    },
    paths,
  };
}
