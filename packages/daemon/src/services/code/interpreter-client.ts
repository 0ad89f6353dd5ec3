import type { Socket } from "node:net";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { ApiError } from "../../errors/api-error.js";

/** The code interpreter's port inside the sandbox (E2B's, so its SDK reaches the same server). */
export const CODE_PORT = 49999;
/**
 * The longest wait for a reply's head. A run's head comes at once; creating or restarting a context starts
 * its kernel first (a few seconds, more on a loaded host; the server gives a start 60 s). A sandbox without
 * an interpreter refuses the connection at once instead.
 */
const REPLY_HEAD_TIMEOUT_MS = 90_000;
/** Plain (non-streamed) replies: contexts, errors. */
const MAX_REPLY_BYTES = 4 * 1024 * 1024;

export interface InterpreterReply {
  status: number;
  body: IncomingMessage;
}

/** One HTTP request to the sandbox's interpreter; a fresh connection each (one kept open would be reset by a hibernation). */
export function interpreterRequest(address: string, method: string, path: string, body: unknown, signal?: AbortSignal, track?: (socket: Socket) => void): Promise<InterpreterReply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = httpRequest({
      host: address,
      port: CODE_PORT,
      method,
      path,
      agent: false,
      headers: payload ? { "content-type": "application/json", "content-length": payload.length } : {},
      ...(signal ? { signal } : {}),
    });
    if (track) req.once("socket", track);
    const timer = setTimeout(() => req.destroy(Object.assign(new Error("no reply"), { code: "ETIMEDOUT" })), REPLY_HEAD_TIMEOUT_MS);
    req.once("response", (res) => {
      clearTimeout(timer);
      resolve({ status: res.statusCode ?? 502, body: res });
    });
    req.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (signal?.aborted) return reject(new ApiError("invalid_request", "the client went away"));
      if (err.code === "ECONNREFUSED" || err.code === "EHOSTUNREACH") {
        return reject(new ApiError("code_interpreter_unavailable", "nothing listens on the code interpreter's port 49999 in this sandbox: create it from the code-interpreter template"));
      }
      reject(new ApiError("code_interpreter_failed", `the sandbox's code interpreter did not answer (${err.code ?? err.message})`));
    });
    req.end(payload);
  });
}

/** Reads a whole reply, bounded: a bigger one is the interpreter's fault, not the daemon's problem. */
export async function readBounded(res: IncomingMessage, limit = MAX_REPLY_BYTES): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      res.destroy();
      throw new ApiError("code_interpreter_failed", `the code interpreter's reply exceeded ${limit} bytes`);
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts).toString("utf8");
}

/** A non-2xx reply as the API's error: 404 is an unknown context, 400 a request the interpreter refused. */
export async function replyError(reply: InterpreterReply): Promise<ApiError> {
  const message = (await readBounded(reply.body, 64 * 1024).catch(() => "")).trim().slice(0, 2000);
  if (reply.status === 404) return new ApiError("context_not_found", message || "no such code context");
  if (reply.status === 400) return new ApiError("invalid_request", message || "the code interpreter refused the request");
  return new ApiError("code_interpreter_failed", `the code interpreter answered ${reply.status}${message ? `: ${message}` : ""}`);
}
