// envd's process.Process service: commands run through Stasis's exec service, events streamed with keepalives.
import type { Context } from "hono";
import { z } from "zod";
import type { CommandParams, SignalName } from "@stasis/protocol";
import type { ExecService, OutputEvent } from "../../services/exec-service.js";
import type { PtyService } from "../../services/pty-service.js";
import { ConnectError, deadlineMs, StreamDropped, streamRequest, streamResponse, unaryRequest, unaryResponse } from "../connect-rpc.js";
import { MAX_PATH, resolvePath, userOf } from "./envd-user.js";

const DEFAULT_KEEPALIVE_S = 50;

const ProcessSelectorSchema = z.union([z.object({ pid: z.number().int().min(1) }), z.object({ tag: z.string().min(1).max(256) })]);
const StartRequest = z.object({
  process: z.object({
    cmd: z.string().min(1).max(128 * 1024),
    args: z.array(z.string().max(128 * 1024)).max(4096).default([]),
    envs: z.record(z.string().min(1).max(256), z.string().max(32 * 1024)).default({}),
    cwd: z.string().max(MAX_PATH).optional(),
  }),
  pty: z.object({ size: z.object({ cols: z.number().int().min(1).max(4096), rows: z.number().int().min(1).max(4096) }) }).optional(),
  tag: z.string().max(256).optional(),
  stdin: z.boolean().optional(),
});
const ConnectRequest = z.object({ process: ProcessSelectorSchema });
const SendInputRequest = z.object({
  process: ProcessSelectorSchema,
  input: z.union([z.object({ stdin: z.base64().max(2 * 1024 * 1024) }), z.object({ pty: z.base64().max(2 * 1024 * 1024) })]),
});
const UpdateRequest = z.object({
  process: ProcessSelectorSchema,
  pty: z.object({ size: z.object({ cols: z.number().int().min(1).max(4096), rows: z.number().int().min(1).max(4096) }) }).optional(),
});
const SendSignalRequest = z.object({
  process: ProcessSelectorSchema,
  signal: z.union([z.enum(["SIGNAL_SIGTERM", "SIGNAL_SIGKILL"]), z.literal(15), z.literal(9)]),
});
const CloseStdinRequest = z.object({ process: ProcessSelectorSchema });

export class EnvdProcesses {
  /** `gone(id)`: whether the sandbox is going or gone (killed, expired, failed) as far as E2B can tell. */
  constructor(
    private readonly exec: ExecService,
    private readonly pty: PtyService,
    private readonly gone: (id: string) => boolean,
  ) {}

  /** One process.Process method; errors are thrown for the caller to answer in the call's form (unary or stream). */
  async call(c: Context, id: string, rpc: string): Promise<Response> {
    switch (rpc) {
      case "process.Process/Start":
        return streamResponse(this.start(c, id, await streamRequest(c, StartRequest)));
      case "process.Process/Connect":
        return streamResponse(this.connect(c, id, await streamRequest(c, ConnectRequest)));
      case "process.Process/List":
        return unaryResponse(await this.list(id));
      case "process.Process/SendInput": {
        const req = await unaryRequest(c, SendInputRequest);
        const pid = await this.pidOf(id, req.process);
        if ("pty" in req.input) await this.pty.input(id, pid, Buffer.from(req.input.pty, "base64"));
        else await this.exec.writeStdin(id, pid, Buffer.from(req.input.stdin, "base64"), false);
        return unaryResponse({});
      }
      case "process.Process/Update": {
        const req = await unaryRequest(c, UpdateRequest);
        if (req.pty) await this.pty.resize(id, await this.pidOf(id, req.process), req.pty.size.cols, req.pty.size.rows);
        return unaryResponse({});
      }
      case "process.Process/SendSignal": {
        const req = await unaryRequest(c, SendSignalRequest);
        const signal: SignalName = req.signal === "SIGNAL_SIGKILL" || req.signal === 9 ? "SIGKILL" : "SIGTERM";
        await this.exec.signal(id, await this.pidOf(id, req.process), signal);
        return unaryResponse({});
      }
      case "process.Process/CloseStdin": {
        const req = await unaryRequest(c, CloseStdinRequest);
        await this.exec.writeStdin(id, await this.pidOf(id, req.process), "", true);
        return unaryResponse({});
      }
      default:
        throw new ConnectError("unimplemented", `envd has no method ${rpc}`);
    }
  }

