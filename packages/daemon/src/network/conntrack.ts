import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";

/**
 * Where a redirected connection was going. nftables' redirect rewrites the destination to the proxy's
 * listener, but the kernel's connection tracking keeps the original in the entry's first (original
 * direction) tuple: `src=<client> dst=<original> sport=<client port> dport=<original port>`, then the
 * reply tuple `src=<proxy address> dst=<client> sport=<listener port> dport=<client port>`.
 */

export interface Destination {
  address: string;
  port: number;
}

export const CONNTRACK_PATH = "/proc/net/nf_conntrack";

interface Tuple {
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

/** The original and reply tuples of one /proc/net/nf_conntrack line, for TCP over IPv4; else null. */
export function parseConntrackLine(line: string): { original: Tuple; reply: Tuple } | null {
  const fields = line.trim().split(/\s+/);
  if (fields[0] !== "ipv4" || fields[2] !== "tcp") return null;
  const tuples: Partial<Tuple>[] = [{}, {}];
  const seen = { src: 0, dst: 0, sport: 0, dport: 0 };
  for (const f of fields) {
    const eq = f.indexOf("=");
    const key = f.slice(0, eq);
    if (eq <= 0 || !(key in seen)) continue;
    const k = key as keyof Tuple;
    const tuple = tuples[seen[k]++];
    if (tuple === undefined) continue;
    const value = f.slice(eq + 1);
    if (k === "src" || k === "dst") tuple[k] = value;
    else tuple[k] = Number(value);
  }
  const [original, reply] = tuples as [Partial<Tuple>, Partial<Tuple>];
  const complete = (t: Partial<Tuple>): t is Tuple => t.src !== undefined && t.dst !== undefined && Number.isInteger(t.sport) && Number.isInteger(t.dport);
  return complete(original) && complete(reply) ? { original, reply } : null;
}

/**
 * The original destination of the TCP connection from `client:clientPort` that was redirected to the
 * listener on `listenerPort`; null when no entry matches or the table cannot be read (no conntrack procfs).
 */
export async function originalDestination(client: string, clientPort: number, listenerPort: number, path = CONNTRACK_PATH): Promise<Destination | null> {
  const needle = `sport=${clientPort} `;
  const stream = createReadStream(path, { encoding: "utf8" });
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      if (!line.includes(needle) || !line.includes(client)) continue;
      const entry = parseConntrackLine(line);
      if (entry === null) continue;
      const { original, reply } = entry;
      if (original.src === client && original.sport === clientPort && reply.dst === client && reply.dport === clientPort && reply.sport === listenerPort) {
        return { address: original.dst, port: original.dport };
      }
    }
    return null;
  } catch {
    return null;
  } finally {
    lines.close();
    stream.destroy();
  }
}
