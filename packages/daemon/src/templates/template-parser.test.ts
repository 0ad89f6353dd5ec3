import { describe, expect, it } from "vitest";
import { DEFAULT_PATH } from "../runtime/oci-spec.js";
import { TemplateSpecError, type BuildStep, type TemplateDefinition } from "./template-definition.js";
import {
  DEFAULT_SPEC_FILES,
  expandWord,
  formatBaseImage,
  MAX_SPEC_BYTES,
  parseBaseImage,
  parseDockerfile,
  parseSpec,
  parseTemplateFile,
  shellQuote,
  templateFileKind,
} from "./template-parser.js";

/** The TemplateSpecError `fn` throws. */
function specError(fn: () => unknown): TemplateSpecError {
  try {
    fn();
  } catch (err) {
    if (err instanceof TemplateSpecError) return err;
    throw new Error(`expected a TemplateSpecError, got ${String(err)}`);
  }
  throw new Error("expected a TemplateSpecError, nothing was thrown");
}

function expectError(fn: () => unknown, message: RegExp | string, line: number | null): TemplateSpecError {
  const err = specError(fn);
  if (typeof message === "string") expect(err.message).toContain(message);
  else expect(err.message).toMatch(message);
  expect(err.line).toBe(line);
  return err;
}

const df = (...lines: string[]): TemplateDefinition => parseDockerfile(lines.join("\n"));
const dfError = (message: RegExp | string, line: number | null, ...lines: string[]): TemplateSpecError =>
  expectError(() => parseDockerfile(lines.join("\n")), message, line);
const yaml = (...lines: string[]): TemplateDefinition => parseSpec(lines.join("\n"), "yaml");
const yamlError = (message: RegExp | string, line: number | null, ...lines: string[]): TemplateSpecError =>
  expectError(() => parseSpec(lines.join("\n"), "yaml"), message, line);
const step = (def: TemplateDefinition, i: number): BuildStep => {
  const s = def.steps[i];
  if (s === undefined) throw new Error(`no step ${i}`);
  return s;
};

describe("parseTemplateFile", () => {
  it("picks the parser by file name", () => {
    expect(parseTemplateFile("stasis.yaml", "from: base").source).toBe("spec");
    expect(parseTemplateFile("dir/x.yml", "from: base").source).toBe("spec");
    expect(parseTemplateFile("spec.json", '{"from": "base"}').source).toBe("spec");
    for (const name of ["Dockerfile", "app.Dockerfile", "Dockerfile.dev", "Containerfile", "sub/dir/Dockerfile", "dockerfile"]) {
      expect(parseTemplateFile(name, "FROM base").source).toBe("dockerfile");
    }
  });

  it("parses JSON strictly in a .json file", () => {
    expectError(() => parseTemplateFile("spec.json", "from: base"), "not valid JSON", null);
  });

  it("rejects a name it can't place", () => {
    for (const name of ["spec.txt", "Makefile", "Dockerfiles", "docker-compose"]) {
      expectError(() => parseTemplateFile(name, "FROM base"), `can't tell what "${name}" is`, null);
    }
  });

  it("knows the kinds and default names", () => {
    expect(templateFileKind("a.YAML")).toBe("yaml");
    expect(templateFileKind("Dockerfile.yaml")).toBe("yaml");
    expect(templateFileKind("x.containerfile")).toBe("dockerfile");
    expect(templateFileKind("README")).toBeNull();
    expect(DEFAULT_SPEC_FILES).toEqual(["stasis.yaml", "stasis.yml", "stasis.json", "Dockerfile"]);
    for (const name of DEFAULT_SPEC_FILES) expect(templateFileKind(name)).not.toBeNull();
  });

  it("rejects binary files", () => {
    expectError(() => parseTemplateFile("Dockerfile", "FROM base\nRUN a\0b"), "NUL byte", 2);
    expectError(() => parseTemplateFile("s.yaml", "from: base\0"), "NUL byte", 1);
  });

  it("rejects files over 1 MiB", () => {
    const big = `FROM base\n${"# padding\n".repeat(MAX_SPEC_BYTES / 10 + 1)}`;
    expectError(() => parseTemplateFile("Dockerfile", big), "larger than 1 MiB", null);
    expectError(() => parseTemplateFile("s.yaml", `from: base\n#${"é".repeat(MAX_SPEC_BYTES / 2)}`), "larger than 1 MiB", null);
  });
});

describe("parseBaseImage", () => {
  it("maps Debian names to a suite", () => {
    const cases: Record<string, string> = {
      debian: "bookworm",
      "debian:bookworm": "bookworm",
      "debian:bookworm-slim": "bookworm",
      "debian:12": "bookworm",
      "debian:12-slim": "bookworm",
      "debian:12.7": "bookworm",
      "debian:trixie": "trixie",
      "debian:13": "trixie",
      "debian:trixie-slim": "trixie",
      bookworm: "bookworm",
      "trixie-slim": "trixie",
    };
    for (const [image, suite] of Object.entries(cases)) expect(parseBaseImage(image)).toEqual({ kind: "debian", suite });
  });

  it("maps template refs", () => {
    expect(parseBaseImage("base")).toEqual({ kind: "template", ref: "base" });
    expect(parseBaseImage("myapp:3")).toEqual({ kind: "template", ref: "myapp:3" });
    expect(parseBaseImage("template:myapp")).toEqual({ kind: "template", ref: "myapp" });
    expect(parseBaseImage("template:my-app.v2:12")).toEqual({ kind: "template", ref: "my-app.v2:12" });
  });

  it("refers to registries and import for images it can't pull", () => {
    for (const image of ["ubuntu:22.04", "python:3.12", "docker.io/library/debian:bookworm", "ghcr.io/x/y:latest", "node:lts", "debian@sha256:abc", "MyApp"]) {
      const err = expectError(() => parseBaseImage(image, 4), "registries", 4);
      expect(err.message).toContain("stasis template import");
      expect(err.message).toContain("docker save");
      expect(err.message).toContain("debian:bookworm");
    }
  });

  it("rejects unknown Debian releases, scratch, bad template refs and empty names", () => {
    expectError(() => parseBaseImage("debian:bullseye"), 'Debian "bullseye" is not supported: use debian:bookworm (12) or debian:trixie (13)', null);
    expectError(() => parseBaseImage("debian:11"), "not supported", null);
    expectError(() => parseBaseImage("debian:stable-slim"), "not supported", null);
    const scratch = expectError(() => parseBaseImage("scratch"), '"scratch" is not supported', null);
    expect(scratch.message).toContain("stasis template import");
    expectError(() => parseBaseImage("template:My App"), "does not name a template", null);
    expectError(() => parseBaseImage("template:x:0"), "does not name a template", null);
    expectError(() => parseBaseImage(" "), "empty", null);
  });

  it("formats a base back", () => {
    expect(formatBaseImage({ kind: "debian", suite: "trixie" })).toBe("debian:trixie");
    expect(formatBaseImage({ kind: "template", ref: "x:2" })).toBe("x:2");
  });
});

