import { readFileSync } from "node:fs";
import type { Command } from "./command.js";
import * as code from "./commands/code.js";
import * as e2b from "./commands/e2b.js";
import * as execCommands from "./commands/exec.js";
import * as shellCommand from "./commands/shell.js";
import * as files from "./commands/files.js";
import * as hosting from "./commands/hosting.js";
import * as local from "./commands/local.js";
import * as mcpCommand from "./commands/mcp.js";
import * as processes from "./commands/processes.js";
import * as preview from "./commands/preview.js";
import * as sandboxes from "./commands/sandboxes.js";
import * as secrets from "./commands/secrets.js";
import * as templates from "./commands/templates.js";
import { helpText } from "./help.js";
import { errorLine, write, type Context, type Io } from "./output.js";
import { parseCommandLine } from "./parse.js";
import { UsageError } from "./usage-error.js";

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

async function dispatch(command: Command, ctx: Context): Promise<number> {
  switch (command.kind) {
    case "help":
      await write(ctx.io.stdout, `${helpText(command.topic)}\n`);
      return 0;
    case "version":
      await write(ctx.io.stdout, `stasis ${version()}\n`);
      return 0;
    case "serve":
      return local.serve(command, ctx);
    case "doctor":
      return local.doctor(command, ctx);
    case "template.build.builtin":
      return local.templateBuildBuiltin(command, ctx);
    case "template.build":
      return templates.build(command, ctx);
    case "template.import":
      return templates.importImage(command, ctx);
    case "template.list":
      return templates.list(command, ctx);
    case "template.get":
      return templates.get(command, ctx);
    case "template.set":
      return templates.set(command, ctx);
    case "template.rm":
      return templates.rm(command, ctx);
    case "bench":
      return local.bench(command, ctx);
    case "sandbox.create":
      return sandboxes.create(command, ctx);
    case "sandbox.list":
      return sandboxes.list(command, ctx);
    case "sandbox.get":
      return sandboxes.get(command, ctx);
    case "sandbox.kill":
      return sandboxes.kill(command, ctx);
    case "sandbox.pause":
    case "sandbox.hibernate":
    case "sandbox.resume":
      return sandboxes.setStandby(command, ctx);
    case "sandbox.fork":
      return sandboxes.fork(command, ctx);
    case "sandbox.standby":
      return sandboxes.standby(command, ctx);
    case "sandbox.network":
      return sandboxes.network(command, ctx);
    case "sandbox.url":
    case "sandbox.ports":
    case "sandbox.preview":
      return preview.run(command, ctx);
    case "domain.add":
    case "domain.list":
    case "domain.rm":
      return hosting.domains(command, ctx);
    case "port-forward":
      return hosting.portForward(command, ctx);
    case "sandbox.timeout":
      return sandboxes.setTimeout(command, ctx);
    case "exec":
      return execCommands.exec(command, ctx);
    case "run-code":
      return code.runCode(command, ctx);
    case "shell":
      return shellCommand.shell(command, ctx);
    case "files.put":
      return files.put(command, ctx);
    case "files.get":
      return files.get(command, ctx);
    case "files.ls":
      return files.ls(command, ctx);
    case "files.rm":
      return files.rm(command, ctx);
    case "files.mkdir":
      return files.mkdir(command, ctx);
    case "ps":
      return processes.ps(command, ctx);
    case "kill-process":
      return processes.killProcess(command, ctx);
    case "e2b.key.create":
      return e2b.keyCreate(command, ctx);
    case "e2b.key.list":
      return e2b.keyList(command, ctx);
    case "e2b.key.revoke":
      return e2b.keyRevoke(command, ctx);
    case "secret.set":
      return secrets.set(command, ctx);
    case "secret.list":
      return secrets.list(command, ctx);
    case "secret.rm":
      return secrets.rm(command, ctx);
    case "mcp":
      return mcpCommand.mcp(command, ctx);
  }
}

/** Runs one command line and returns the exit code: 0 ok, 1 error, or the remote command's code for exec. */
export async function run(argv: readonly string[], io: Io, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  try {
    const { global, command } = parseCommandLine(argv);
    const conn = { ...(global.apiUrl ? { apiUrl: global.apiUrl } : {}), ...(global.apiKey ? { apiKey: global.apiKey } : {}) };
    return await dispatch(command, { io, json: global.json, conn, env });
  } catch (err) {
    io.stderr.write(`${errorLine(err)}\n`);
    if (err instanceof UsageError) io.stderr.write(`see 'stasis ${[...err.topic, "--help"].join(" ")}'\n`);
    return 1;
  }
}
