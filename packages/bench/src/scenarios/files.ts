import { randomBytes } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Sandbox } from "@stasis/sdk";
import type { BenchContext } from "../context.js";
import { mustRun, time } from "../host.js";

/** MiB per second for `bytes` moved in `ms`. */
const rate = (bytes: number, ms: number) => bytes / 1048576 / (ms / 1000);

/**
 * File write and read through the API (SDK `files.write` / `files.read`, raw bytes over HTTP, through the
 * guest agent), as throughput, against a host `cp` of the same bytes on the same disk.
 */
export async function filesScenario(ctx: BenchContext): Promise<void> {
  ctx.log("\n# files through the API, gvisor");
  const s = await Sandbox.create({ runtime: "gvisor", idleTimeoutMs: 0, memoryMiB: 1024, ...ctx.conn });
  try {
    for (const { sizeMiB, n } of ctx.profile.files) {
      const bytes = sizeMiB * 1048576;
      const data = randomBytes(bytes);
      const src = join(ctx.workDir, `file-${sizeMiB}.bin`);
      const dst = join(ctx.workDir, `file-${sizeMiB}.copy`);
      writeFileSync(src, data);
      const path = `/root/file-${sizeMiB}.bin`;
      const write: number[] = [];
      const read: number[] = [];
      const cp: number[] = [];
      for (let i = 0; i < n; i++) {
        write.push(rate(bytes, await time(() => s.files.write(path, data))));
        read.push(
          rate(
            bytes,
            await time(async () => {
              const got = await s.files.read(path);
              if (got.byteLength !== bytes) throw new Error(`read ${got.byteLength} bytes of ${bytes}`);
            }),
          ),
        );
        rmSync(dst, { force: true });
        cp.push(rate(bytes, await time(() => mustRun(["cp", src, dst]))));
      }
      rmSync(src, { force: true });
      rmSync(dst, { force: true });
      await s.files.remove(path);
      const base = { label: `host 'cp' of a ${sizeMiB} MiB file`, samples: cp };
      ctx.rec.record({ id: `gvisor.files.${sizeMiB}.write`, section: "files", scenario: "files", label: `gvisor: write a ${sizeMiB} MiB file (SDK)`, unit: "MiB/s", better: "higher", samples: write, baseline: base });
      ctx.rec.record({ id: `gvisor.files.${sizeMiB}.read`, section: "files", scenario: "files", label: `gvisor: read a ${sizeMiB} MiB file (SDK)`, unit: "MiB/s", better: "higher", samples: read, baseline: base });
    }
  } finally {
    await s.kill().catch(() => undefined);
  }
}
