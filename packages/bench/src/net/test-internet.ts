import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * An "internet" of our own, so that network tests never depend on the outside world: a network namespace
 * with two addresses in 198.18.0.0/15 (reserved for benchmarks, so never a real host and not in the ranges
 * the daemon guards), serving HTTP on 80 and HTTPS on 443 (a certificate from its own CA) under a few DNS
 * names, and a DNS server on the host loopback that the daemon is pointed at. Every reply is JSON: which
 * address answered, the Host header and the bytes of body received; the request's headers go to a log the
 * test reads (`requests()`).
 */
export interface TestInternet {
  /** The addresses in the internet: `primary` serves every name; `secondary` serves too (to catch fronting). */
  primary: string;
  secondary: string;
  /** CIDR to open in the daemon (STASIS_NETWORK_OPEN): the internet is off the host's uplink. */
  cidr: string;
  /** `ip:port` of the DNS server (STASIS_DNS_UPSTREAM). */
  dns: string;
  /** Names that resolve to `primary`. */
  names: string[];
  /** The internet CA's certificate (PEM). */
  caPem: string;
  /** Requests the servers saw, newest last. */
  requests(): { local: string; host: string; url: string; headers: Record<string, string> }[];
  close(): Promise<void>;
}

const SERVER = `
const http = require("node:http"), https = require("node:https"), fs = require("node:fs");
const [cert, key, log] = process.argv.slice(2);
const handler = (req, res) => {
  // /bytes/N: N bytes (for throughput), headers not logged.
  const bytes = /^\\/bytes\\/(\\d{1,10})$/.exec(req.url ?? "");
  if (bytes) {
    let left = Number(bytes[1]);
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(left) });
    const chunk = Buffer.alloc(256 * 1024);
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once("drain", pump);
      }
      res.end();
    };
    return pump();
  }
  let received = 0;
  req.on("data", (chunk) => (received += chunk.length));
  req.on("end", () => {
    fs.appendFileSync(log, JSON.stringify({ local: req.socket.localAddress, host: req.headers.host ?? "", url: req.url, headers: req.headers, received }) + "\\n");
    // Headers go to the log only, never back: a secret the proxy put in must not come back to the sandbox.
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ local: req.socket.localAddress, host: req.headers.host ?? "", received }));
  });
};
http.createServer(handler).listen(80, "0.0.0.0");
https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, handler).listen(443, "0.0.0.0", () => console.log("ready"));
`;

function sh(cmd: string, args: string[]): void {
  const out = spawnSync(cmd, args, { encoding: "utf8" });
  if (out.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${out.stderr}`);
}

export async function startTestInternet(names = ["web1.stasis-test.net", "web2.stasis-test.net"]): Promise<TestInternet> {
  const n = 1 + Math.floor(Math.random() * 250);
  const ns = `stasis-inet-${process.pid}-${n}`;
  const hostIf = `sti${process.pid % 100000}${n}`.slice(0, 15);
  const [gateway, primary, secondary] = [`198.18.${n}.1`, `198.18.${n}.2`, `198.18.${n}.3`];
  const dir = mkdtempSync(join(tmpdir(), "stasis-inet-"));
  // Its CA and one leaf for every name.
  const san = names.map((name) => `DNS:${name}`).join(",");
  sh("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", join(dir, "ca.key"), "-out", join(dir, "ca.pem"), "-days", "2", "-subj", "/CN=stasis test internet CA"]);
  sh("openssl", ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", join(dir, "leaf.key"), "-out", join(dir, "leaf.csr"), "-subj", `/CN=${names[0]}`]);
  writeFileSync(join(dir, "ext.cnf"), `subjectAltName=${san}\n`);
  sh("openssl", ["x509", "-req", "-in", join(dir, "leaf.csr"), "-CA", join(dir, "ca.pem"), "-CAkey", join(dir, "ca.key"), "-CAcreateserial", "-out", join(dir, "leaf.pem"), "-days", "2", "-extfile", join(dir, "ext.cnf")]);
  writeFileSync(join(dir, "server.cjs"), SERVER);
  writeFileSync(join(dir, "requests.log"), "");

  sh("ip", ["netns", "add", ns]);
  sh("ip", ["link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", ns]);
  sh("ip", ["addr", "add", `${gateway}/24`, "dev", hostIf]);
  sh("ip", ["link", "set", hostIf, "up"]);
  for (const a of [primary, secondary]) sh("ip", ["-n", ns, "addr", "add", `${a}/24`, "dev", "eth0"]);
  sh("ip", ["-n", ns, "link", "set", "eth0", "up"]);
  sh("ip", ["-n", ns, "link", "set", "lo", "up"]);
  sh("ip", ["-n", ns, "route", "add", "default", "via", gateway]);
  const server: ChildProcess = spawn("ip", ["netns", "exec", ns, process.execPath, join(dir, "server.cjs"), join(dir, "leaf.pem"), join(dir, "leaf.key"), join(dir, "requests.log")], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    server.stdout!.once("data", () => resolve());
    server.once("exit", (code) => reject(new Error(`test internet server exited with ${code}`)));
  });

  const dns = await startDnsServer(Object.fromEntries(names.map((name) => [name, primary])));
  return {
    primary,
    secondary,
    cidr: `198.18.${n}.0/24`,
    dns: `127.0.0.1:${dns.port}`,
    names,
    caPem: readFileSync(join(dir, "ca.pem"), "utf8"),
    requests: () =>
      readFileSync(join(dir, "requests.log"), "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { local: string; host: string; url: string; headers: Record<string, string> }),
    async close() {
      server.kill("SIGKILL");
      dns.socket.close();
      spawnSync("ip", ["netns", "del", ns]);
      spawnSync("ip", ["link", "del", hostIf]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A DNS server for A queries of `records` (others: NXDOMAIN), enough for a resolver to forward to. */
async function startDnsServer(records: Record<string, string>): Promise<{ socket: UdpSocket; port: number }> {
  const socket = createSocket("udp4");
  socket.on("message", (msg, peer) => {
    if (msg.length < 12) return;
    let offset = 12;
    const labels: string[] = [];
    while (offset < msg.length && msg[offset]! > 0) {
      const len = msg[offset]!;
      labels.push(msg.subarray(offset + 1, offset + 1 + len).toString("ascii"));
      offset += len + 1;
    }
    const qtype = msg.readUInt16BE(offset + 1);
    const question = msg.subarray(12, offset + 5);
    const name = labels.join(".").toLowerCase();
    const address = records[name];
    const answer = address && qtype === 1 ? Buffer.concat([Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4]), Buffer.from(address.split(".").map(Number))]) : Buffer.alloc(0);
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2);
    header.writeUInt16BE(0x8180 | (address ? 0 : 3), 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answer.length > 0 ? 1 : 0, 6);
    socket.send(Buffer.concat([header, question, answer]), peer.port, peer.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
  return { socket, port: socket.address().port };
}
