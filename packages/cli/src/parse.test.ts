import { describe, expect, it } from "vitest";
import { parseCommandLine } from "./parse.js";
import { UsageError } from "./usage-error.js";

const parse = (line: string | string[]) => parseCommandLine(typeof line === "string" ? line.split(" ").filter(Boolean) : line);
const command = (line: string | string[]) => parse(line).command;

function usageError(line: string | string[]): UsageError {
  try {
    parse(line);
  } catch (err) {
    if (err instanceof UsageError) return err;
    throw err;
  }
  throw new Error(`expected a usage error for ${String(line)}`);
}

describe("parseCommandLine", () => {
  it("reads global flags before or after the command", () => {
    expect(parse("--api-url http://h:1 --json sandbox list")).toEqual({
      global: { apiUrl: "http://h:1", json: true },
      command: { kind: "sandbox.list", state: undefined, metadata: {} },
    });
    expect(parse("sandbox list --api-key=sk --json").global).toEqual({ apiKey: "sk", json: true });
    expect(parse("sandbox get sbx_1").global).toEqual({ json: false });
  });

  it("parses serve flags", () => {
    expect(command("serve --host 0.0.0.0 --port 8080 --data-dir /d --runtime crun")).toEqual({ kind: "serve", host: "0.0.0.0", port: 8080, dataDir: "/d", runtime: "crun" });
    expect(command("serve")).toEqual({ kind: "serve", host: undefined, port: undefined, dataDir: undefined, runtime: undefined });
    expect(usageError("serve --runtime kvm").message).toMatch(/--runtime must be one of gvisor, crun/);
    expect(usageError("serve --port x").topic).toEqual(["serve"]);
  });

  it("parses mcp, with the connection flags and no arguments", () => {
    expect(parse("mcp --api-url http://h:1 --api-key k")).toEqual({ global: { apiUrl: "http://h:1", apiKey: "k", json: false }, command: { kind: "mcp" } });
    expect(usageError("mcp extra").message).toContain("too many arguments");
  });

  it("parses doctor", () => {
    expect(command("doctor --json")).toEqual({ kind: "doctor", dataDir: undefined });
  });

  describe("template", () => {
    it("parses a daemon build, DIR defaulting to .", () => {
      expect(command("template build --name py")).toEqual({ kind: "template.build", context: ".", name: "py", noCache: false, resources: {} });
      expect(command("template build ./app --name py -f ci/Dockerfile --no-cache --snapshot --cpu 0.5 --memory 1024 --disk 8192 --pool 2")).toEqual({
        kind: "template.build",
        context: "./app",
        name: "py",
        file: "ci/Dockerfile",
        noCache: true,
        snapshot: true,
        resources: { cpu: 0.5, memoryMiB: 1024, diskMiB: 8192, pool: 2 },
      });
      expect(command("template build --name py --no-snapshot --file stasis.yaml")).toMatchObject({ snapshot: false, file: "stasis.yaml" });
    });

    it("rejects a daemon build without a valid name or with contradicting flags", () => {
      expect(usageError("template build .").message).toMatch(/missing --name.*--builtin base/);
      expect(usageError("template build . --name Py").message).toMatch(/--name must be lowercase/);
      expect(usageError("template build --name py --snapshot --no-snapshot").message).toMatch(/contradict/);
      expect(usageError("template build --name py --force").message).toBe("--force goes with --builtin");
      expect(usageError("template build --name py --pool -1").topic).toEqual(["template", "build"]);
      expect(usageError("template build a b --name py").message).toMatch(/too many arguments/);
    });

    it("keeps the local build of a built-in template behind --builtin", () => {
      expect(command("template build --builtin")).toEqual({ kind: "template.build.builtin", name: "base", force: false, dataDir: undefined });
      expect(command("template build --builtin base --force --data-dir /d")).toEqual({ kind: "template.build.builtin", name: "base", force: true, dataDir: "/d" });
      expect(usageError("template build --builtin --name py").message).toBe("--name is for daemon builds, not --builtin");
      expect(usageError("template build --builtin --no-cache").message).toMatch(/--no-cache is for daemon builds/);
    });

    it("parses import", () => {
      expect(command("template import py ./py.tar")).toEqual({ kind: "template.import", name: "py", archive: "./py.tar", resources: {} });
      expect(command("template import py ./layout --image python:3.12 --pool 1 --memory 2048")).toEqual({
        kind: "template.import",
        name: "py",
        archive: "./layout",
        image: "python:3.12",
        resources: { pool: 1, memoryMiB: 2048 },
      });
      expect(usageError("template import py").message).toMatch(/missing arguments/);
      expect(usageError("template import PY x.tar").message).toMatch(/NAME must be lowercase/);
    });

    it("parses list, get, set and rm (alias delete)", () => {
      expect(command("template list --json")).toEqual({ kind: "template.list" });
      expect(command("template get py:3")).toEqual({ kind: "template.get", ref: "py:3" });
      expect(command("template set py --pool 4 --cpu 2")).toEqual({ kind: "template.set", ref: "py", resources: { pool: 4, cpu: 2 } });
      expect(command("template rm py:1 py:2")).toEqual({ kind: "template.rm", refs: ["py:1", "py:2"] });
      expect(command("template delete py")).toEqual({ kind: "template.rm", refs: ["py"] });
      expect(command("template delete --help")).toEqual({ kind: "help", topic: ["template", "rm"] });
      expect(usageError("template set py").message).toMatch(/nothing to change/);
      expect(usageError("template get py:0").message).toMatch(/not a template reference/);
      expect(usageError("template rm").topic).toEqual(["template", "rm"]);
      expect(usageError("template list --data-dir /x").message).toMatch(/--data-dir/);
    });
  });

  it("parses sandbox create into a request with only the given fields", () => {
    expect(command("sandbox create")).toEqual({ kind: "sandbox.create", request: {} });
    expect(command("sandbox create --template py --runtime crun --cpu 0.5 --memory 1024 --disk 2048 --timeout 10m -e A=1 --env B=x=y --meta team=ml")).toEqual({
      kind: "sandbox.create",
      request: { template: "py", runtime: "crun", cpu: 0.5, memoryMiB: 1024, diskMiB: 2048, timeoutMs: 600_000, env: { A: "1", B: "x=y" }, metadata: { team: "ml" } },
    });
    // A template version, and no resource defaults: the daemon takes the template's.
    expect(command("sandbox create --template py:3")).toEqual({ kind: "sandbox.create", request: { template: "py:3" } });
    expect(usageError("sandbox create --memory 1.5").message).toMatch(/integer/);
    expect(usageError("sandbox create --env NOVALUE").message).toMatch(/KEY=VALUE/);
    expect(usageError("sandbox create --timeout soon").topic).toEqual(["sandbox", "create"]);
  });

  it("parses standby flags of sandbox create", () => {
    expect(command("sandbox create --idle-timeout 30s --hibernate-after off --on-timeout kill")).toEqual({
      kind: "sandbox.create",
      request: { idleTimeoutMs: 30_000, hibernateAfterMs: 0, onTimeout: "kill" },
    });
    expect(command("sandbox create --idle-timeout 0")).toEqual({ kind: "sandbox.create", request: { idleTimeoutMs: 0 } });
    expect(usageError("sandbox create --on-timeout stop").message).toMatch(/--on-timeout must be one of standby, kill/);
    expect(usageError("sandbox create --hibernate-after later").topic).toEqual(["sandbox", "create"]);
  });

  it("parses the other sandbox commands", () => {
    expect(command("sandbox list --state running --meta a=b --meta c=d")).toEqual({ kind: "sandbox.list", state: "running", metadata: { a: "b", c: "d" } });
    expect(command("sandbox get sbx_1")).toEqual({ kind: "sandbox.get", id: "sbx_1" });
    expect(command("sandbox kill sbx_1 sbx_2")).toEqual({ kind: "sandbox.kill", ids: ["sbx_1", "sbx_2"] });
    expect(command("sandbox timeout sbx_1 90s")).toEqual({ kind: "sandbox.timeout", id: "sbx_1", timeoutMs: 90_000 });
    expect(command("sandbox timeout sbx_1 1500")).toEqual({ kind: "sandbox.timeout", id: "sbx_1", timeoutMs: 1500 });
    expect(command("sandbox list --state hibernated")).toMatchObject({ state: "hibernated" });
    expect(usageError("sandbox kill").message).toMatch(/missing arguments/);
    expect(usageError("sandbox get a b").message).toMatch(/too many arguments/);
    expect(usageError("sandbox list --state sleeping").message).toMatch(/--state/);
  });

  it("parses the standby and fork commands", () => {
    expect(command("sandbox pause sbx_1 sbx_2")).toEqual({ kind: "sandbox.pause", ids: ["sbx_1", "sbx_2"] });
    expect(command("sandbox hibernate sbx_1 sbx_2")).toEqual({ kind: "sandbox.hibernate", ids: ["sbx_1", "sbx_2"] });
    expect(command("sandbox resume sbx_1")).toEqual({ kind: "sandbox.resume", ids: ["sbx_1"] });
    expect(command("sandbox fork sbx_1")).toEqual({ kind: "sandbox.fork", id: "sbx_1", count: 1 });
    expect(command("sandbox fork sbx_1 --count 3")).toEqual({ kind: "sandbox.fork", id: "sbx_1", count: 3 });
    expect(command("sandbox standby sbx_1 --idle-timeout off --hibernate-after 1h --on-timeout standby")).toEqual({
      kind: "sandbox.standby",
      id: "sbx_1",
      policy: { idleTimeoutMs: 0, hibernateAfterMs: 3_600_000, onTimeout: "standby" },
    });
    expect(command("sandbox standby sbx_1 --hibernate-after 0")).toEqual({ kind: "sandbox.standby", id: "sbx_1", policy: { hibernateAfterMs: 0 } });
    expect(usageError("sandbox hibernate").message).toMatch(/missing arguments/);
    expect(usageError("sandbox fork sbx_1 --count 0").message).toMatch(/--count/);
    expect(usageError("sandbox fork sbx_1 sbx_2").message).toMatch(/too many arguments/);
    const nothing = usageError("sandbox standby sbx_1");
    expect(nothing.message).toMatch(/nothing to change/);
    expect(nothing.topic).toEqual(["sandbox", "standby"]);
    expect(usageError("sandbox standby sbx_1 --on-timeout pause").message).toMatch(/--on-timeout/);
  });

  describe("run-code", () => {
    it("takes the language, a context, env, a timeout and the code (stdin without -c)", () => {
      expect(command("run-code sbx_1 -l javascript -e A=1 --timeout 30s")).toEqual({ kind: "run-code", id: "sbx_1", language: "javascript", env: { A: "1" }, timeoutMs: 30_000 });
      expect(command(["run-code", "sbx_1", "--context", "6a0c212b-c430-4809-a2e8-eacc07f25e6c", "-c", "x + 1"])).toEqual({ kind: "run-code", id: "sbx_1", context: "6a0c212b-c430-4809-a2e8-eacc07f25e6c", code: "x + 1", env: {} });
    });
    it("refuses an unknown language, a malformed context id, and both together", () => {
      expect(usageError("run-code sbx_1 -l cobol").message).toMatch(/python, javascript, typescript, bash/);
      expect(usageError("run-code sbx_1 --context nope").message).toMatch(/not a context id/);
      expect(usageError("run-code sbx_1 -l python --context 6a0c212b-c430-4809-a2e8-eacc07f25e6c").message).toMatch(/not both/);
    });
  });

  describe("shell", () => {
    it("opens a new terminal, or re-attaches by --pid", () => {
      expect(command(["shell", "sbx_1"])).toEqual({ kind: "shell", id: "sbx_1", pid: undefined, cwd: undefined, user: undefined });
      expect(command(["shell", "sbx_1", "--pid", "38", "--user", "user", "--cwd", "/tmp"])).toEqual({ kind: "shell", id: "sbx_1", pid: 38, cwd: "/tmp", user: "user" });
      expect(() => command(["shell", "sbx_1", "--pid", "x"])).toThrow(/--pid/);
      expect(() => command(["shell"])).toThrow(/missing arguments/);
    });
  });

  describe("exec", () => {
    it("runs several words after -- as argv, untouched", () => {
      expect(command("exec sbx_1 --cwd /w --user user -e A=1 --timeout 5s -- ls -la --json")).toEqual({
        kind: "exec",
        id: "sbx_1",
        cmd: ["ls", "-la", "--json"],
        cwd: "/w",
        user: "user",
        env: { A: "1" },
        timeoutMs: 5000,
        stdin: false,
      });
    });

    it("runs one word with spaces or shell syntax via the shell", () => {
      expect(command(["exec", "sbx_1", "--", "ls -la | wc -l"])).toMatchObject({ cmd: "ls -la | wc -l" });
      expect(command(["exec", "sbx_1", "--", "echo $HOME"])).toMatchObject({ cmd: "echo $HOME" });
      expect(command(["exec", "sbx_1", "--", "hostname"])).toMatchObject({ cmd: ["hostname"] });
    });

    it("accepts the command without -- and flags after the id", () => {
      expect(command("exec sbx_1 uname")).toMatchObject({ id: "sbx_1", cmd: ["uname"] });
      expect(command("exec sbx_1 --stdin cat")).toMatchObject({ id: "sbx_1", cmd: ["cat"], stdin: true });
      expect(command("exec -i sbx_1 -- cat")).toMatchObject({ id: "sbx_1", cmd: ["cat"], stdin: true });
    });

    it("does not treat --help after -- as a request for help", () => {
      expect(command("exec sbx_1 -- python3 --help")).toMatchObject({ kind: "exec", cmd: ["python3", "--help"] });
    });

    it("rejects a missing command or stray words before --", () => {
      expect(usageError("exec sbx_1").message).toMatch(/missing command/);
      expect(usageError("exec sbx_1 --").message).toMatch(/missing command/);
      expect(usageError("exec sbx_1 extra -- ls").message).toMatch(/before --/);
      expect(usageError("exec").topic).toEqual(["exec"]);
    });
  });

  it("parses files commands", () => {
    expect(command("files put sbx_1 ./a.txt /tmp/a.txt --mode 600")).toEqual({ kind: "files.put", id: "sbx_1", local: "./a.txt", remote: "/tmp/a.txt", mode: "600" });
    expect(command("files put sbx_1 - /tmp/a")).toMatchObject({ local: "-" });
    expect(command("files get sbx_1 /tmp/a")).toEqual({ kind: "files.get", id: "sbx_1", remote: "/tmp/a", local: "-" });
    expect(command("files get sbx_1 /tmp/a ./a")).toMatchObject({ local: "./a" });
    expect(command("files ls sbx_1 /tmp --depth 3")).toEqual({ kind: "files.ls", id: "sbx_1", path: "/tmp", depth: 3 });
    expect(command("files ls sbx_1 /tmp")).toMatchObject({ depth: 1 });
    expect(command("files rm sbx_1 /tmp/d -r")).toEqual({ kind: "files.rm", id: "sbx_1", path: "/tmp/d", recursive: true });
    expect(command("files rm sbx_1 /tmp/f")).toMatchObject({ recursive: false });
    expect(command("files mkdir sbx_1 /tmp/d")).toEqual({ kind: "files.mkdir", id: "sbx_1", path: "/tmp/d" });
    expect(usageError("files ls sbx_1 /tmp --depth 0").message).toMatch(/--depth/);
  });

  it("parses process commands", () => {
    expect(command("ps sbx_1")).toEqual({ kind: "ps", id: "sbx_1" });
    expect(command("kill-process sbx_1 42")).toEqual({ kind: "kill-process", id: "sbx_1", pid: 42, signal: "SIGKILL" });
    expect(command("kill-process sbx_1 42 --signal term")).toMatchObject({ signal: "SIGTERM" });
    expect(command("kill-process sbx_1 42 --signal SIGINT")).toMatchObject({ signal: "SIGINT" });
    expect(usageError("kill-process sbx_1 x").message).toMatch(/PID/);
    expect(usageError("kill-process sbx_1 1 --signal SIGSEGV").message).toMatch(/--signal/);
  });

  it("parses the e2b key commands", () => {
    expect(command("e2b key create")).toEqual({ kind: "e2b.key.create", name: undefined });
    expect(command("e2b key create --name ci --json")).toEqual({ kind: "e2b.key.create", name: "ci" });
    expect(parse("--json e2b key list").command).toEqual({ kind: "e2b.key.list" });
    expect(command("e2b key revoke ek_000000000001 ek_000000000002")).toEqual({ kind: "e2b.key.revoke", ids: ["ek_000000000001", "ek_000000000002"] });
    expect(usageError("e2b key revoke").topic).toEqual(["e2b", "key", "revoke"]);
    expect(usageError("e2b key list extra").message).toMatch(/too many arguments/);
    expect(usageError("e2b key create --name").topic).toEqual(["e2b", "key", "create"]);
  });

  it("parses bench flags", () => {
    expect(command("bench")).toEqual({ kind: "bench", quick: false });
    expect(command("bench --quick --sections exec,paused --out /tmp/r --compare old.json")).toEqual({
      kind: "bench",
      quick: true,
      sections: ["exec", "paused"],
      out: "/tmp/r",
      compare: "old.json",
    });
    expect(command("bench --compare a.json --to b.json")).toEqual({ kind: "bench", quick: false, compare: "a.json", compareTo: "b.json" });
    expect(usageError("bench --sections exec,warp").message).toMatch(/--sections must be one of create, (templates, )?exec/);
    expect(usageError("bench --sections ,").message).toMatch(/at least one section/);
    expect(command("bench --sections create:cold,paused")).toEqual({ kind: "bench", quick: false, sections: ["create", "paused"], parts: ["create:cold"] });
    expect(command("bench --sections create:cold,create:snapshot")).toEqual({ kind: "bench", quick: false, sections: ["create"], parts: ["create:cold", "create:snapshot"] });
    expect(usageError("bench --sections create:warm").message).toMatch(/create has the parts cold, warm-pool, snapshot/);
    expect(usageError("bench --sections exec:api").message).toMatch(/exec has no parts/);
    expect(usageError("bench --to b.json").message).toMatch(/--to needs --compare/);
    expect(usageError("bench extra").topic).toEqual(["bench"]);
  });

  it("turns --help anywhere before -- into a help request for that topic", () => {
    expect(command("--help")).toEqual({ kind: "help", topic: [] });
    expect(command("help")).toEqual({ kind: "help", topic: [] });
    expect(command("help sandbox create")).toEqual({ kind: "help", topic: ["sandbox", "create"] });
    expect(command("sandbox --help")).toEqual({ kind: "help", topic: ["sandbox"] });
    expect(command("sandbox create -h")).toEqual({ kind: "help", topic: ["sandbox", "create"] });
    expect(command("exec --help")).toEqual({ kind: "help", topic: ["exec"] });
    expect(command("--version")).toEqual({ kind: "version" });
    expect(command("e2b --help")).toEqual({ kind: "help", topic: ["e2b"] });
    expect(command("e2b key -h")).toEqual({ kind: "help", topic: ["e2b", "key"] });
    expect(command("e2b key create --help")).toEqual({ kind: "help", topic: ["e2b", "key", "create"] });
    expect(command("help e2b key")).toEqual({ kind: "help", topic: ["e2b", "key"] });
  });

  it("reports unknown commands and options with the help topic to read", () => {
    expect(usageError("").message).toBe("missing command");
    expect(usageError("launch").message).toMatch(/unknown command 'launch'/);
    expect(usageError("sandbox").topic).toEqual(["sandbox"]);
    expect(usageError("sandbox explode").topic).toEqual(["sandbox"]);
    expect(usageError("e2b").message).toBe("missing subcommand for 'e2b'");
    expect(usageError("e2b key").topic).toEqual(["e2b", "key"]);
    expect(usageError("e2b key rotate").topic).toEqual(["e2b", "key"]);
    expect(usageError("e2b keys").topic).toEqual(["e2b"]);
    expect(usageError("constructor").topic).toEqual([]);
    const err = usageError("sandbox list --colour");
    expect(err.message).toMatch(/--colour/);
    expect(err.topic).toEqual(["sandbox", "list"]);
  });
});