describe("parseSpec (YAML)", () => {
  const full = [
    "# a comment", // 1
    "name: data-agent", // 2
    "from: debian:bookworm", // 3
    "packages: [python3-flask, curl]", // 4
    "env: { APP_ENV: prod, PORT: 8000, DEBUG: false }", // 5
    "workdir: /app", // 6
    "steps:", // 7
    "  - run: pip install x", // 8
    "  - copy: app.py /app/app.py", // 9
    "  - packages: [jq]", // 10
    "  - env: { K: V }", // 11
    "  - workdir: /srv", // 12
    "  - user: user", // 13
    "  - run: [python3, -c, 'print(1)']", // 14
    "  - copy:", // 15
    "      src: [a, b c]", // 16
    "      dest: /x/", // 17
    "      chown: user:user", // 18
    "  - run: |", // 19
    "      set -e", // 20
    "      make all", // 21
    "user: user", // 22
    "start: python3 -m http.server 8000", // 23
    "ready: curl -sf http://localhost:8000/", // 24
    "readyTimeoutMs: 60000", // 25
    "resources: { cpu: 1.5, memoryMiB: 512, diskMiB: 2048 }", // 26
    "pool: 2", // 27
    "snapshot: true", // 28
  ];

  it("parses every key, in order packages → env → workdir → steps → user", () => {
    const def = yaml(...full);
    expect(def).toMatchObject({
      source: "spec",
      name: "data-agent",
      from: { kind: "debian", suite: "bookworm" },
      fromLine: 3,
      start: "python3 -m http.server 8000",
      ready: "curl -sf http://localhost:8000/",
      readyTimeoutMs: 60000,
      resources: { cpu: 1.5, memoryMiB: 512, diskMiB: 2048 },
      pool: 2,
      snapshot: true,
    });
    expect(def.steps).toEqual([
      { kind: "packages", names: ["python3-flask", "curl"], line: 4, text: "PACKAGES python3-flask curl" },
      { kind: "env", vars: { APP_ENV: "prod", PORT: "8000", DEBUG: "false" }, line: 5, text: "ENV APP_ENV=prod PORT=8000 DEBUG=false" },
      { kind: "workdir", path: "/app", line: 6, text: "WORKDIR /app" },
      { kind: "run", command: "pip install x", line: 8, text: "RUN pip install x" },
      { kind: "copy", sources: ["app.py"], dest: "/app/app.py", chown: null, line: 9, text: "COPY app.py /app/app.py" },
      { kind: "packages", names: ["jq"], line: 10, text: "PACKAGES jq" },
      { kind: "env", vars: { K: "V" }, line: 11, text: "ENV K=V" },
      { kind: "workdir", path: "/srv", line: 12, text: "WORKDIR /srv" },
      { kind: "user", user: "user", line: 13, text: "USER user" },
      { kind: "run", command: ["python3", "-c", "print(1)"], line: 14, text: 'RUN ["python3","-c","print(1)"]' },
      { kind: "copy", sources: ["a", "b c"], dest: "/x/", chown: "user:user", line: 15, text: "COPY --chown=user:user a b c /x/" },
      { kind: "run", command: "set -e\nmake all", line: 19, text: "RUN set -e make all" },
      { kind: "user", user: "user", line: 22, text: "USER user" },
    ]);
  });

  it("gives the same definition for the same spec in JSON, with JSON line numbers", () => {
    const json = [
      "{", // 1
      '  "from": "base",', // 2
      '  "packages": "curl jq",', // 3
      '  "steps": [', // 4
      '    {"run": "make"},', // 5
      "    {", // 6
      '      "copy": {"src": "a", "dest": "/a"}', // 7
      "    }", // 8
      "  ],", // 9
      '  "user": 1000', // 10
      "}",
    ].join("\n");
    const def = parseSpec(json, "json");
    expect(def.from).toEqual({ kind: "template", ref: "base" });
    expect(def.fromLine).toBe(2);
    expect(def.steps.map((s) => [s.kind, s.line])).toEqual([
      ["packages", 3],
      ["run", 5],
      ["copy", 6],
      ["user", 10],
    ]);
    expect(step(def, 0)).toMatchObject({ names: ["curl", "jq"] });
    expect(step(def, 3)).toMatchObject({ user: "1000" });
  });

  it("defaults what a minimal spec leaves out", () => {
    expect(yaml("from: myapp:3")).toEqual({
      source: "spec",
      name: null,
      from: { kind: "template", ref: "myapp:3" },
      fromLine: 1,
      steps: [],
      start: null,
      ready: null,
      readyTimeoutMs: null,
      resources: {},
      pool: null,
      snapshot: null,
      network: null,
    });
    expect(yaml("from: base", "steps:", "env:", "resources: { cpu: 2 }").resources).toEqual({ cpu: 2 });
    expect(yaml("from: template:myapp").from).toEqual({ kind: "template", ref: "myapp" });
  });

  it("accepts the block and flow forms of the step values", () => {
    const def = yaml(
      "from: base",
      "steps:",
      "  - packages: curl jq",
      "  - copy: a b /dir/",
      "  - env:",
      "      A: '1 2'",
      "      B: ''",
      "  - run:",
      "      - echo",
      "      - hi",
    );
    expect(def.steps).toMatchObject([
      { kind: "packages", names: ["curl", "jq"], line: 3 },
      { kind: "copy", sources: ["a", "b"], dest: "/dir/", line: 4 },
      { kind: "env", vars: { A: "1 2", B: "" }, line: 5, text: 'ENV A="1 2" B=""' },
      { kind: "run", command: ["echo", "hi"], line: 8 },
    ]);
  });

  it("names unknown keys and their line", () => {
    yamlError('unknown key "packges"; did you mean "packages"?', 2, "from: base", "packges: [x]");
    yamlError(/unknown key "frobnicate" \(expected one of: name, from, .*snapshot, network\)/, 3, "from: base", "pool: 1", "frobnicate: 1");
    yamlError('unknown key "accelerator" in resources (expected one of: cpu, memoryMiB, diskMiB)', 3, "from: base", "resources:", "  accelerator: 1");
    yamlError('unknown key "gpu" in resources; did you mean "cpu"?', 3, "from: base", "resources:", "  gpu: 1");
    yamlError('unknown key "memory" in resources; did you mean "memoryMiB"?', 3, "from: base", "resources:", "  memory: 512");
    yamlError('unknown key "mode" in steps[0].copy (expected one of: src, dest, chown)', 5, "from: base", "steps:", "  - copy:", "      src: a", "      mode: 644", "      dest: /a");
  });

  it("takes the egress policy of the template's sandboxes, checked like a create's", () => {
    expect(yaml("from: base", "network:", "  internet: false", "  allowOut: [pypi.org, '*.pythonhosted.org', 203.0.113.0/24]").network).toEqual({ internet: false, allowOut: ["pypi.org", "*.pythonhosted.org", "203.0.113.0/24"] });
    yamlError(/network.allowOut\[0\]: not a CIDR, an IPv4 address or a domain name/, 3, "from: base", "network:", "  allowOut: ['not a host!']");
    yamlError('unknown key "allow" in network; did you mean "allowOut"?', 3, "from: base", "network:", "  allow: [x.org]");
  });

  it("reports the first problem in the file", () => {
    yamlError("pool: must be at most 64", 2, "from: base", "pool: 99", "zzz: 1");
  });

  it("rejects bad resources, pool, timeouts and types", () => {
    yamlError("resources.cpu: must be at most 64", 3, "from: base", "resources:", "  cpu: 65");
    yamlError("resources.cpu: must be at least 0.1", 2, "from: base", "resources: { cpu: 0.05 }");
    yamlError("resources.memoryMiB: must be at least 64", 2, "from: base", "resources: { memoryMiB: 32 }");
    yamlError("resources.memoryMiB: must be at most 262144", 2, "from: base", "resources: { memoryMiB: 262145 }");
    yamlError("resources.memoryMiB: must be a whole number", 2, "from: base", "resources: { memoryMiB: 512.5 }");
    yamlError("resources.diskMiB: must be at least 256", 2, "from: base", "resources: { diskMiB: 100 }");
    yamlError("resources.diskMiB: must be at most 1048576", 2, "from: base", "resources: { diskMiB: 2000000 }");
    yamlError('resources.cpu: must be a number (got "two")', 2, "from: base", "resources: { cpu: two }");
    yamlError("resources: must be a map (got a list)", 2, "from: base", "resources: [1]");
    yamlError("pool: must be at least 0", 2, "from: base", "pool: -1");
    yamlError("pool: must be a whole number", 2, "from: base", "pool: 1.5");
    yamlError("readyTimeoutMs: must be at least 1000", 2, "from: base", "readyTimeoutMs: 10");
    yamlError("readyTimeoutMs: must be at most 600000", 2, "from: base", "readyTimeoutMs: 600001");
    yamlError('snapshot: must be true or false (got "yes")', 2, "from: base", "snapshot: yes");
    yamlError("start: must be a string (got a list)", 2, "from: base", "start: [a, b]");
    yamlError("ready: must not be empty", 2, "from: base", "ready: '  '");
    yamlError(/^line 2: name: "My App" is not valid: lowercase letters/, 2, "from: base", "name: My App");
  });

  it("requires from and a valid base", () => {
    yamlError("from: is required: say what to build on", 1, "name: x", "pool: 1");
    yamlError("from: must be a string (got 12)", 1, "from: 12");
    yamlError("registries", 2, "name: x", "from: ubuntu:24.04");
    yamlError('Debian "buster" is not supported', 1, "from: debian:buster");
  });

  it("checks packages, env and user", () => {
    yamlError('packages[1]: "-y" is not a Debian package name', 1, "packages: [curl, -y]", "from: base");
    yamlError('packages[0]: "Foo" is not a Debian package name', 1, "packages: Foo", "from: base");
    yamlError("packages: must name at least one package", 2, "from: base", "packages: []");
    yamlError("packages: must be a list of Debian package names", 2, "from: base", "packages: [1]");
    expect(step(yaml("from: base", "packages: [libc6:amd64, python3=3.11.2-1, curl/bookworm-backports, g++]"), 0)).toMatchObject({
      names: ["libc6:amd64", "python3=3.11.2-1", "curl/bookworm-backports", "g++"],
    });
    yamlError("env.A: must be a string, number or true/false", 3, "from: base", "env:", "  A:");
    yamlError('env.1A: "1A" is not a valid variable name', 3, "from: base", "env:", "  1A: x");
    yamlError('env.__proto__: "__proto__" is not a valid variable name', 3, "from: base", "env:", "  __proto__: x");
    yamlError("env: must be a map (got a list)", 2, "from: base", "env: [A=1]");
    yamlError('user: "bad user" must be a user name or uid', 2, "from: base", "user: bad user");
    expect(yaml("from: base", "user: 1000:1000").steps[0]).toMatchObject({ kind: "user", user: "1000:1000" });
  });

  it("checks each step", () => {
    yamlError("steps[0]: each step is a map with one key (run, copy, packages, env, workdir, user)", 3, "from: base", "steps:", "  - make");
    yamlError("steps[0]: the step is empty", 3, "from: base", "steps:", "  - {}");
    yamlError("steps[0]: a step has exactly one key, this one has run, copy", 3, "from: base", "steps:", "  - run: a", "    copy: a b");
    yamlError("this one has copy, src, dest: make each its own list item, or indent a step's fields under it", 3, "from: base", "steps:", "  - copy:", "    src: a", "    dest: b");
    yamlError('steps[1]: unknown step "rum" (a step is one of run, copy, packages, env, workdir, user); did you mean "run"?', 4, "from: base", "steps:", "  - run: a", "  - rum: b");
    yamlError('unknown step "start" (a step is one of run, copy, packages, env, workdir, user); start is a top-level key, not a step', 3, "from: base", "steps:", "  - start: x");
    yamlError("steps[0].run: must be a shell command (a string) or an exec-form list of strings", 3, "from: base", "steps:", "  - run: 5");
    yamlError("steps[0].run: must have at least 1 item", 3, "from: base", "steps:", "  - run: []");
    yamlError("steps: must be a list (got a map)", 2, "from: base", "steps: { run: x }");
    yamlError("steps[0].workdir: must not be empty", 3, "from: base", "steps:", "  - workdir: ''");
    yamlError('steps[0].user: "a b" must be a user name or uid, optionally :group (e.g. user or 1000:1000)', 3, "from: base", "steps:", "  - user: 'a b'");
    yamlError("steps[0].env.A: must be a string, number or true/false", 3, "from: base", "steps:", "  - env: { A: [1] }");
    yamlError("steps[0].packages[0]", 3, "from: base", "steps:", "  - packages: [BAD]");
  });

  it("checks copy steps", () => {
    yamlError('steps[0].copy: write "SRC... DEST"', 3, "from: base", "steps:", "  - copy: app.py");
    yamlError("steps[0].copy: options go in the map form", 3, "from: base", "steps:", "  - copy: --chown=user a /b");
    yamlError('steps[0].copy: write "SRC... DEST" or a map { src, dest, chown }', 3, "from: base", "steps:", "  - copy: [a, b]");
    yamlError("copy *.py: wildcards are not supported; name the files or their directory", 3, "from: base", "steps:", "  - copy: '*.py /app/'");
    yamlError("copy ../secret: the source is outside the build context", 3, "from: base", "steps:", "  - copy: ../secret /x");
    yamlError('copy with several sources needs a directory destination ending in "/" (e.g. /app/)', 3, "from: base", "steps:", "  - copy: a b /app");
    yamlError("steps[0].copy.dest: is required", 3, "from: base", "steps:", "  - copy: { src: a }");
    yamlError("steps[0].copy.src: must have at least 1 item", 3, "from: base", "steps:", "  - copy: { src: [], dest: /x }");
    yamlError("steps[0].copy.src: must be a path or a list of paths", 3, "from: base", "steps:", "  - copy: { src: 1, dest: /x }");
    yamlError('steps[0].copy.chown: "a b" must be a user name', 5, "from: base", "steps:", "  - copy:", "      src: a", "      chown: 'a b'", "      dest: /x");
    expect(step(yaml("from: base", "steps:", "  - copy: { src: ./a/../b, dest: x }"), 0)).toMatchObject({ sources: ["./a/../b"], dest: "x" });
  });

  it("reports YAML syntax errors with their line", () => {
    yamlError('duplicate key "from"', 2, "from: base", "from: debian");
    yamlError("not valid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]", 4, "from: base", "steps:", "  - run: [a", "pool: 1");
    yamlError("not valid YAML", 2, "from: base", "\tpool: 1");
    yamlError("the spec must be a single YAML document", 2, "from: base", "---", "from: base");
    yamlError("the spec is empty", null, "# nothing");
    yamlError("the spec must be a map of keys", 1, "- from: base");
    yamlError("the spec must be a map of keys", 1, "just text");
  });

  it("rejects alias bombs", () => {
    const lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 8; i++) lines.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(", ")}]`);
    lines.push("from: base");
    yamlError(/could not be read|unknown key/, null, ...lines);
  });

  it("rejects deep nesting before composing it", () => {
    const n = 200_000;
    expectError(() => parseSpec(`from: base\nsteps: ${"[".repeat(n)}${"]".repeat(n)}`, "yaml"), "nested too deeply", null);
    expectError(() => parseSpec(`{"from": "base", "steps": ${'{"a":'.repeat(n / 2)}1${"}".repeat(n / 2)}}`, "json"), "nested too deeply", null);
    expectError(() => parseSpec(`${"- ".repeat(n)}x`, "yaml"), "nested too deeply", null);
    const block = ["a:", ...Array.from({ length: 100 }, (_, i) => `${" ".repeat(i + 1)}b${i}:`)].join("\n");
    expectError(() => parseSpec(block, "yaml"), "nested too deeply", null);
  });

  it("stays fast on pathological input", () => {
    const started = Date.now();
    const spaces = " ".repeat(MAX_SPEC_BYTES - 100);
    expect(step(parseSpec(`from: base\nsteps:\n  - run: "a${spaces}b"`, "yaml"), 0).text).toMatch(/^RUN a +/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("reports JSON errors with their line", () => {
    expectError(() => parseSpec('{\n  "from": "base",\n  "pool": 1,\n}', "json"), "not valid JSON", 4);
    expectError(() => parseSpec('{\n  "from": "base",\n  "from": "x"\n}', "json"), 'duplicate key "from"', 3);
    expectError(() => parseSpec('{\n  "from": "base",\n  "pool": "2"\n}', "json"), 'pool: must be a number (got "2")', 3);
    expectError(() => parseSpec('{"from": "base", "steps": [{"run": "a"}, {"runn": "b"}]}', "json"), 'unknown step "runn"', 1);
    expectError(() => parseSpec("", "json"), "not valid JSON", null);
  });

  it("bounds the number of steps", () => {
    const many = ["from: base", "steps:", ...Array.from({ length: 501 }, () => "  - run: x")];
    yamlError("steps: must have at most 500 items", 2, ...many);
    const total = ["from: base", "packages: [x1]", "user: u", "steps:", ...Array.from({ length: 500 }, () => "  - run: x")];
    yamlError("too many steps: at most 500", 1 + 503, ...total);
    expect(yaml("from: base", "steps:", ...Array.from({ length: 500 }, () => "  - run: x")).steps).toHaveLength(500);
  });

  it("keeps step text on one line and at most 200 characters", () => {
    const long = "x".repeat(300);
    const s = step(yaml("from: base", "steps:", `  - run: echo ${long}`), 0);
    expect(s.text).toHaveLength(200);
    expect(s.text.startsWith("RUN echo xxx")).toBe(true);
    expect(s.text.endsWith("…")).toBe(true);
    expect(s).toMatchObject({ command: `echo ${long}` });
  });

  it("accepts a byte-order mark and CRLF line ends", () => {
    const def = parseSpec("\uFEFFfrom: base\r\nsteps:\r\n  - run: a\r\n", "yaml");
    expect(def.steps[0]).toMatchObject({ command: "a", line: 3 });
  });
});

describe("parseDockerfile", () => {
  it("parses a typical Dockerfile", () => {
    const def = df(
      "# syntax=docker/dockerfile:1", // 1
      "FROM debian:bookworm-slim", // 2
      "", // 3
      "# deps", // 4
      "RUN apt-get update && \\", // 5
      "    apt-get install -y curl", // 6
      "ENV APP_HOME=/app PORT=8000", // 7
      "WORKDIR $APP_HOME", // 8
      "COPY --chown=user:user requirements.txt app.py ./", // 9
      "ADD data.tar.gz /data/", // 10
      "USER user", // 11
      "EXPOSE 8000", // 12
      'LABEL org.opencontainers.image.title="x"', // 13
      'CMD ["python3", "-m", "http.server", "8000"]', // 14
    );
    expect(def).toMatchObject({
      source: "dockerfile",
      name: null,
      from: { kind: "debian", suite: "bookworm" },
      fromLine: 2,
      start: "python3 -m http.server 8000",
      ready: null,
      readyTimeoutMs: null,
      resources: {},
      pool: null,
      snapshot: null,
    });
    expect(def.steps).toEqual([
      { kind: "run", command: "apt-get update &&     apt-get install -y curl", line: 5, text: "RUN apt-get update && apt-get install -y curl" },
      { kind: "env", vars: { APP_HOME: "/app", PORT: "8000" }, line: 7, text: "ENV APP_HOME=/app PORT=8000" },
      { kind: "workdir", path: "/app", line: 8, text: "WORKDIR $APP_HOME" },
      { kind: "copy", sources: ["requirements.txt", "app.py"], dest: "./", chown: "user:user", line: 9, text: "COPY --chown=user:user requirements.txt app.py ./" },
      { kind: "copy", sources: ["data.tar.gz"], dest: "/data/", chown: null, line: 10, text: "ADD data.tar.gz /data/" },
      { kind: "user", user: "user", line: 11, text: "USER user" },
    ]);
  });

  it("reads instructions in any case, CRLF and a byte-order mark", () => {
    const def = parseDockerfile("\uFEFFfrom base\r\nrun echo hi\r\nWorkDir /x\r\n");
    expect(def.steps).toMatchObject([
      { kind: "run", command: "echo hi", line: 2, text: "run echo hi" },
      { kind: "workdir", path: "/x", line: 3 },
    ]);
  });

  describe("FROM", () => {
    it("maps the base", () => {
      expect(df("FROM debian").from).toEqual({ kind: "debian", suite: "bookworm" });
      expect(df("FROM debian:13").from).toEqual({ kind: "debian", suite: "trixie" });
      expect(df("FROM trixie").from).toEqual({ kind: "debian", suite: "trixie" });
      expect(df("FROM myapp:2").from).toEqual({ kind: "template", ref: "myapp:2" });
      expect(df("FROM template:myapp").from).toEqual({ kind: "template", ref: "myapp" });
    });

    it("must come first and only once", () => {
      dfError("the first instruction must be FROM (found RUN)", 2, "# c", "RUN x", "FROM base");
      dfError("multi-stage builds are not supported", 3, "FROM base", "RUN x", "FROM debian");
      dfError("multi-stage builds are not supported", 1, "FROM debian:bookworm AS build");
      dfError("multi-stage builds are not supported", 1, "FROM debian:bookworm as build");
      dfError("the Dockerfile has no FROM", null, "# only a comment", "");
      dfError("the Dockerfile has no FROM", null);
    });

    it("rejects flags, extra words, variables, scratch and registry images", () => {
      dfError("FROM --platform is not supported", 1, "FROM --platform=linux/amd64 debian");
      dfError("FROM --foo is not supported", 1, "FROM --foo debian");
      dfError("FROM takes a single base", 1, "FROM debian bookworm");
      dfError("variables are not supported in FROM", 1, "FROM debian:$V");
      const scratch = dfError('"scratch" is not supported', 1, "FROM scratch");
      expect(scratch.message).toContain("stasis template import");
      for (const image of ["ubuntu:22.04", "python:3.12-slim", "ghcr.io/org/img:1", "mcr.microsoft.com/dotnet/sdk:8.0"]) {
        const err = dfError("registries", 2, "# x", `FROM ${image}`);
        expect(err.message).toContain("stasis template import");
        expect(err.message).toContain("docker save");
      }
      dfError("FROM needs arguments", 1, "FROM");
    });
  });

  describe("RUN", () => {
    it("takes shell and exec forms", () => {
      const def = df("FROM base", "RUN echo $HOME ${X}", 'RUN ["/bin/bash", "-c", "echo $HOME"]', "RUN [ -f /etc/os-release ] && echo ok", "RUN [ -d /x ]");
      expect(def.steps.map((s) => (s.kind === "run" ? s.command : null))).toEqual([
        "echo $HOME ${X}",
        ["/bin/bash", "-c", "echo $HOME"],
        "[ -f /etc/os-release ] && echo ok",
        "[ -d /x ]",
      ]);
    });

    it("joins continuation lines, skipping comments and blank lines inside them", () => {
      const def = df(
        "FROM base", // 1
        "RUN set -e; \\", // 2
        "  # a comment inside", // 3
        "", // 4
        "  echo a; \\  ", // 5
        "  echo b", // 6
        "RUN echo c \\", // 7
      );
      expect(def.steps).toEqual([
        { kind: "run", command: "set -e;   echo a;   echo b", line: 2, text: "RUN set -e; echo a; echo b" },
        { kind: "run", command: "echo c", line: 7, text: "RUN echo c" },
      ]);
    });

    it("joins exec form over lines", () => {
      const def = df("FROM base", 'RUN ["echo", \\', '     "a b"]');
      expect(def.steps[0]).toMatchObject({ command: ["echo", "a b"], line: 2, text: 'RUN ["echo", "a b"]' });
    });

    it("rejects heredocs, flags and bad exec forms", () => {
      dfError("heredocs (<<EOF) are not supported", 2, "FROM base", "RUN <<EOF", "echo hi", "EOF");
      dfError("heredocs", 2, "FROM base", "RUN cat <<-'END' > /x", "a", "END");
      expect(df("FROM base", "RUN cat <<< hi && echo $((1<<2))").steps[0]).toMatchObject({ command: "cat <<< hi && echo $((1<<2))" });
      dfError("RUN --mount is not supported", 2, "FROM base", "RUN --mount=type=cache,target=/root/.cache pip install x");
      dfError("RUN --network is not supported", 2, "FROM base", "RUN --network=none make");
      dfError("the exec form must be a JSON list of strings", 2, "FROM base", 'RUN ["a", 1]');
      dfError("RUN [] has no command", 2, "FROM base", "RUN []");
      dfError("RUN needs arguments", 2, "FROM base", "RUN");
    });
  });

  describe("COPY and ADD", () => {
    it("takes sources and a destination, in shell or JSON form", () => {
      const def = df("FROM base", "COPY a.txt /x", 'COPY ["my file.txt", "b", "/dest dir/"]', 'COPY "quoted name" /y', "ADD --chown=1000 src/ /app/src/");
      expect(def.steps).toMatchObject([
        { kind: "copy", sources: ["a.txt"], dest: "/x", chown: null },
        { kind: "copy", sources: ["my file.txt", "b"], dest: "/dest dir/", chown: null },
        { kind: "copy", sources: ["quoted name"], dest: "/y" },
        { kind: "copy", sources: ["src/"], dest: "/app/src/", chown: "1000" },
      ]);
    });

    it("substitutes variables set by earlier ENV", () => {
      const def = df("FROM base", "ENV SRC=app U=user DIR=/srv", "COPY --chown=$U:${U} ${SRC}.py $DIR/", 'COPY ["$SRC", "${DIR}/x"]', "COPY \\$literal ${MISSING:-/fallback}");
      expect(def.steps.slice(1)).toMatchObject([
        { sources: ["app.py"], dest: "/srv/", chown: "user:user" },
        { sources: ["app"], dest: "/srv/x" },
        { sources: ["$literal"], dest: "/fallback" },
      ]);
    });

    it("rejects what it can't do", () => {
      dfError("COPY --from is not supported: multi-stage builds are not supported", 2, "FROM base", "COPY --from=build /out /out");
      dfError("COPY --chmod is not supported", 2, "FROM base", "COPY --chmod=755 a /a");
      dfError("COPY --link is not supported", 2, "FROM base", "COPY --link a /a");
      dfError("COPY --parents is not supported", 2, "FROM base", "COPY --parents a /a/");
      dfError("COPY --chown needs a value", 2, "FROM base", "COPY --chown a /a");
      dfError("COPY --chown=a b: not a user name", 3, "FROM base", 'ENV U="a b"', "COPY --chown=$U a /a");
      dfError("ADD --checksum is not supported", 2, "FROM base", "ADD --checksum=sha256:abc https://x/y.tgz /y");
      dfError("ADD https://example.com/x.tgz: the build does not download with ADD; fetch it in a RUN step", 2, "FROM base", "ADD https://example.com/x.tgz /x");
      dfError("ADD git@github.com:o/r.git", 2, "FROM base", "ADD git@github.com:o/r.git /r");
      dfError("COPY *.py: wildcards are not supported; name the files or their directory", 2, "FROM base", "COPY *.py /app/");
      dfError("wildcards are not supported", 2, "FROM base", "COPY file?.txt /app/");
      dfError("wildcards are not supported", 2, "FROM base", 'COPY ["[ab].txt", "/app/"]');
      dfError("COPY ../x: the source is outside the build context", 2, "FROM base", "COPY ../x /x");
      dfError("COPY needs at least one source and a destination", 2, "FROM base", "COPY onlyone");
      dfError("COPY needs at least one source and a destination", 2, "FROM base", "COPY --chown=u");
      dfError('COPY with several sources needs a directory destination ending in "/"', 2, "FROM base", "COPY a b /app");
      dfError("heredocs (<<EOF) are not supported in COPY", 2, "FROM base", "COPY <<EOF /x", "hi", "EOF");
      dfError("is not valid JSON", 2, "FROM base", "COPY ['a', '/b']");
      dfError("the exec form must be a JSON list of strings", 2, "FROM base", 'COPY ["a", 2]');
    });
  });

  describe("ENV", () => {
    it("takes NAME=value pairs with quotes and escapes", () => {
      const def = df("FROM base", 'ENV A=1 B="two words" C=\'single $A\' D=a\\ b E="q\\"uote" F=', "ENV G=$A-${B}");
      expect(def.steps).toMatchObject([
        { kind: "env", vars: { A: "1", B: "two words", C: "single $A", D: "a b", E: 'q"uote', F: "" } },
        { kind: "env", vars: { G: "1-two words" } },
      ]);
    });

    it("takes the legacy NAME value form", () => {
      const def = df("FROM base", "ENV GREETING hello big  world", 'ENV Q "quoted value"');
      expect(def.steps).toMatchObject([{ vars: { GREETING: "hello big  world" } }, { vars: { Q: "quoted value" } }]);
    });

    it("expands against the variables before the instruction, as Docker does", () => {
      const def = df("FROM base", "ENV abc=hello", "ENV abc=bye def=$abc", "ENV ghi=$abc");
      expect(def.steps.map((s) => (s.kind === "env" ? s.vars : null))).toEqual([{ abc: "hello" }, { abc: "bye", def: "hello" }, { ghi: "bye" }]);
    });

    it("expands PATH to the sandbox default, or the base env given", () => {
      expect(df("FROM base", "ENV PATH=/opt/venv/bin:$PATH").steps[0]).toMatchObject({ vars: { PATH: `/opt/venv/bin:${DEFAULT_PATH}` } });
      const def = parseDockerfile("FROM base\nENV PATH=/x:$PATH HOME2=$HOME", { baseEnv: { PATH: "/bin", HOME: "/root" } });
      expect(def.steps[0]).toMatchObject({ vars: { PATH: "/x:/bin", HOME2: "/root" } });
    });

    it("supports the substitution modifiers", () => {
      const def = df(
        "FROM base",
        "ENV SET=x EMPTY=",
        "ENV a=${UNSET:-d} b=${EMPTY:-d} c=${EMPTY-d} d=${SET:+alt} e=${UNSET:+alt} f=${EMPTY+alt} g=${UNSET-${SET}} h=$ i=\\$SET j=$UNSET",
      );
      expect(def.steps[1]).toMatchObject({ vars: { a: "d", b: "d", c: "", d: "alt", e: "", f: "alt", g: "x", h: "$", i: "$SET", j: "" } });
      dfError("UNSET is not set: needed", 2, "FROM base", "ENV a=${UNSET:?needed}");
      dfError("unsupported substitution", 2, "FROM base", "ENV a=${X#pre}");
      dfError('missing "}"', 2, "FROM base", "ENV a=${X:-b");
      dfError("bad substitution", 2, "FROM base", "ENV a=${}");
    });

    it("rejects malformed ENV", () => {
      dfError("ENV ONLY has no value: write ENV ONLY=value", 2, "FROM base", "ENV ONLY");
      dfError('ENV: "b" is not NAME=value; quote values that contain spaces', 2, "FROM base", "ENV A=a b");
      dfError('ENV: "" is not a valid variable name', 2, "FROM base", "ENV =x");
      dfError('ENV: "1X" is not a valid variable name', 2, "FROM base", "ENV 1X=y");
      dfError('ENV: "__proto__" is not a valid variable name', 2, "FROM base", "ENV __proto__=y");
      dfError("unterminated double quote", 2, "FROM base", 'ENV A="open');
      dfError("unterminated single quote", 2, "FROM base", "ENV A='open");
      dfError("ENV needs arguments", 2, "FROM base", "ENV");
    });
  });

  describe("WORKDIR and USER", () => {
    it("substitute variables and strip quotes", () => {
      const def = df("FROM base", "ENV D=/srv NAME=app", 'WORKDIR "$D/my app"', "USER ${NAME}:${NAME}", "USER 1000");
      expect(def.steps.slice(1)).toMatchObject([
        { kind: "workdir", path: "/srv/my app" },
        { kind: "user", user: "app:app" },
        { kind: "user", user: "1000" },
      ]);
    });

    it("reject empty or malformed values", () => {
      dfError("WORKDIR is empty after substituting variables", 2, "FROM base", "WORKDIR $NOPE");
      dfError('USER "a b" is not a user name or uid', 2, "FROM base", 'USER "a b"');
      dfError("USER needs arguments", 2, "FROM base", "USER");
    });
  });

  describe("CMD and ENTRYPOINT", () => {
    const start = (...lines: string[]): string | null => df("FROM base", ...lines).start;

    it("convert to a shell command line", () => {
      expect(start()).toBeNull();
      expect(start("CMD python3 app.py --port $PORT")).toBe("python3 app.py --port $PORT");
      expect(start('CMD ["python3", "-c", "print(\'hi there\')", ""]')).toBe(`python3 -c 'print('\\''hi there'\\'')' ''`);
      expect(start('ENTRYPOINT ["/entry.sh"]')).toBe("/entry.sh");
      expect(start("ENTRYPOINT exec /entry.sh")).toBe("exec /entry.sh");
    });

    it("combine as Docker does", () => {
      expect(start('ENTRYPOINT ["node", "server.js"]', 'CMD ["--port", "80 80"]')).toBe("node server.js --port '80 80'");
      expect(start('CMD ["--port", "80"]', 'ENTRYPOINT ["node"]')).toBe("node --port 80");
      expect(start('ENTRYPOINT ["tini", "--"]', "CMD run $X")).toBe("tini -- /bin/sh -c 'run $X'");
      expect(start("ENTRYPOINT /entry.sh", 'CMD ["ignored"]')).toBe("/entry.sh");
      expect(start("ENTRYPOINT []", "CMD serve")).toBe("serve");
      expect(start("CMD []")).toBeNull();
    });

    it("let the last one win", () => {
      expect(start("CMD a", "CMD b")).toBe("b");
      expect(start('ENTRYPOINT ["a"]', 'ENTRYPOINT ["b"]', 'CMD ["c"]', 'CMD ["d"]')).toBe("b d");
    });

    it("reject broken exec forms", () => {
      dfError('CMD [python3, app.py] is not valid JSON: write the exec form with double quotes, e.g. CMD ["python3", "app.py"]', 2, "FROM base", "CMD [python3, app.py]");
      dfError("ENTRYPOINT: the exec form must be a JSON list of strings", 2, "FROM base", 'ENTRYPOINT {"a": 1}'.replace("{", "[{").replace("}", "}]"));
      dfError("CMD needs arguments", 2, "FROM base", "CMD");
    });
  });

  describe("HEALTHCHECK", () => {
    it("sets ready", () => {
      expect(df("FROM base", "HEALTHCHECK CMD curl -fs http://localhost:8000/ || exit 1")).toMatchObject({ ready: "curl -fs http://localhost:8000/ || exit 1", readyTimeoutMs: null });
      expect(df("FROM base", 'HEALTHCHECK cmd ["curl", "-f", "http://localhost/a b"]').ready).toBe("curl -f 'http://localhost/a b'");
      expect(df("FROM base", "HEALTHCHECK --timeout=3s CMD true")).toMatchObject({ ready: "true", readyTimeoutMs: null });
      expect(df("FROM base", "HEALTHCHECK CMD a", "HEALTHCHECK NONE")).toMatchObject({ ready: null, readyTimeoutMs: null });
      expect(df("FROM base", "HEALTHCHECK none").ready).toBeNull();
    });

    it("sets readyTimeoutMs to Docker's time to unhealthy: start period + retries × interval", () => {
      expect(df("FROM base", "HEALTHCHECK --interval=5s --timeout=2s --start-period=20s --retries=4 CMD true").readyTimeoutMs).toBe(40_000);
      expect(df("FROM base", "HEALTHCHECK --start-period=1m30s CMD true").readyTimeoutMs).toBe(180_000);
      expect(df("FROM base", "HEALTHCHECK --interval=100ms --retries=1 CMD true").readyTimeoutMs).toBe(1000);
      expect(df("FROM base", "HEALTHCHECK --start-period=1h CMD true").readyTimeoutMs).toBe(600_000);
      expect(df("FROM base", "HEALTHCHECK --interval=0s --start-period=0 CMD true").readyTimeoutMs).toBe(90_000);
    });

    it("rejects bad options and a missing command", () => {
      dfError("HEALTHCHECK --interval=5: give a duration such as 30s", 2, "FROM base", "HEALTHCHECK --interval=5 CMD true");
      dfError("HEALTHCHECK --retries=x: give a whole number", 2, "FROM base", "HEALTHCHECK --retries=x CMD true");
      dfError("HEALTHCHECK --bogus is not a HEALTHCHECK option", 2, "FROM base", "HEALTHCHECK --bogus=1 CMD true");
      dfError("HEALTHCHECK needs CMD <command> or NONE", 2, "FROM base", "HEALTHCHECK curl x");
      dfError("HEALTHCHECK CMD needs a command", 2, "FROM base", "HEALTHCHECK CMD");
      dfError("HEALTHCHECK CMD [] has no command", 2, "FROM base", "HEALTHCHECK CMD []");
    });
  });

  it("ignores EXPOSE, LABEL, MAINTAINER and STOPSIGNAL", () => {
    const def = df("FROM base", "EXPOSE 80/tcp 443", 'LABEL a="b c" \\', "  d=e", "MAINTAINER me <me@x>", "STOPSIGNAL SIGTERM", "RUN x");
    expect(def.steps).toEqual([{ kind: "run", command: "x", line: 7, text: "RUN x" }]);
  });

  it("rejects unsupported instructions with a way out", () => {
    dfError("ARG is not supported: build arguments can't be passed to a template build; set the value with ENV NAME=value instead", 1, "ARG V=1", "FROM base");
    dfError("ARG is not supported", 2, "FROM base", "ARG V");
    dfError("SHELL is not supported: RUN always uses /bin/sh -c", 2, "FROM base", 'SHELL ["/bin/bash", "-c"]');
    dfError("VOLUME is not supported", 2, "FROM base", "VOLUME /data");
    dfError("ONBUILD is not supported", 2, "FROM base", "ONBUILD RUN x");
    dfError("unknown instruction FROBNICATE", 3, "FROM base", "", "frobnicate x");
    dfError("unknown instruction FOO", 1, "FOO");
    dfError('"apt-get" is not an instruction; if it continues the previous line, end that line with a backslash', 3, "FROM base", "RUN apt-get update &&", "apt-get install x");
  });

  it("survives stray backslashes", () => {
    expect(df("FROM base", "\\", "\\", "  RUN x").steps).toMatchObject([{ kind: "run", command: "x", line: 2 }]);
    expect(df("FROM base", "\\").steps).toEqual([]);
  });

  it("handles parser directives", () => {
    expect(df("# syntax=docker/dockerfile:1.7", "# check=skip=all", "FROM base").fromLine).toBe(3);
    expect(df("# escape=\\", "FROM base").fromLine).toBe(2);
    dfError("the escape directive is not supported", 1, "# escape=`", "FROM base");
    // Not at the top, it is just a comment.
    expect(df("FROM base", "# escape=`", "RUN a \\", "  b").steps[0]).toMatchObject({ command: "a   b" });
  });

  it("numbers steps and errors by the first line of their instruction", () => {
    const def = df("", "# c", "FROM base", "", "RUN a \\", "  b \\", "  c", "", "  ", "ENV X=1 \\", "  Y=2", "USER u");
    expect(def.fromLine).toBe(3);
    expect(def.steps.map((s) => s.line)).toEqual([5, 10, 12]);
    expect(def.steps[1]).toMatchObject({ vars: { X: "1", Y: "2" }, text: "ENV X=1 Y=2" });
    dfError("COPY needs at least one source", 5, "FROM base", "RUN a", "", "# x", "COPY \\", "  onlyone");
  });

  it("truncates long step text to 200 characters", () => {
    const def = df("FROM base", `RUN echo ${"y".repeat(250)}`);
    expect(def.steps[0]?.text).toHaveLength(200);
  });

  it("stays fast on pathological input", () => {
    const started = Date.now();
    const continued = `FROM base\nRUN ${"a \\\n".repeat(200_000)}b`;
    expect(parseDockerfile(continued).steps[0]?.text).toHaveLength(200);
    dfError("the Dockerfile has no FROM", null, `# syntax=${" ".repeat(MAX_SPEC_BYTES - 100)}x`);
    expect(df("FROM base", `RUN ${" ".repeat(MAX_SPEC_BYTES - 100)}x`).steps[0]).toMatchObject({ command: "x" });
    expect(Date.now() - started).toBeLessThan(5000);
    dfError("substitutions nested too deeply", 2, "FROM base", `ENV A=${"${X:-".repeat(50_000)}${"}".repeat(50_000)}`);
  });

  it("bounds the number of steps", () => {
    const ok = ["FROM base", ...Array.from({ length: 500 }, (_, i) => `RUN echo ${i}`)];
    expect(df(...ok).steps).toHaveLength(500);
    dfError("too many steps: at most 500", 502, ...ok, "RUN one more");
  });
});

describe("helpers", () => {
  it("shellQuote quotes only what needs it", () => {
    expect(shellQuote("abc-1.2/x:y=z")).toBe("abc-1.2/x:y=z");
    expect(shellQuote("")).toBe("''");
    expect(shellQuote("a b")).toBe("'a b'");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(shellQuote("$HOME")).toBe("'$HOME'");
  });

  it("expandWord without shell quoting leaves quotes and backslashes alone", () => {
    expect(expandWord(`"$A" 'b' \\n \\$A`, { A: "1" }, false)).toBe(`"1" 'b' \\n $A`);
    expect(expandWord(`"$A" 'b' \\n \\$A`, { A: "1" }, true)).toBe(`1 b n $A`);
    expect(expandWord("${A:-${B:-deep}}", {}, true)).toBe("deep");
    expect(expandWord('"${A:-x y}"', {}, true)).toBe("x y");
  });
});
