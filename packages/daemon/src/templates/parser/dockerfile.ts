// The Dockerfile subset Stasis builds: instructions split and mapped to build steps.
import { EnvSchema } from "@stasis/protocol";
import { DEFAULT_PATH } from "../../runtime/oci-spec.js";
import { TemplateSpecError, type BaseImage, type BuildStep, type TemplateDefinition } from "../template-definition.js";
import { shellQuote } from "../shell-quote.js";
import { EXAMPLE_FROM, parseBaseImage } from "./base-image.js";
import { checkCopy, checkSize, ENV_NAME_RE, MAX_STEPS, READY_TIMEOUT_MAX_MS, READY_TIMEOUT_MIN_MS, truncate, USER_RE } from "./checks.js";
import { expandWord, splitWords } from "./shell-words.js";

interface Instruction {
  /** Upper-cased. */
  keyword: string;
  /** As written. */
  word: string;
  /** Arguments with continuations joined as Docker joins them (backslash-newline removed). */
  args: string;
  /** For logs: continuation lines trimmed and joined by a space. */
  text: string;
  line: number;
}

type CommandForm = { exec: string[] } | { shell: string };

export interface DockerfileOptions {
  /**
   * Variables ENV, WORKDIR, USER and COPY may refer to before any ENV sets them: the base's environment.
   * Default: PATH as sandboxes get it, so `ENV PATH=/opt/bin:$PATH` works.
   */
  baseEnv?: Record<string, string>;
}

/** Parses the Dockerfile subset Stasis builds: one stage, no ARG, no registries. */
export function parseDockerfile(text: string, options: DockerfileOptions = {}): TemplateDefinition {
  text = checkSize(text);
  const env: Record<string, string> = { PATH: DEFAULT_PATH, ...options.baseEnv };
  const steps: BuildStep[] = [];
  let from: BaseImage | null = null;
  let fromLine: number | null = null;
  let cmd: CommandForm | null = null;
  let entrypoint: CommandForm | null = null;
  let ready: string | null = null;
  let readyTimeoutMs: number | null = null;

  const add = (step: BuildStep): void => {
    if (steps.length >= MAX_STEPS) throw new TemplateSpecError(`too many steps: at most ${MAX_STEPS}; combine RUN commands`, step.line);
    steps.push(step);
  };

  for (const ins of splitInstructions(text)) {
    const { keyword, args, line } = ins;
    const stepText = truncate(ins.text);
    const fail = (message: string): never => {
      throw new TemplateSpecError(message, line);
    };
    if (!/^[A-Za-z]+$/.test(keyword)) {
      fail(`"${ins.word}" is not an instruction; if it continues the previous line, end that line with a backslash`);
    }
    if (keyword === "ARG") fail("ARG is not supported: build arguments can't be passed to a template build; set the value with ENV NAME=value instead");
    if (!KNOWN_INSTRUCTIONS.has(keyword)) fail(`unknown instruction ${keyword}`);
    if (from === null && keyword !== "FROM") fail(`the first instruction must be FROM (found ${keyword}), e.g. FROM ${EXAMPLE_FROM}`);
    if (args === "") fail(`${keyword} needs arguments`);

    switch (keyword) {
      case "FROM": {
        if (from !== null) fail(MULTI_STAGE);
        const words = args.split(/\s+/);
        const first = words[0] ?? "";
        if (first.startsWith("--")) {
          if (/^--platform(=|$)/i.test(first)) fail("FROM --platform is not supported: templates are built for the host's architecture; remove the flag");
          fail(`FROM ${first} is not supported`);
        }
        if (words.length === 3 && words[1]?.toLowerCase() === "as") fail(MULTI_STAGE);
        if (words.length !== 1) fail(`FROM takes a single base, e.g. FROM ${EXAMPLE_FROM}`);
        if (first.includes("$")) fail("variables are not supported in FROM (there is no ARG): write the base out");
        from = parseBaseImage(first, line);
        fromLine = line;
        break;
      }
      case "RUN": {
        const flag = /^--[A-Za-z-]+/.exec(args)?.[0];
        if (flag !== undefined) fail(`RUN ${flag} is not supported: remove it (a RUN step runs plainly in the build sandbox)`);
        const exec = execForm(args, "RUN", line, false);
        if (exec !== null) {
          if (exec.length === 0) fail("RUN [] has no command: name the program and its arguments");
          add({ kind: "run", command: exec, line, text: stepText });
        } else {
          if (hasHeredoc(args)) fail("heredocs (<<EOF) are not supported: put the script in a file, COPY it and RUN it, or use printf");
          add({ kind: "run", command: args, line, text: stepText });
        }
        break;
      }
      case "COPY":
      case "ADD":
        // ADD is COPY here: URLs are refused and a local tar is copied as is, not unpacked.
        add(dockerCopy(keyword, args, env, line, stepText));
        break;
      case "ENV": {
        const vars = parseEnvInstruction(args, env, line);
        const checked = EnvSchema.safeParse(vars);
        if (!checked.success) fail(`ENV: ${checked.error.issues[0]?.message ?? "invalid variables"}`);
        Object.assign(env, vars);
        add({ kind: "env", vars, line, text: stepText });
        break;
      }
      case "WORKDIR": {
        const path = expandWord(args, env, true, line).trim();
        if (path === "") fail("WORKDIR is empty after substituting variables: give a directory, e.g. WORKDIR /app");
        add({ kind: "workdir", path, line, text: stepText });
        break;
      }
      case "USER": {
        const user = expandWord(args, env, true, line).trim();
        if (!USER_RE.test(user)) fail(`USER "${user}" is not a user name or uid (optionally :group), e.g. USER user or USER 1000:1000`);
        add({ kind: "user", user, line, text: stepText });
        break;
      }
      case "CMD":
        cmd = commandForm(args, "CMD", line);
        break;
      case "ENTRYPOINT":
        entrypoint = commandForm(args, "ENTRYPOINT", line);
        break;
      case "HEALTHCHECK": {
        const health = parseHealthcheck(args, line);
        ready = health.ready;
        readyTimeoutMs = health.readyTimeoutMs;
        break;
      }
      case "EXPOSE":
      case "LABEL":
      case "MAINTAINER":
      case "STOPSIGNAL":
        break; // metadata with no meaning for a sandbox
      case "SHELL":
        fail('SHELL is not supported: RUN always uses /bin/sh -c; for bash, write RUN ["bash", "-c", "..."] or RUN bash -c \'...\'');
        break;
      case "VOLUME":
        fail("VOLUME is not supported: a sandbox's whole filesystem persists already; remove it");
        break;
      case "ONBUILD":
        fail("ONBUILD is not supported: put the instructions in the templates that build on this one");
        break;
      default:
        fail(`unknown instruction ${keyword}`);
    }
  }
  if (from === null) throw new TemplateSpecError(`the Dockerfile has no FROM: start it with e.g. FROM ${EXAMPLE_FROM}`, null);
  return {
    source: "dockerfile",
    name: null,
    from,
    fromLine,
    steps,
    start: startCommand(entrypoint, cmd),
    ready,
    readyTimeoutMs,
    resources: {},
    pool: null,
    snapshot: null,
    network: null,
  };
}

