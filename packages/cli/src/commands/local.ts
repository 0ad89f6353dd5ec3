import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { CommandOf } from "../command.js";
import { loadOptional } from "../optional-package.js";
import { errorLine, note, printJson, write, type Context } from "../output.js";

// The daemon package (native SQLite, HTTP server) loads only for the commands that run on the host itself,
// and is an optional peer of the CLI: client commands work without it.
const daemon = (command: string) => loadOptional("@stasis/daemon", `stasis ${command}`, () => import("@stasis/daemon"));
// So does the benchmark, which runs its own daemon through this very CLI.
const benchmark = () => loadOptional("@stasis/bench", "stasis bench", () => import("@stasis/bench"));

/** Flags of the local commands become the STASIS_* variables the daemon's config reads. */
function applyEnv(ctx: Context, vars: Record<string, string | number | undefined>): void {
  for (const [key, value] of Object.entries(vars)) if (value !== undefined) ctx.env[key] = String(value);
}

export async function serve(cmd: CommandOf<"serve">, ctx: Context): Promise<number> {
  applyEnv(ctx, { STASIS_HOST: cmd.host, STASIS_PORT: cmd.port, STASIS_DATA_DIR: cmd.dataDir, STASIS_DEFAULT_RUNTIME: cmd.runtime });
  const { loadConfig, startDaemon } = await daemon("serve");
  const running = await startDaemon(loadConfig(ctx.env)).catch((err: unknown) => {
    // Whatever the failed start left open (a timer, a socket) must not keep a daemon that serves nothing alive.
    ctx.io.stderr.write(`${errorLine(err)}\n`);
    process.exit(1);
  });
  const code = await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        // A second signal while closing: the operator wants out now.
        running.log.warn({ signal }, "second signal: exiting without waiting for shutdown");
        resolve(1);
        return;
      }
      stopping = true;
      running.log.info({ signal }, "shutting down");
      running.close().then(
        () => resolve(0),
        (err: unknown) => {
          running.log.error({ err }, "shutdown failed");
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
  // Sandboxes keep running without the daemon; their channels and timers must not keep this process up.
  process.exit(code);
}

export async function doctor(cmd: CommandOf<"doctor">, ctx: Context): Promise<number> {
  applyEnv(ctx, { STASIS_DATA_DIR: cmd.dataDir });
  const { loadConfig, runDoctor } = await daemon("doctor");
  const checks = await runDoctor(loadConfig(ctx.env));
  const failed = checks.some((c) => !c.ok && c.severity === "error");
  if (ctx.json) {
    await printJson(ctx, { ok: !failed, checks });
    return failed ? 1 : 0;
  }
  const width = Math.max(...checks.map((c) => c.name.length));
  const lines = checks.map((c) => {
    const mark = c.ok ? "✓" : c.severity === "error" ? "✗" : "!";
    const fix = !c.ok && c.fix ? `\n  ${" ".repeat(width)}  fix: ${c.fix}` : "";
    return `${mark} ${c.name.padEnd(width)}  ${c.detail}${fix}`;
  });
  await write(ctx.io.stdout, `${lines.join("\n")}\n`);
  note(ctx, failed ? "\nstasis cannot run here until the ✗ checks pass." : "\nready: stasis serve");
  return failed ? 1 : 0;
}

/** Builds a built-in template (base) into the data directory on this host, without a daemon. */
export async function templateBuildBuiltin(cmd: CommandOf<"template.build.builtin">, ctx: Context): Promise<number> {
  applyEnv(ctx, { STASIS_DATA_DIR: cmd.dataDir });
  const { loadConfig, TemplateStore } = await daemon("template build --builtin");
  // The daemon's config decides where templates live (<dataDir>/templates unless STASIS_TEMPLATES_DIR).
  const store = new TemplateStore(loadConfig(ctx.env).templatesDir);
  const manifest = await store.build(cmd.name, { force: cmd.force, progress: (line) => note(ctx, line) });
  if (ctx.json) await printJson(ctx, manifest);
  return 0;
}

/** The command line as a user would type it again (the report names it). */
function benchCommandLine(cmd: CommandOf<"bench">, env: NodeJS.ProcessEnv): string {
  const args = [
    ...(cmd.quick ? ["--quick"] : []),
    // A section run in part is named by its parts.
    ...(cmd.sections ? ["--sections", cmd.sections.flatMap((s) => (cmd.parts?.some((p) => p.startsWith(`${s}:`)) ? cmd.parts.filter((p) => p.startsWith(`${s}:`)) : [s])).join(",")] : []),
    ...(cmd.out ? ["--out", cmd.out] : []),
    ...(cmd.compare ? ["--compare", cmd.compare] : []),
  ].join(" ");
  // scripts/bench.sh runs this CLI for `npm run bench`; npm marks its child processes so.
  if (env.npm_lifecycle_event === "bench") return `sudo npm run bench${args ? ` -- ${args}` : ""}`;
  return `sudo stasis bench${args ? ` ${args}` : ""}`;
}

export async function bench(cmd: CommandOf<"bench">, ctx: Context): Promise<number> {
  const b = await benchmark();
  if (cmd.compare && cmd.compareTo) {
    const rows = b.compareResults(b.readResult(cmd.compare), b.readResult(cmd.compareTo));
    if (ctx.json) await printJson(ctx, rows);
    else await write(ctx.io.stdout, b.renderComparison(rows, cmd.compare, cmd.compareTo));
    return 0;
  }
  const { result, exitCode } = await b.runBench({
    quick: cmd.quick,
    ...(cmd.sections ? { sections: cmd.sections } : {}),
    ...(cmd.parts ? { parts: cmd.parts } : {}),
    ...(cmd.out ? { outDir: cmd.out } : {}),
    ...(cmd.compare ? { compare: cmd.compare } : {}),
    // The bench's daemon is `stasis serve` of this same CLI.
    cliPath: fileURLToPath(new URL("../main.js", import.meta.url)),
    templatesDir: ctx.env.STASIS_TEMPLATES_DIR ?? join(ctx.env.STASIS_DATA_DIR ?? "/var/lib/stasis", "templates"),
    command: benchCommandLine(cmd, ctx.env),
    log: (line) => note(ctx, line),
    print: (text) => (ctx.json ? undefined : void ctx.io.stdout.write(text)),
  });
  if (ctx.json) await printJson(ctx, result);
  return exitCode;
}