  /** process.Process/Start: runs the process and streams its events; leaving early leaves it running. */
  private async *start(c: Context, id: string, req: z.output<typeof StartRequest>): AsyncGenerator<object> {
    if (req.pty) return yield* this.startTerminal(c, id, req, req.pty.size);
    const user = userOf(c);
    const deadline = deadlineMs(c);
    const params: CommandParams = {
      cmd: [req.process.cmd, ...req.process.args],
      env: req.process.envs,
      ...(req.process.cwd ? { cwd: resolvePath(req.process.cwd, user) } : {}),
      user,
      stdin: req.stdin ?? false,
      // E2B's timeoutMs bounds the call, and the process with it: past it, the process is killed.
      timeoutMs: deadline ?? 0,
      ...(req.tag ? { tag: req.tag } : {}),
    };
    const gone = new AbortController();
    // A client leaving keeps the process, unless it leaves because its deadline passed (the SDK aborts
    // on its own clock, racing ours): then the process dies, as on E2B.
    const deadlineAt = deadline ? Date.now() + deadline : Infinity;
    const leaveRunning = () => Date.now() < deadlineAt - 100;
    const events = this.exec.streamBytes(id, params, { signal: gone.signal, leaveRunning });
    const processEvents = toProcessEvents(events, "the command ran past its timeoutMs and was killed", () => this.gone(id));
    yield* withKeepalive(processEvents, keepaliveMs(c), () => gone.abort());
  }