const KNOWN_INSTRUCTIONS = new Set(
  ["FROM", "RUN", "COPY", "ADD", "ENV", "WORKDIR", "USER", "CMD", "ENTRYPOINT", "HEALTHCHECK", "EXPOSE", "LABEL", "MAINTAINER", "STOPSIGNAL", "SHELL", "VOLUME", "ONBUILD"],
);

const MULTI_STAGE =
  "multi-stage builds are not supported: use one FROM (without AS) and build everything in this stage, or build the image with Docker, `docker save` it and load it with `stasis template import`";

/** Splits into instructions: comments and blank lines dropped, continuations joined (comment lines inside skipped, as Docker does). */
function splitInstructions(text: string): Instruction[] {
  const lines = text.split(/\r\n|\r|\n/);
  const out: Instruction[] = [];
  let i = 0;
  // Parser directives: `# name=value` lines at the very top.
  for (; i < lines.length; i++) {
    const m = /^#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=(.*)$/.exec(lines[i] ?? "");
    if (!m) break;
    if (m[1]?.toLowerCase() === "escape" && m[2]?.trim() !== "\\") {
      throw new TemplateSpecError("the escape directive is not supported: remove it and escape with a backslash", i + 1);
    }
  }
  const continues = /\\[ \t]*$/;
  while (i < lines.length) {
    const raw = lines[i] ?? "";
    const line = i + 1;
    i++;
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    // Only the last line read is tested for a continuation, to stay linear.
    const pieces = [raw.trimStart()];
    const parts = [trimmed];
    for (let last = pieces[0] as string; continues.test(last); ) {
      pieces[pieces.length - 1] = last.replace(continues, "");
      parts[parts.length - 1] = (parts[parts.length - 1] ?? "").replace(continues, "").trimEnd();
      // Skip comment and blank lines inside the continuation; stop at the end of the file.
      while (i < lines.length && /^\s*(#.*)?$/.test(lines[i] ?? "")) i++;
      if (i >= lines.length) break;
      last = lines[i] ?? "";
      i++;
      pieces.push(last);
      parts.push(last.trim());
    }
    const m = /^(\S+)\s*([\s\S]*)$/.exec(pieces.join("").trimStart());
    if (m === null) continue; // a lone backslash
    out.push({ keyword: (m[1] ?? "").toUpperCase(), word: m[1] ?? "", args: (m[2] ?? "").trim(), text: parts.filter((p) => p !== "").join(" "), line });
  }
  return out;
}

/** Docker's exec form: a JSON array of strings; null for shell form. */
function execForm(args: string, keyword: string, line: number, strict: boolean): string[] | null {
  if (!args.startsWith("[")) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    // RUN [ -f x ] is a shell test; elsewhere a bracketed argument is a broken exec form.
    if (!strict || !args.endsWith("]")) return null;
    throw new TemplateSpecError(`${keyword} ${args} is not valid JSON: write the exec form with double quotes, e.g. ${keyword} ["python3", "app.py"], or drop the brackets`, line);
  }
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === "string")) {
    throw new TemplateSpecError(`${keyword}: the exec form must be a JSON list of strings, e.g. ${keyword} ["python3", "app.py"]`, line);
  }
  return parsed as string[];
}

