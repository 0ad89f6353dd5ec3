import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";

/** The first TLS record(s) node:tls sends as a client: a real ClientHello, captured by a raw TCP server. */
export async function captureClientHello(options: ConnectionOptions = {}): Promise<Buffer> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      server.once("connection", (socket) => {
        let data = Buffer.alloc(0);
        socket.on("data", (chunk: Buffer) => {
          data = Buffer.concat([data, chunk]);
          if (data.length >= 5 && data.length >= 5 + data.readUInt16BE(3)) {
            socket.destroy();
            resolve(data.subarray(0, 5 + data.readUInt16BE(3)));
          }
        });
      });
      const client = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false, ...options });
      client.on("error", () => undefined);
      client.on("close", () => reject(new Error("closed before a whole ClientHello")));
    });
  } finally {
    server.close();
  }
}

/** Re-frames one handshake record's payload into records cut at `cuts` (offsets into the payload). */
export function splitRecords(record: Buffer, cuts: number[]): Buffer {
  const payload = record.subarray(5);
  const bounds = [0, ...cuts, payload.length];
  const out: Buffer[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const part = payload.subarray(bounds[i], bounds[i + 1]);
    const header = Buffer.from([0x16, 3, 1, 0, 0]);
    header.writeUInt16BE(part.length, 3);
    out.push(header, part);
  }
  return Buffer.concat(out);
}

/** A throwaway self-signed certificate for `names` (openssl CLI), as PEM. */
export function selfSignedCert(names: string[]): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), "stasis-cert-"));
  try {
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
      "-subj", `/CN=${names[0] ?? "test"}`, "-addext", `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`,
      "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
    ], { stdio: "ignore" });
    return { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
