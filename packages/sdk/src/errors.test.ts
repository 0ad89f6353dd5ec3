import { errorRegistry, type ErrorCode } from "@stasis/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ConflictError,
  errorClasses,
  errorFromBody,
  FileNotFoundError,
  InternalError,
  InvalidRequestError,
  InvalidTemplateError,
  KeyNotFoundError,
  NotFoundError,
  ProcessNotFoundError,
  ProtocolError,
  SandboxNotFoundError,
  SandboxNotRunningError,
  StasisError,
  TemplateBuildError,
  TemplateNotFoundError,
  TimeoutError,
} from "./errors.js";
import { Sandbox } from "./sandbox.js";
import { sendJson, startFakeDaemon, type FakeDaemon } from "./test-support/fake-daemon.js";

const codes = Object.keys(errorRegistry) as ErrorCode[];

describe("errorClasses", () => {
  it("maps exactly the registry's codes", () => {
    expect(Object.keys(errorClasses).sort()).toEqual([...codes].sort());
  });

  it.each(codes)("builds a typed error for %s", (code) => {
    const { status, retryable } = errorRegistry[code];
    const err = errorFromBody({ code, message: `boom ${code}`, retryable, requestId: "req-1", details: { a: 1 } }, status);
    expect(err).toBeInstanceOf(errorClasses[code]);
    expect(err).toBeInstanceOf(StasisError);
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ code, status, retryable, requestId: "req-1", message: `boom ${code}`, details: { a: 1 } });
    expect(err.name).toBe(errorClasses[code].name);
  });

  it("groups codes by meaning", () => {
    for (const cls of [SandboxNotFoundError, ProcessNotFoundError, FileNotFoundError, KeyNotFoundError]) expect(cls.prototype).toBeInstanceOf(NotFoundError);
    expect(errorFromBody({ code: "sandbox_not_running", message: "", retryable: false })).toBeInstanceOf(ConflictError);
    expect(errorFromBody({ code: "sandbox_not_running", message: "", retryable: false })).toBeInstanceOf(SandboxNotRunningError);
    expect(errorFromBody({ code: "payload_too_large", message: "", retryable: false })).toBeInstanceOf(InvalidRequestError);
    expect(errorFromBody({ code: "stream_overflow", message: "", retryable: false })).toBeInstanceOf(InternalError);
    expect(errorFromBody({ code: "agent_timeout", message: "", retryable: true })).toBeInstanceOf(TimeoutError);
    expect(TemplateNotFoundError.prototype).toBeInstanceOf(NotFoundError);
    expect(errorFromBody({ code: "template_in_use", message: "", retryable: false })).toBeInstanceOf(ConflictError);
    expect(errorFromBody({ code: "invalid_template", message: "", retryable: false })).toBeInstanceOf(TemplateBuildError);
    expect(errorFromBody({ code: "template_build_failed", message: "", retryable: false })).toBeInstanceOf(TemplateBuildError);
  });

  it("reads where a template build failed from the details", () => {
    const err = errorFromBody({ code: "invalid_template", message: "bad", retryable: false, details: { file: "Dockerfile", line: 3 } });
    expect(err).toBeInstanceOf(InvalidTemplateError);
    expect(err).toMatchObject({ line: 3, step: null, instruction: null, status: 422 });
  });

  it("defaults the status to the registry's for in-band errors", () => {
    expect(errorFromBody({ code: "exec_failed", message: "", retryable: false }).status).toBe(422);
  });
});

describe("error replies over HTTP", () => {
  let daemon: FakeDaemon;
  beforeAll(async () => {
    // GET /v1/sandboxes/<code-as-id> answers with that code's error, as the daemon would.
    daemon = await startFakeDaemon((req, res) => {
      const code = decodeURIComponent(req.url.pathname.split("/").pop() ?? "") as ErrorCode;
      if (code === ("html" as ErrorCode)) {
        res.writeHead(502, { "content-type": "text/html", "x-request-id": "proxy-1" });
        res.end("<html>Bad Gateway</html>");
        return;
      }
      const { status, retryable } = errorRegistry[code];
      sendJson(res, status, { error: { code, message: `daemon says ${code}`, retryable } }, { "x-request-id": `req-${code}` });
    });
  });
  afterAll(() => daemon.close());

  it.each(codes)("throws the typed error for %s", async (code) => {
    const err = await Sandbox.connect(code, { apiUrl: daemon.url, apiKey: "k" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(errorClasses[code]);
    // The request id comes from the header when the body has none.
    expect(err).toMatchObject({ code, status: errorRegistry[code].status, message: `daemon says ${code}`, requestId: `req-${code}` });
  });

  it("turns a reply without a protocol error body into a ProtocolError", async () => {
    const err = await Sandbox.connect("html", { apiUrl: daemon.url }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect(err).toMatchObject({ status: 502, requestId: "proxy-1", code: "protocol_error" });
    expect((err as Error).message).toContain("Bad Gateway");
  });
});
