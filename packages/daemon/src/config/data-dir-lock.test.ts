import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { lockDataDir } from "./data-dir-lock.js";

const dir = mkdtempSync(join(tmpdir(), "stasis-lock-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("one daemon per data folder", () => {
  it("takes a free folder, refuses one a live daemon holds, takes over one whose daemon died", async () => {
    const lock = lockDataDir(dir);
    expect(readFileSync(join(dir, "daemon.pid"), "utf8").trim()).toBe(String(process.pid));
    lock.release();
    expect(existsSync(join(dir, "daemon.pid"))).toBe(false);

    // A live process that looks like a daemon (its command line says serve).
    const other = spawn("bash", ["-c", "exec -a 'stasis serve' sleep 30"], { stdio: "ignore" });
    await new Promise((r) => setTimeout(r, 100));
    writeFileSync(join(dir, "daemon.pid"), `${other.pid}\n`);
    expect(() => lockDataDir(dir)).toThrow(new RegExp(`another Stasis daemon \\(pid ${other.pid}\\)`));
    other.kill("SIGKILL");
    await new Promise((r) => other.once("exit", r));
    // Its pid is dead now: the folder is taken over.
    lockDataDir(dir).release();
    // A pid reused by an unrelated program does not hold the folder.
    const unrelated = spawn("sleep", ["30"], { stdio: "ignore" });
    writeFileSync(join(dir, "daemon.pid"), `${unrelated.pid}\n`);
    lockDataDir(dir).release();
    unrelated.kill("SIGKILL");
  });
});
