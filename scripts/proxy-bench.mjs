// Egress proxy cost on loopback: connect + first byte, and throughput, direct vs through the proxy.
// Not a test (no assertions): a number to compare with issue 15's target (< 3 ms added through the proxy).
// Run after `npx tsc -b`:  node scripts/proxy-bench.mjs [rounds=300] [megabytes=1024]
import { createServer, connect } from "node:net";
import { performance } from "node:perf_hooks";
import pino from "pino";
import { Guardrails } from "../packages/daemon/dist/network/egress-decision.js";
import { startEgressProxy } from "../packages/daemon/dist/network/egress-proxy.js";

const rounds = Number(process.argv[2] ?? 300);
const megabytes = Number(process.argv[3] ?? 1024);
const chunk = Buffer.alloc(1 << 20, 0x61);

// One server: answers a small request at once, or streams `megabytes` for a request to /big.
const server = createServer((socket) => {
  socket.on("error", () => {});
  socket.once("data", (d) => {
    if (!d.toString("latin1").startsWith("GET /big ")) return socket.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${megabytes << 20}\r\nConnection: close\r\n\r\n`);
    let left = megabytes;
    const pump = () => {
      while (left > 0) {
        left--;
        if (!socket.write(chunk)) return socket.once("drain", pump);
      }
      socket.end();
    };
    pump();
  });
});
await new Promise((r) => server.listen(0, "127.0.0.2", r));
const serverPort = server.address().port;

const policy = { internet: false, allowOut: ["bench.test"], denyOut: [] };
const proxy = await startEgressProxy({
  host: "127.0.0.1", httpPort: 0, tlsPort: 0,
  logger: pino({ level: "warn" }),
  guardrails: new Guardrails({ sandboxRange: "10.250.0.0/16", hostAddresses: [], opened: ["127.0.0.0/8"], testOnlyOpenLoopback: true }),
  lookup: (src) => (src === "127.0.0.1" ? { id: "bench", address: src, policy, placeholders: {} } : undefined),
  resolve: async () => ["127.0.0.2"],
  dialPorts: { http: serverPort, tls: serverPort },
});

/** Connect, send a request, wait for the first byte; then read to the end. Returns [ms to first byte, bytes, ms total]. */
function exchange(host, port, path) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let first = 0;
    let bytes = 0;
    const socket = connect({ host, port }, () => socket.write(`GET ${path} HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n`));
    socket.on("data", (d) => {
      if (first === 0) first = performance.now() - t0;
      bytes += d.length;
    });
    socket.on("error", reject);
    socket.on("close", () => resolve([first, bytes, performance.now() - t0]));
  });
}

const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const report = (label, xs) => console.log(`${label.padEnd(28)} median ${pct(xs, 50).toFixed(3)} ms  p90 ${pct(xs, 90).toFixed(3)} ms  p99 ${pct(xs, 99).toFixed(3)} ms`);

const direct = [];
const proxied = [];
for (let i = 0; i < 20; i++) await exchange("127.0.0.2", serverPort, "/"), await exchange("127.0.0.1", proxy.httpPort, "/");
for (let i = 0; i < rounds; i++) {
  direct.push((await exchange("127.0.0.2", serverPort, "/"))[0]);
  proxied.push((await exchange("127.0.0.1", proxy.httpPort, "/"))[0]);
}
console.log(`connect + request + first byte, ${rounds} rounds each (interleaved):`);
report("direct", direct);
report("through the proxy", proxied);
console.log(`added by the proxy (median): ${(pct(proxied, 50) - pct(direct, 50)).toFixed(3)} ms`);

for (const [label, host, port] of [["direct", "127.0.0.2", serverPort], ["through the proxy", "127.0.0.1", proxy.httpPort]]) {
  const [, bytes, ms] = await exchange(host, port, "/big");
  console.log(`throughput ${label.padEnd(18)} ${((bytes / (1 << 20)) / (ms / 1000)).toFixed(0)} MiB/s (${(bytes / (1 << 20)).toFixed(0)} MiB in ${ms.toFixed(0)} ms)`);
}
console.log("proxy counters:", JSON.stringify(proxy.proxyCounters()));
await proxy.close();
server.close();
