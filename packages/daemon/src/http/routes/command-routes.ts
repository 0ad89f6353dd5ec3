import { AttachQuerySchema, CommandRequestSchema, PidParamSchema, SignalRequestSchema, StdinRequestSchema } from "@stasis/protocol";
import type { Context } from "hono";
import type { Handler } from "../handler.js";
import { ndjsonResponse } from "../ndjson.js";
import { clientGone, jsonBody, parseWith, query } from "../validation.js";

function target(c: Context): { id: string; pid: number } {
  return parseWith(PidParamSchema, c.req.param(), "path");
}

export const commandHandlers = {
  runCommand: async (c, s) => {
    const params = await jsonBody(c, CommandRequestSchema);
    return c.json(await s.exec.run(c.req.param("id") ?? "", params, clientGone(c)));
  },
  streamCommand: async (c, s) => {
    const params = await jsonBody(c, CommandRequestSchema);
    return ndjsonResponse(s.exec.stream(c.req.param("id") ?? "", params, clientGone(c)), c.get("requestId"));
  },
  startProcess: async (c, s) => {
    const params = await jsonBody(c, CommandRequestSchema);
    return c.json(await s.exec.startBackground(c.req.param("id") ?? "", params), 201);
  },
  listProcesses: async (c, s) => c.json(await s.exec.processList(c.req.param("id") ?? "")),
  getProcess: async (c, s) => {
    const { id, pid } = target(c);
    return c.json(await s.exec.getProcess(id, pid));
  },
  attachProcess: async (c, s) => {
    const { id, pid } = target(c);
    const { replay } = query(c, AttachQuerySchema);
    return ndjsonResponse(s.exec.attach(id, pid, replay, clientGone(c)), c.get("requestId"));
  },
  writeStdin: async (c, s) => {
    const { id, pid } = target(c);
    const body = await jsonBody(c, StdinRequestSchema);
    await s.exec.writeStdin(id, pid, body.data, body.eof);
    return c.body(null, 204);
  },
  signalProcess: async (c, s) => {
    const { id, pid } = target(c);
    const body = await jsonBody(c, SignalRequestSchema);
    await s.exec.signal(id, pid, body.signal);
    return c.body(null, 204);
  },
  killProcess: async (c, s) => {
    const { id, pid } = target(c);
    await s.exec.signal(id, pid, "SIGKILL");
    return c.body(null, 204);
  },
} satisfies Record<string, Handler>;