function commandForm(args: string, keyword: string, line: number): CommandForm {
  const exec = execForm(args, keyword, line, true);
  return exec === null ? { shell: args } : { exec };
}

/** As Docker: exec ENTRYPOINT gets CMD's arguments appended (a shell CMD as sh -c); shell ENTRYPOINT ignores CMD. */
function startCommand(entrypoint: CommandForm | null, cmd: CommandForm | null): string | null {
  const cmdArgs = cmd === null ? [] : "exec" in cmd ? cmd.exec : ["/bin/sh", "-c", cmd.shell];
  if (entrypoint !== null && "shell" in entrypoint) return entrypoint.shell;
  // ENTRYPOINT [] means none; CMD alone then runs as written.
  const entry = entrypoint === null ? [] : entrypoint.exec;
  if (entry.length === 0 && cmd !== null && "shell" in cmd) return cmd.shell;
  const argv = [...entry, ...cmdArgs];
  return argv.length === 0 ? null : argv.map(shellQuote).join(" ");
}

function hasHeredoc(args: string): boolean {
  return /(?:^|\s)\d*<<-?(["']?)[A-Za-z_][A-Za-z0-9_]*\1(?=\s|$)/.test(args);
}

function dockerCopy(keyword: "COPY" | "ADD", args: string, env: Record<string, string>, line: number, text: string): BuildStep {
  const fail = (message: string): never => {
    throw new TemplateSpecError(message, line);
  };
  let rest = args;
  let chown: string | null = null;
  for (let m = /^--([A-Za-z-]+)(?:=(\S*))?(?:\s+|$)/.exec(rest); m !== null; m = /^--([A-Za-z-]+)(?:=(\S*))?(?:\s+|$)/.exec(rest)) {
    rest = rest.slice(m[0].length);
    const flag = (m[1] ?? "").toLowerCase();
    const value = m[2];
    if (flag === "chown") {
      if (!value) fail(`${keyword} --chown needs a value, e.g. --chown=user or --chown=1000:1000`);
      chown = expandWord(value ?? "", env, true, line);
      if (!USER_RE.test(chown)) fail(`${keyword} --chown=${chown}: not a user name or uid (optionally :group)`);
    } else if (flag === "from") {
      fail(`${keyword} --from is not supported: ${MULTI_STAGE}`);
    } else if (flag === "chmod") {
      fail(`${keyword} --chmod is not supported: set modes with a RUN chmod step after the ${keyword}`);
    } else if (flag === "link") {
      fail(`${keyword} --link is not supported: remove it`);
    } else if (flag === "checksum") {
      fail(`ADD --checksum is not supported: ADD can't download here; fetch and verify the file in a RUN step, or put it in the build context`);
    } else {
      fail(`${keyword} --${flag} is not supported`);
    }
  }
  if (hasHeredoc(rest)) fail(`heredocs (<<EOF) are not supported in ${keyword}: put the content in a file in the build context`);
  const exec = execForm(rest, keyword, line, true);
  const words = exec === null ? splitWords(rest).map((w) => expandWord(w, env, true, line)) : exec.map((w) => expandWord(w, env, false, line));
  if (words.length < 2) fail(`${keyword} needs at least one source and a destination, e.g. ${keyword} app.py /app/`);
  const dest = words.pop() as string;
  if (keyword === "ADD") {
    const url = words.find((s) => /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(s) || s.startsWith("git@"));
    if (url !== undefined) {
      fail(`ADD ${url}: the build does not download with ADD; fetch it in a RUN step (e.g. RUN curl -fsSLo /path ${url}) or put it in the build context`);
    }
  }
  checkCopy(keyword, words, dest, line);
  return { kind: "copy", sources: words, dest, chown, line, text };
}

/** ENV NAME=value ... (values see the variables as they were before this ENV, as in Docker) or legacy ENV NAME value. */
function parseEnvInstruction(args: string, env: Record<string, string>, line: number): Record<string, string> {
  const words = splitWords(args);
  const vars: Record<string, string> = {};
  const checkName = (name: string): void => {
    if (!ENV_NAME_RE.test(name)) {
      throw new TemplateSpecError(`ENV: "${name}" is not a valid variable name: use letters, digits and '_', not starting with a digit`, line);
    }
  };
  if (!(words[0] ?? "").includes("=")) {
    const m = /^(\S+)\s+([\s\S]+)$/.exec(args);
    if (m === null) throw new TemplateSpecError(`ENV ${args} has no value: write ENV ${args}=value`, line);
    const name = m[1] as string;
    checkName(name);
    vars[name] = expandWord(m[2] as string, env, true, line);
    return vars;
  }
  for (const word of words) {
    const eq = word.indexOf("=");
    if (eq < 0) throw new TemplateSpecError(`ENV: "${word}" is not NAME=value; quote values that contain spaces, e.g. NAME="a b"`, line);
    const name = word.slice(0, eq);
    checkName(name);
    vars[name] = expandWord(word.slice(eq + 1), env, true, line);
  }
  return vars;
}

interface Health {
  ready: string | null;
  readyTimeoutMs: number | null;
}

/** HEALTHCHECK [--interval=D --timeout=D --start-period=D --start-interval=D --retries=N] CMD ... | NONE */
function parseHealthcheck(args: string, line: number): Health {
  if (/^none$/i.test(args)) return { ready: null, readyTimeoutMs: null };
  const fail = (message: string): never => {
    throw new TemplateSpecError(message, line);
  };
  let rest = args;
  const durations: Record<string, number> = {};
  let retries: number | null = null;
  for (let m = /^--([A-Za-z-]+)(?:=(\S*))?\s+/.exec(rest); m !== null; m = /^--([A-Za-z-]+)(?:=(\S*))?\s+/.exec(rest)) {
    rest = rest.slice(m[0].length);
    const flag = (m[1] ?? "").toLowerCase();
    const value = m[2] ?? "";
    if (flag === "retries") {
      if (!/^\d{1,6}$/.test(value)) fail(`HEALTHCHECK --retries=${value}: give a whole number`);
      retries = Number(value);
    } else if (["interval", "timeout", "start-period", "start-interval"].includes(flag)) {
      const ms = parseDuration(value);
      if (ms === null) fail(`HEALTHCHECK --${flag}=${value}: give a duration such as 30s, 1m30s or 500ms`);
      durations[flag] = ms as number;
    } else {
      fail(`HEALTHCHECK --${flag} is not a HEALTHCHECK option`);
    }
  }
  const m = /^cmd(?:\s+([\s\S]*))?$/i.exec(rest);
  if (m === null) fail("HEALTHCHECK needs CMD <command> or NONE, e.g. HEALTHCHECK CMD curl -fs http://localhost:8000/");
  const command = (m?.[1] ?? "").trim();
  if (command === "") fail("HEALTHCHECK CMD needs a command");
  const exec = execForm(command, "HEALTHCHECK CMD", line, true);
  if (exec !== null && exec.length === 0) fail("HEALTHCHECK CMD [] has no command");
  const ready = exec === null ? command : exec.map(shellQuote).join(" ");
  // Ready within the time Docker would take to call the container unhealthy: start period + retries × interval.
  let readyTimeoutMs: number | null = null;
  if (durations["start-period"] !== undefined || durations["interval"] !== undefined || retries !== null) {
    const total = (durations["start-period"] ?? 0) + (retries || 3) * (durations["interval"] || 30_000);
    readyTimeoutMs = Math.min(READY_TIMEOUT_MAX_MS, Math.max(READY_TIMEOUT_MIN_MS, Math.round(total)));
  }
  return { ready, readyTimeoutMs };
}

/** A Go duration (what Docker's flags take): 1h2m3.5s, 500ms; null when malformed. */
function parseDuration(value: string): number | null {
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(value)) return value === "0" ? 0 : null;
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  for (const m of value.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(m[1]) * (unit[m[2] as string] ?? 0);
  return total;
}
