import { afterEach, describe, expect, it } from "vitest";
import { checkDiskFits, freeBytes } from "./disk-space.js";
import { params, TestHost } from "./lifecycle/test-support/harness.js";

const MiB = 1024 * 1024;

describe("disk size against the host's free space", () => {
  it("accepts a disk that fits, refuses one larger than the free space with both sizes in the message", () => {
    expect(() => checkDiskFits(4096, 4096 * MiB, "/d")).not.toThrow();
    expect(() => checkDiskFits(4096, null, "/d")).not.toThrow();
    expect(() => checkDiskFits(4097, 4096 * MiB, "/d")).toThrow(expect.objectContaining({ code: "insufficient_storage", status: 507, message: expect.stringMatching(/diskMiB 4097 is more than the 4096 MiB free.*\/d/) as string }));
  });

  let env: TestHost | undefined;
  afterEach(() => env?.close());

  it("a create asking for more disk than the host has free is refused with 507 before anything is made", async () => {
    env = new TestHost();
    const d = await env.startDaemon();
    const free = freeBytes(env.dir)!;
    const diskMiB = Math.min(1024 * 1024, Math.floor(free / MiB) + 1);
    // (Skipped only on a host with over 1 TiB free, where no valid request can exceed it.)
    if (diskMiB * MiB <= free) return;
    await expect(d.service.create(params({ diskMiB }))).rejects.toMatchObject({ code: "insufficient_storage", message: expect.stringContaining(`diskMiB ${diskMiB}`) as string });
    expect(d.service.list({ limit: 10 }).sandboxes).toEqual([]);
    // A disk that fits is made as before.
    await expect(d.service.create(params({ diskMiB: 512 }))).resolves.toMatchObject({ diskMiB: 512 });
  });
});
