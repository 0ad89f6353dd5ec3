import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@stasis/sdk";
import { startTestDaemon, type TestDaemon } from "./harness.js";
import { startTestInternet, type TestInternet } from "./test-internet.js";

/** Opens `n` connections and holds them all; prints how many got through, then the first error. */
const HOLD = `
import socket, sys
addr, n = sys.argv[1], int(sys.argv[2])
held, err = [], ""
for i in range(n):
    try:
        s = socket.create_connection((addr, 80), timeout=3); held.append(s)
    except Exception as e:
        err = err or type(e).__name__
print(len(held), err)
`;

const RATE = `
import socket, sys, time
addr, mib = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((addr, 80), timeout=30)
s.sendall(("GET /bytes/%d HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n" % (mib << 20)).encode())
t = time.perf_counter(); got = 0
while True:
    b = s.recv(1 << 20)
    if not b: break
    got += len(b)
print("%.2f" % (got * 8 / 1e6 / (time.perf_counter() - t)))
`;

const UPLOAD = `
import socket, sys, time
addr, mib = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((addr, 80), timeout=30)
s.sendall(("POST /up HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n" % (mib << 20)).encode())
t = time.perf_counter()
chunk = b"x" * (1 << 16)
for _ in range((mib << 20) // len(chunk)): s.sendall(chunk)
s.recv(1)
print("%.2f" % ((mib << 20) * 8 / 1e6 / (time.perf_counter() - t)))
`;

// Per-sandbox caps on connections and bandwidth (STASIS_NETWORK_MAX_CONNECTIONS, STASIS_NETWORK_BANDWIDTH_MBIT).
describe.each(["gvisor", "crun"] as const)("network limits on %s", (runtime) => {
  let inet: TestInternet;
  let daemon: TestDaemon;
  let sandbox: Sandbox;

  beforeAll(async () => {
    inet = await startTestInternet();
    daemon = await startTestDaemon({ STASIS_NETWORK_OPEN: inet.cidr, STASIS_DNS_UPSTREAM: inet.dns, STASIS_NETWORK_MAX_CONNECTIONS: "8", STASIS_NETWORK_BANDWIDTH_MBIT: "40" });
    sandbox = await Sandbox.create({ runtime, ...daemon.conn });
    await sandbox.files.write("/tmp/hold.py", HOLD);
    await sandbox.files.write("/tmp/rate.py", RATE);
    await sandbox.files.write("/tmp/upload.py", UPLOAD);
  });
  afterAll(async () => {
    await sandbox?.kill().catch(() => {});
    await daemon?.destroy();
    await inet?.close();
  });

  it("refuses connections past the sandbox's cap", async () => {
    const r = await sandbox.commands.run(`python3 /tmp/hold.py ${inet.primary} 12`, { timeoutMs: 60_000 });
    const [held, err] = r.stdout.trim().split(" ");
    expect(Number(held)).toBe(8);
    expect(err).toMatch(/ConnectionRefused|ConnectionReset|timeout|OSError/);
  });

  it("downloads at the configured bandwidth, not more", async () => {
    const mbit = Number((await sandbox.commands.run(`python3 /tmp/rate.py ${inet.primary} 10`, { timeoutMs: 60_000 })).stdout.trim());
    expect(mbit).toBeGreaterThan(10);
    expect(mbit).toBeLessThan(48);
  });

  it("uploads at the configured bandwidth, not more", async () => {
    const mbit = Number((await sandbox.commands.run(`python3 /tmp/upload.py ${inet.primary} 10`, { timeoutMs: 60_000 })).stdout.trim());
    expect(mbit).toBeGreaterThan(10);
    expect(mbit).toBeLessThan(48);
  });
});
