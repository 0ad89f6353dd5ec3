import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { prepareBoundTmp } from "../oci-spec.js";
import { streamLines } from "../stream-lines.js";
import { removeStaleBuildContainers } from "./gvisor-build-steps.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "stasis-build-container-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("streamLines", () => {
  it("cuts long lines, drops endless ones without holding them, and keeps the last unterminated line", async () => {
    const lines: string[] = [];
    const s = new PassThrough();
    streamLines(s, (l) => lines.push(l));
    s.write("first\r\n");
    s.write(`${"x".repeat(5000)}\n`);
    const mib = Buffer.alloc(1024 * 1024, 97);
    for (let i = 0; i < 8; i++) s.write(mib);
    s.write("\nafter\nlast");
    s.end();
    await new Promise((r) => s.on("end", r));
    expect(lines[0]).toBe("first");
    expect(lines[1]).toBe(`${"x".repeat(4096)}…`);
    expect(lines[2]).toMatch(/longer than 64 KiB was cut/);
    expect(lines.slice(3)).toEqual(["after", "last"]);
  });
});

describe("prepareBoundTmp", () => {
  it("accepts a directory", () => {
    mkdirSync(join(dir, "tmp"));
    expect(prepareBoundTmp(dir)).toBeNull();
  });

  it("refuses a symlink (the gofer would follow it on the host)", () => {
    symlinkSync("/", join(dir, "tmp"));
    expect(prepareBoundTmp(dir)).toMatch(/symlink/);
  });

  it("refuses a file", () => {
    writeFileSync(join(dir, "tmp"), "");
    expect(prepareBoundTmp(dir)).toMatch(/not a directory/);
  });

  it("creates a missing /tmp with mode 1777", () => {
    expect(prepareBoundTmp(dir)).toBeNull();
    const st = lstatSync(join(dir, "tmp"));
    expect(st.isDirectory()).toBe(true);
    expect(st.mode & 0o7777).toBe(0o1777);
  });
});

describe("removeStaleBuildContainers", () => {
  it("kills and deletes the containers of dead daemons and of ids without a pid, keeps live ones (its own pid counts as a previous daemon's)", async () => {
    const log = join(dir, "calls");
    const runsc = join(dir, "runsc");
    const state = join(dir, "state");
    mkdirSync(state);
    const ids = [`stasis-build-${process.ppid}-aaaaaaaaaaaa`, "stasis-build-999999999-bbbbbbbbbbbb", "stasis-build-cccccccccccc", `stasis-build-${process.pid}-dddddddddddd`];
    writeFileSync(runsc, `#!/bin/sh\necho "$*" >> '${log}'\ncase "$3" in list) printf '%s\\n' ${ids.join(" ")};; kill) exit 1;; esac\n`);
    chmodSync(runsc, 0o755);
    const removed = await removeStaleBuildContainers({ runscPath: runsc, stateRoot: state });
    expect(removed).toEqual(ids.slice(1));
    const calls = readFileSync(log, "utf8").trim().split("\n");
    expect(calls).toEqual([
      `--root ${state} list -quiet`,
      `--root ${state} kill --all ${ids[1]} KILL`,
      `--root ${state} delete -force ${ids[1]}`,
      `--root ${state} kill --all ${ids[2]} KILL`,
      `--root ${state} delete -force ${ids[2]}`,
      `--root ${state} kill --all ${ids[3]} KILL`,
      `--root ${state} delete -force ${ids[3]}`,
    ]);
  });

  it("never throws", async () => {
    await expect(removeStaleBuildContainers({ runscPath: join(dir, "missing"), stateRoot: dir })).resolves.toEqual([]);
    await expect(removeStaleBuildContainers({ runscPath: "/bin/true", stateRoot: join(dir, "none") })).resolves.toEqual([]);
  });
});
