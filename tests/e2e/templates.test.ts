import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DaemonInfoSchema, TemplateBuildEventSchema, TemplateSchema, type Template, type TemplateBuildEvent } from "@stasis/protocol";
import { Sandbox } from "@stasis/sdk";
import { startTestDaemon, TEMPLATES_DIR, type TestDaemon } from "./harness.js";

const APP = `import http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"hello from the template\\n")
    def log_message(self, *a): pass
socketserver.TCPServer(("0.0.0.0", 8000), H).serve_forever()
`;

/** Template builds on real gVisor: spec and Dockerfile, step cache, snapshots, failing steps, pools, import. */
describe("templates", () => {
  let daemon: TestDaemon;
  const tag = randomBytes(3).toString("hex");
  const names = { spec: `e2e-spec-${tag}`, docker: `e2e-docker-${tag}`, oci: `e2e-oci-${tag}`, net: `e2e-net-${tag}`, policy: `e2e-policy-${tag}` };
  const dirs: string[] = [];

  function context(files: Record<string, string>): string {
    const dir = mkdtempSync(join(tmpdir(), "stasis-ctx-"));
    dirs.push(dir);
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    return dir;
  }

  async function api(method: string, path: string, body?: unknown): Promise<Response> {
    return fetch(`${daemon.url}${path}`, {
      method,
      headers: { Authorization: `Bearer ${daemon.apiKey}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  }

  /** Posts a tar of `dir` and collects the build's events (each validated against the protocol). */
  async function build(dir: string, query: string, route = "build"): Promise<{ status: number; events: TemplateBuildEvent[]; body: string }> {
    const tar = route === "build" ? execFileSync("tar", ["-C", dir, "-cf", "-", "."], { maxBuffer: 1 << 28 }) : execFileSync("cat", [dir], { maxBuffer: 1 << 28 });
    const res = await fetch(`${daemon.url}/v1/templates/${route}?${query}`, { method: "POST", headers: { Authorization: `Bearer ${daemon.apiKey}` }, body: tar });
    const body = await res.text();
    if (res.status !== 200) return { status: res.status, events: [], body };
    const events = body
      .split("\n")
      .filter(Boolean)
      .map((l) => TemplateBuildEventSchema.parse(JSON.parse(l)));
    return { status: res.status, events, body };
  }

  function done(events: TemplateBuildEvent[]): Extract<TemplateBuildEvent, { type: "done" }> {
    const last = events.at(-1);
    if (last?.type !== "done") throw new Error(`the build did not finish: ${JSON.stringify(events.filter((e) => e.type !== "log").slice(-5))}`);
    return last;
  }

  const steps = (events: TemplateBuildEvent[]) => events.filter((e): e is Extract<TemplateBuildEvent, { type: "step" }> => e.type === "step");

  beforeAll(async () => {
    daemon = await startTestDaemon();
  });
  afterAll(async () => {
    // Templates first: they are shared with other daemons on this host, and deleting needs a live daemon.
    if (daemon) for (const name of Object.values(names)) await api("DELETE", `/v1/templates/${name}`).catch(() => {});
    await daemon?.destroy();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  const spec = (lastRun: string) => `# a data-ish web template
from: base
packages: [jq]
env: { GREETING: hello }
steps:
  - copy: app.py /app/app.py
  - run: echo "$GREETING" > /app/greeting.txt && echo "built ${tag}"
  - run: ${lastRun}
workdir: /app
start: python3 /app/app.py
ready: curl -sf http://127.0.0.1:8000/
resources: { memoryMiB: 384 }
`;

  let v1: Template;

  it("builds a snapshot template from a spec: package, copied file and a running server in every sandbox", async () => {
    const ctx = context({ "stasis.yaml": spec("echo first > /app/last.txt"), "app.py": APP });
    const { events } = await build(ctx, `name=${names.spec}`);
    const finished = done(events);
    v1 = finished.template;
    expect(v1).toMatchObject({ name: names.spec, version: 1, latest: true, source: "spec", from: "base", workdir: "/app", env: { GREETING: "hello" }, resources: { memoryMiB: 384 } });
    expect(v1.snapshot).not.toBeNull();
    expect(steps(events).map((s) => s.instruction)).toEqual(["FROM base", "PACKAGES jq", "ENV GREETING=hello", "WORKDIR /app", "COPY app.py /app/app.py", `RUN echo "$GREETING" > /app/greeting.txt && echo "built ${tag}"`, "RUN echo first > /app/last.txt"]);
    // Step output streams back as log events (this step is new in every run: the tag is in it).
    expect(events.filter((e) => e.type === "log" && e.step === 6).map((e) => (e as { data: string }).data)).toEqual([`built ${tag}`]);

    const s = await Sandbox.create({ template: names.spec, ...daemon.conn });
    expect(s.info).toMatchObject({ template: `${names.spec}:1`, createdVia: "snapshot", memoryMiB: 384, state: "running" });
    // The server started by the build's snapshot is already answering; commands run in WORKDIR.
    const out = await s.commands.run("curl -s http://127.0.0.1:8000/; jq --version; cat greeting.txt last.txt; pwd; echo $GREETING");
    expect(out.stdout).toBe("hello from the template\njq-1.6\nhello\nfirst\n/app\nhello\n");
    // Creation may override the template's resources.
    const bigger = await Sandbox.create({ template: names.spec, memoryMiB: 512, ...daemon.conn });
    expect(bigger.info).toMatchObject({ createdVia: "snapshot", memoryMiB: 512 });
    expect((await bigger.commands.run("curl -s http://127.0.0.1:8000/")).stdout).toBe("hello from the template\n");
    await Promise.all([s.kill(), bigger.kill()]);
  }, 300_000);

  it("reuses cached steps: an identical build is no new version, a changed last step rebuilds only that step", async () => {
    const same = await build(context({ "stasis.yaml": spec("echo first > /app/last.txt"), "app.py": APP }), `name=${names.spec}`);
    expect(done(same.events)).toMatchObject({ builtSteps: 0, template: { version: 1 } });
    expect(steps(same.events).filter((s) => !s.instruction.startsWith("ENV") && !s.instruction.startsWith("WORKDIR")).every((s) => s.cached)).toBe(true);

    const changed = await build(context({ "stasis.yaml": spec("echo second > /app/last.txt"), "app.py": APP }), `name=${names.spec}`);
    const finished = done(changed.events);
    expect(finished).toMatchObject({ builtSteps: 1, template: { version: 2, latest: true } });
    expect(steps(changed.events).filter((s) => !s.cached).map((s) => s.instruction)).toEqual(["ENV GREETING=hello", "WORKDIR /app", "RUN echo second > /app/last.txt"]);

    // The name now means version 2; version 1 is still there by its ref.
    const latest = await Sandbox.create({ template: names.spec, ...daemon.conn });
    const old = await Sandbox.create({ template: `${names.spec}:1`, ...daemon.conn });
    expect((await latest.commands.run("cat /app/last.txt")).stdout).toBe("second\n");
    expect((await old.commands.run("cat /app/last.txt")).stdout).toBe("first\n");
    const list = TemplateSchema.array().parse(((await (await api("GET", "/v1/templates")).json()) as { templates: unknown[] }).templates);
    expect(list.filter((t) => t.name === names.spec).map((t) => [t.version, t.latest])).toEqual([
      [2, true],
      [1, false],
    ]);
    // A version in use cannot be deleted.
    const refused = await api("DELETE", `/v1/templates/${names.spec}:1`);
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "template_in_use" });
    await Promise.all([latest.kill(), old.kill()]);
    expect((await api("DELETE", `/v1/templates/${names.spec}:1`)).status).toBe(204);
    expect((await api("GET", `/v1/templates/${names.spec}:1`)).status).toBe(404);
  }, 300_000);

  it("boots a snapshot template cold when another runsc took its snapshot, and an unchanged rebuild takes a new one", async () => {
    const manifestPath = join(TEMPLATES_DIR, names.spec, "v2", "template.json");
    const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as { snapshot: { runtime?: string } };
    manifest.snapshot.runtime = "runsc 0.0~older systrap";
    writeFileSync(manifestPath, JSON.stringify(manifest));
    const cold = await Sandbox.create({ template: names.spec, ...daemon.conn });
    expect(cold.info.createdVia).toBe("cold");
    expect((await cold.commands.run("curl -s http://127.0.0.1:8000/")).stdout).toBe("hello from the template\n");
    await cold.kill();
    const rebuilt = done((await build(context({ "stasis.yaml": spec("echo second > /app/last.txt"), "app.py": APP }), `name=${names.spec}`)).events);
    expect(rebuilt).toMatchObject({ builtSteps: 0, template: { version: 3 } });
    expect(rebuilt.template.snapshot).not.toBeNull();
    const restored = await Sandbox.create({ template: names.spec, ...daemon.conn });
    expect(restored.info).toMatchObject({ createdVia: "snapshot", template: `${names.spec}:3` });
    await restored.kill();
  }, 300_000);

  it("builds from a Dockerfile (booted cold, start command awaited) and reports the failing step with its line", async () => {
    const dockerfile = (last: string) => `FROM base
RUN apt-get update -q && apt-get install -y -q --no-install-recommends jq && rm -rf /var/lib/apt/lists/*
ENV GREETING=hi
WORKDIR /srv
COPY app.py ./app.py
RUN chown -R user /srv
USER user
RUN ${last}
CMD ["python3", "/srv/app.py"]
HEALTHCHECK --interval=1s CMD curl -sf http://127.0.0.1:8000/
`;
    const ctx = context({ Dockerfile: dockerfile("whoami > whoami.txt"), "app.py": APP });
    // No snapshot: every create boots and runs CMD until the HEALTHCHECK passes.
    const { events } = await build(ctx, `name=${names.docker}&snapshot=false`);
    const t = done(events).template;
    expect(t).toMatchObject({ source: "dockerfile", user: "user", workdir: "/srv", start: "python3 /srv/app.py", ready: "curl -sf http://127.0.0.1:8000/", snapshot: null });
    const s = await Sandbox.create({ template: names.docker, ...daemon.conn });
    expect(s.info.createdVia).toBe("cold");
    const out = await s.commands.run("curl -s http://127.0.0.1:8000/; cat whoami.txt; whoami; pwd; jq --version");
    expect(out.stdout).toBe("hello from the template\nuser\nuser\n/srv\njq-1.6\n");
    await s.kill();

    const failing = await build(context({ Dockerfile: dockerfile("echo about to fail; exit 3"), "app.py": APP }), `name=${names.docker}`);
    const error = failing.events.at(-1);
    expect(error).toMatchObject({ type: "error", code: "template_build_failed", step: 8, line: 8, instruction: "RUN echo about to fail; exit 3" });
    expect(failing.events.some((e) => e.type === "log" && e.step === 8 && e.data === "about to fail")).toBe(true);
    // Steps before the failing one came from the cache; no version was made.
    expect(steps(failing.events).filter((x) => x.step < 8 && x.instruction.startsWith("RUN")).every((x) => x.cached)).toBe(true);
    expect(TemplateSchema.parse(await (await api("GET", `/v1/templates/${names.docker}`)).json()).version).toBe(1);

    // A mistake in the file itself is an ordinary error naming the line.
    const bad = await build(context({ Dockerfile: "FROM base\nFROBNICATE now\n" }), `name=${names.docker}`);
    expect(bad.status).toBe(422);
    expect(JSON.parse(bad.body)).toMatchObject({ error: { code: "invalid_template", details: { line: 2 } } });

    // The spec file is read from the context only, even through a symlinked folder in it.
    const escaping = context({ Dockerfile: "FROM base\n" });
    execFileSync("ln", ["-s", "/etc", join(escaping, "host")]);
    const outside = await build(escaping, `name=${names.docker}&file=host/passwd`);
    expect(outside.status).toBe(422);
    expect(JSON.parse(outside.body)).toMatchObject({ error: { code: "invalid_template", message: "file 'host/passwd' is outside the build context" } });
    // Compressed contexts are refused (they could unpack to anything).
    const gz = execFileSync("tar", ["-C", escaping, "-czf", "-", "Dockerfile"]);
    const compressed = await fetch(`${daemon.url}/v1/templates/build?name=${names.docker}`, { method: "POST", headers: { Authorization: `Bearer ${daemon.apiKey}` }, body: gz });
    expect(compressed.status).toBe(422);
    expect(((await compressed.json()) as { error: { message: string } }).error.message).toMatch(/uncompressed tar/);
  }, 300_000);

  it("keeps a warm pool per template, set after the build", async () => {
    const res = await api("PUT", `/v1/templates/${names.docker}`, { pool: 1 });
    expect(TemplateSchema.parse(await res.json()).pool).toBe(1);
    const deadline = Date.now() + 90_000;
    for (;;) {
      const info = DaemonInfoSchema.parse(await (await api("GET", "/v1/info")).json());
      if (info.warmPools.find((p) => p.template === `${names.docker}:1`)?.ready === 1) break;
      if (Date.now() > deadline) throw new Error(`pool never filled: ${JSON.stringify(info.warmPools)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const s = await Sandbox.create({ template: names.docker, ...daemon.conn });
    expect(s.info.createdVia).toBe("warm_pool");
    expect((await s.commands.run("curl -s http://127.0.0.1:8000/")).stdout).toBe("hello from the template\n");
    await s.kill();
    await api("PUT", `/v1/templates/${names.docker}`, { pool: 0 });
  }, 180_000);

  it("gives its sandboxes a default network policy, which a create's own overrides", async () => {
    const res = await api("PUT", `/v1/templates/${names.docker}`, { network: { internet: false, denyOut: ["203.0.113.0/24"] } });
    expect(TemplateSchema.parse(await res.json()).network).toEqual({ internet: false, denyOut: ["203.0.113.0/24"] });
    const byTemplate = await Sandbox.create({ template: names.docker, ...daemon.conn });
    expect(byTemplate.info.network?.policy).toEqual({ internet: false, allowOut: [], denyOut: ["203.0.113.0/24"] });
    const own = await Sandbox.create({ template: names.docker, network: { internet: true }, ...daemon.conn });
    expect(own.info.network?.policy).toEqual({ internet: true, allowOut: [], denyOut: ["203.0.113.0/24"] });
    await api("PUT", `/v1/templates/${names.docker}`, { network: null });
    const back = await Sandbox.create({ template: names.docker, ...daemon.conn });
    expect(back.info.network?.policy.internet).toBe(true);
    await Promise.all([byTemplate.kill(), own.kill(), back.kill()]);
  }, 120_000);

  it("takes a policy from the spec file's network key", async () => {
    const { events } = await build(context({ "stasis.yaml": "from: base\nnetwork:\n  internet: false\n  allowOut: [pypi.org]\n" }), `name=${names.policy}`);
    expect(done(events).template.network).toEqual({ internet: false, allowOut: ["pypi.org"] });
    const s = await Sandbox.create({ template: names.policy, runtime: "crun", ...daemon.conn });
    expect(s.info.network?.policy).toEqual({ internet: false, allowOut: ["pypi.org"], denyOut: [] });
    await s.kill();
  }, 120_000);

  it("gives build steps the internet through a host firewall that drops forwarding, but not the host or a local bridge", async () => {
    // A host service on every address, a server behind a local bridge (as Docker's containers are), and
    // the FORWARD policy Docker and ufw set: build steps must reach Debian, and neither of the others.
    const host = createServer((_, res) => res.end("host\n"));
    await new Promise<void>((r) => host.listen(0, "0.0.0.0", r));
    const hostPort = (host.address() as AddressInfo).port;
    const hostIp = /\bsrc (\S+)/.exec(execFileSync("ip", ["-4", "route", "get", "1.1.1.1"], { encoding: "utf8" }))?.[1];
    const bridge = `sxbr${tag}`;
    const ns = `stasis-e2e-net-${tag}`;
    const net = `172.30.${40 + (parseInt(tag, 16) % 200)}`;
    const ip = (...args: string[]) => execFileSync("ip", args);
    const policy = /^-P FORWARD (\S+)/m.exec(execFileSync("iptables", ["-S", "FORWARD"], { encoding: "utf8" }))?.[1] ?? "ACCEPT";
    let server: ReturnType<typeof spawn> | undefined;
    try {
      ip("link", "add", bridge, "type", "bridge");
      ip("addr", "add", `${net}.1/24`, "dev", bridge);
      ip("link", "set", bridge, "up");
      ip("netns", "add", ns);
      ip("link", "add", `sxv${tag}`, "type", "veth", "peer", "name", "eth0", "netns", ns);
      ip("link", "set", `sxv${tag}`, "master", bridge, "up");
      ip("-n", ns, "addr", "add", `${net}.2/24`, "dev", "eth0");
      ip("-n", ns, "link", "set", "eth0", "up");
      server = spawn("ip", ["netns", "exec", ns, "python3", "-m", "http.server", "8000", "--bind", `${net}.2`], { stdio: "ignore" });
      for (let i = 0; i < 50; i++) {
        try {
          execFileSync("curl", ["-sf", "-m", "1", "-o", "/dev/null", `http://${net}.2:8000/`]);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      execFileSync("iptables", ["-P", "FORWARD", "DROP"]);

      const urls = [`http://${net}.2:8000/`, `http://${hostIp}:${hostPort}/`, "http://deb.debian.org/debian/dists/bookworm/Release"];
      const probe = `for u in ${urls.join(" ")}; do echo "$(curl -s -m 5 -o /dev/null -w '%{http_code}' $u) $u"; done # ${tag}`;
      const { events } = await build(context({ "stasis.yaml": `from: base\nsteps:\n  - run: ${JSON.stringify(probe)}\n` }), `name=${names.net}&snapshot=false`);
      done(events);
      const lines = events.filter((e) => e.type === "log" && e.step === 2).map((e) => (e as { data: string }).data);
      expect(lines).toEqual([`000 ${urls[0]}`, `000 ${urls[1]}`, `200 ${urls[2]}`]);
    } finally {
      execFileSync("iptables", ["-P", "FORWARD", policy]);
      server?.kill();
      host.close();
      for (const args of [["netns", "del", ns], ["link", "del", bridge]]) {
        try {
          execFileSync("ip", args, { stdio: "ignore" });
        } catch {
          // never made
        }
      }
    }
  }, 180_000);

  it("imports an OCI image (docker save tarball) as a template", async () => {
    const work = mkdtempSync(join(tmpdir(), "stasis-oci-"));
    dirs.push(work);
    const layout = join(work, "layout");
    execFileSync("umoci", ["init", "--layout", layout]);
    execFileSync("umoci", ["new", "--image", `${layout}:1.0`]);
    execFileSync("umoci", ["unpack", "--image", `${layout}:1.0`, join(work, "bundle")]);
    mkdirSync(join(work, "bundle/rootfs/data"), { recursive: true });
    writeFileSync(join(work, "bundle/rootfs/data/hello.txt"), "from an OCI image\n");
    execFileSync("umoci", ["repack", "--image", `${layout}:1.0`, join(work, "bundle")]);
    execFileSync("umoci", ["config", "--image", `${layout}:1.0`, "--config.env=MODE=oci", "--config.workingdir=/data"]);
    execFileSync("skopeo", ["copy", "--insecure-policy", `oci:${layout}:1.0`, `docker-archive:${join(work, "image.tar")}:demo:1.0`]);

    const { events } = await build(join(work, "image.tar"), `name=${names.oci}`, "import");
    expect(done(events).template).toMatchObject({ source: "oci", env: { MODE: "oci" }, workdir: "/data", layers: 1 });
    const s = await Sandbox.create({ template: names.oci, ...daemon.conn });
    expect(Buffer.from(await s.files.read("/data/hello.txt")).toString()).toBe("from an OCI image\n");
    await s.kill();
  }, 180_000);
});