  /**
   * process.Process/Start with `pty`: a terminal. It starts in the background and this stream attaches to
   * it; a client that leaves before its deadline leaves it running (connect finds it), one still there
   * at the deadline sees it killed, as a command is.
   */
  private async *startTerminal(c: Context, id: string, req: z.output<typeof StartRequest>, size: { cols: number; rows: number }): AsyncGenerator<object> {
    const user = userOf(c);
    const deadline = deadlineMs(c);
    const { pid } = await this.pty.start(id, {
      cmd: [req.process.cmd, ...req.process.args],
      env: req.process.envs,
      ...(req.process.cwd ? { cwd: resolvePath(req.process.cwd, user) } : {}),
      user,
      ...(req.tag ? { tag: req.tag } : {}),
      ...size,
    });
    const controller = new AbortController();
    let expired = false;
    const timer = deadline
      ? setTimeout(() => {
          expired = true;
          void this.exec.signal(id, pid, "SIGKILL").catch(() => {});
        }, deadline)
      : null;
    async function* marked(events: AsyncGenerator<OutputEvent>): AsyncGenerator<OutputEvent> {
      for await (const e of events) {
        if (e.kind === "exit") e.exit.timedOut = expired;
        yield e;
      }
    }
    try {
      const events = marked(this.pty.attach(id, pid, true, controller.signal));
      yield* withKeepalive(toProcessEvents(events, "the terminal ran past its timeoutMs and was killed", () => this.gone(id), true), keepaliveMs(c), () => controller.abort());
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  /** process.Process/Connect: live events of a running process from now on; the deadline ends only the stream. */
  private async *connect(c: Context, id: string, req: z.output<typeof ConnectRequest>): AsyncGenerator<object> {
    const pid = await this.pidOf(id, req.process);
    const deadline = deadlineMs(c);
    const controller = new AbortController();
    let expired = false;
    const timer = deadline
      ? setTimeout(() => {
          expired = true;
          controller.abort();
        }, deadline)
      : null;
    try {
      const terminal = await this.exec.isTerminal(id, pid);
      const events = this.exec.attachBytes(id, pid, false, controller.signal);
      yield* withKeepalive(toProcessEvents(events, null, () => this.gone(id), terminal), keepaliveMs(c), () => controller.abort());
    } catch (err) {
      if (expired && !(err instanceof StreamDropped)) throw new ConnectError("deadline_exceeded", "the connection ran past its timeoutMs (the process goes on)");
      throw err;
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  private async list(id: string): Promise<object> {
    const processes = (await this.exec.listProcesses(id)).filter((p) => p.running);
    return {
      processes: processes.map((p) => ({
        config: { cmd: p.cmd[0] ?? "", args: p.cmd.slice(1), envs: {}, ...(p.cwd ? { cwd: p.cwd } : {}) },
        pid: p.pid,
        ...(p.tag ? { tag: p.tag } : {}),
      })),
    };
  }

  private async pidOf(id: string, selector: z.output<typeof ProcessSelectorSchema>): Promise<number> {
    if ("pid" in selector) return selector.pid;
    const found = (await this.exec.listProcesses(id)).find((p) => p.running && p.tag === selector.tag);
    if (!found) throw new ConnectError("not_found", `no running process tagged '${selector.tag}'`);
    return found.pid;
  }
}

function keepaliveMs(c: Context): number {
  const s = Number(c.req.header("keepalive-ping-interval") ?? DEFAULT_KEEPALIVE_S);
  return Math.min(Math.max(Number.isFinite(s) && s > 0 ? s : DEFAULT_KEEPALIVE_S, 1), 300) * 1000;
}

/**
 * Stasis's process events as envd's ProcessEvent messages. When the sandbox goes away under the process
 * (killed, expired), its stream ends as on E2B, where the sandbox's envd dies with it: cut, with neither
 * an end event nor an error, which the SDK reports as the sandbox killed.
 */
async function* toProcessEvents(events: AsyncGenerator<OutputEvent>, timeoutMessage: string | null, sandboxGone: () => boolean, terminal = false): AsyncGenerator<object> {
  const dropped = () => new StreamDropped("the sandbox went away under the process");
  let ended = false;
  try {
    for await (const e of events) {
      if (e.kind === "start") yield { event: { start: { pid: e.pid } } };
      else if (e.kind === "data") yield { event: { data: { [terminal ? "pty" : e.fd === 1 ? "stdout" : "stderr"]: e.data.toString("base64") } } };
      else {
        if (sandboxGone()) throw dropped();
        if (e.exit.timedOut && timeoutMessage) throw new ConnectError("deadline_exceeded", timeoutMessage);
        const { exitCode, signal } = e.exit;
        const status = signal ? `signal: ${signal.replace(/^SIG/, "").toLowerCase()}` : `exit status ${exitCode}`;
        ended = true;
        yield { event: { end: { exitCode, exited: signal === null, status } } };
      }
    }
  } catch (err) {
    if (!(err instanceof StreamDropped) && sandboxGone()) throw dropped();
    throw err;
  }
  if (!ended && sandboxGone()) throw dropped();
}

/**
 * Passes messages through, adding a keepalive whenever none came for `intervalMs`, so that proxies and
 * HTTP clients with idle timeouts keep a quiet command's stream open. `stop` ends the source's wait when
 * the consumer leaves (a generator cannot be returned while it awaits).
 */
async function* withKeepalive(messages: AsyncGenerator<object>, intervalMs: number, stop: () => void): AsyncGenerator<object> {
  let pending: Promise<IteratorResult<object>> | null = null;
  try {
    for (;;) {
      pending ??= messages.next();
      let timer: NodeJS.Timeout | undefined;
      const tick = new Promise<"tick">((resolve) => (timer = setTimeout(() => resolve("tick"), intervalMs)));
      const next = await Promise.race([pending, tick]);
      clearTimeout(timer);
      if (next === "tick") {
        yield { event: { keepalive: {} } };
        continue;
      }
      pending = null;
      if (next.done) return;
      yield next.value;
    }
  } finally {
    // Finished, or the consumer left (client gone): close the source, which detaches from the process.
    if (pending) {
      void pending.catch(() => {});
      stop();
    }
    await messages.return(undefined);
  }
}
