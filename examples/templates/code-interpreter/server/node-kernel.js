// A JavaScript/TypeScript context: one node process, one vm context kept across runs. Requests arrive as
// JSON lines on stdin ({id, code, env}); events leave as JSON lines on the fd in STASIS_EVENTS_FD, so user output on fd 1/2
// (child processes writing there directly) never corrupts them. console.* and process.stdout/stderr.write
// are routed there in order with the run's other events.
"use strict";
const fs = require("node:fs");
const vm = require("node:vm");
const util = require("node:util");
const readline = require("node:readline");
const { Writable } = require("node:stream");

const typescript = process.argv[2] === "typescript";
let ts = null;
if (typescript) {
  try {
    ts = require("typescript");
  } catch {
    ts = null;
  }
}
let current = null;

const EVENTS_FD = Number(process.env.STASIS_EVENTS_FD ?? 3);
function send(event) {
  fs.writeSync(EVENTS_FD, JSON.stringify(event) + "\n");
}
function stream(type) {
  return new Writable({
    write(chunk, _enc, cb) {
      if (current) send({ id: current.id, type, text: chunk.toString() });
      else (type === "stdout" ? origOut : origErr)(chunk);
      cb();
    },
  });
}
const origOut = process.stdout.write.bind(process.stdout);
const origErr = process.stderr.write.bind(process.stderr);
const outStream = stream("stdout");
const errStream = stream("stderr");
process.stdout.write = (chunk, ...rest) => outStream.write(chunk, ...rest);
process.stderr.write = (chunk, ...rest) => errStream.write(chunk, ...rest);

const sandbox = {
  console: new console.Console({ stdout: outStream, stderr: errStream }),
  require,
  process,
  Buffer,
  URL,
  URLSearchParams,
  TextEncoder,
  TextDecoder,
  setTimeout,
  clearTimeout,
  setInterval,
  clearInterval,
  setImmediate,
  clearImmediate,
  queueMicrotask,
  structuredClone,
  fetch: globalThis.fetch,
  module: { exports: {} },
};
sandbox.globalThis = sandbox;
sandbox.exports = sandbox.module.exports;
const context = vm.createContext(sandbox);
let count = 0;

function errorEvent(id, err) {
  if (err && typeof err === "object" && "stack" in err) {
    return { id, type: "error", name: String(err.name ?? "Error"), value: String(err.message ?? ""), traceback: String(err.stack ?? "") };
  }
  return { id, type: "error", name: "Error", value: util.inspect(err), traceback: "" };
}

function compile(code) {
  if (!ts) return code;
  return ts.transpile(code, { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS, esModuleInterop: true });
}

async function evaluate(code) {
  const opts = { filename: `cell-${count}`, breakOnSigint: true };
  try {
    return vm.runInContext(code, context, opts);
  } catch (err) {
    // Top-level await: run the cell as an async function (its declarations stay local to it).
    if (err && err.name === "SyntaxError" && /await/.test(String(err.message)) && /\bawait\b/.test(code)) {
      return vm.runInContext(`(async () => {\n${code}\n})()`, context, opts);
    }
    throw err;
  }
}

async function run(req) {
  count += 1;
  const me = { id: req.id };
  current = me;
  const finished = new Promise((resolve) => (me.finish = resolve));
  const work = (async () => {
    const env = req.env ?? {};
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    Object.assign(process.env, env);
    try {
      let value = await evaluate(compile(req.code));
      if (value && typeof value.then === "function") value = await value;
      if (value !== undefined) send({ id: req.id, type: "result", is_main_result: true, text: util.inspect(value, { depth: 4 }) });
    } catch (err) {
      if (err && err.code === "ERR_SCRIPT_EXECUTION_INTERRUPTED") send({ id: req.id, type: "error", name: "KeyboardInterrupt", value: "interrupted", traceback: "" });
      else send(errorEvent(req.id, err));
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  })();
  work.then(() => me.finish("done"));
  // An awaited promise that never settles is ended by an interrupt (the server's, at the run's timeout).
  const how = await finished;
  if (how === "interrupt") send({ id: req.id, type: "error", name: "KeyboardInterrupt", value: "interrupted", traceback: "" });
  send({ id: req.id, type: "number_of_executions", execution_count: count });
  send({ id: req.id, type: "done" });
  current = null;
}

// SIGINT outside a synchronous run (that one is broken by breakOnSigint) ends an awaited run.
process.on("SIGINT", () => current?.finish?.("interrupt"));
process.on("uncaughtException", (err) => send(errorEvent(current?.id ?? null, err)));
process.on("unhandledRejection", (err) => send(errorEvent(current?.id ?? null, err)));

const queue = [];
let busy = false;
async function pump() {
  if (busy) return;
  busy = true;
  while (queue.length > 0) await run(queue.shift());
  busy = false;
}
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  try {
    queue.push(JSON.parse(line));
  } catch {
    return;
  }
  void pump();
});
send({ type: "ready" });
