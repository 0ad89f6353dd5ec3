import { CodeContextParamSchema, CreateCodeContextRequestSchema, RunCodeRequestSchema } from "@stasis/protocol";
import type { Context } from "hono";
import type { Handler } from "../handler.js";
import { ndjsonResponse } from "../ndjson.js";
import { clientGone, jsonBody, parseWith } from "../validation.js";

function target(c: Context): { id: string; contextId: string } {
  return parseWith(CodeContextParamSchema, c.req.param(), "path");
}

export const codeHandlers = {
  runCode: async (c, s) => {
    const params = await jsonBody(c, RunCodeRequestSchema);
    return ndjsonResponse(s.code.run(c.req.param("id") ?? "", params, clientGone(c)), c.get("requestId"));
  },
  listCodeContexts: async (c, s) => c.json(await s.code.listContexts(c.req.param("id") ?? "")),
  createCodeContext: async (c, s) => {
    const body = await jsonBody(c, CreateCodeContextRequestSchema);
    return c.json(await s.code.createContext(c.req.param("id") ?? "", body), 201);
  },
  deleteCodeContext: async (c, s) => {
    const { id, contextId } = target(c);
    await s.code.deleteContext(id, contextId);
    return c.body(null, 204);
  },
  restartCodeContext: async (c, s) => {
    const { id, contextId } = target(c);
    await s.code.restartContext(id, contextId);
    return c.body(null, 204);
  },
  interruptCodeContext: async (c, s) => {
    const { id, contextId } = target(c);
    await s.code.interruptContext(id, contextId);
    return c.body(null, 204);
  },
} satisfies Record<string, Handler>;
