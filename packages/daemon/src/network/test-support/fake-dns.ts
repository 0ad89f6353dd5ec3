import { createSocket } from "node:dgram";
import { createServer, type AddressInfo } from "node:net";
import { parseQuery } from "../dns-packet.js";

/**
 * A stand-in upstream resolver on 127.0.0.1 (UDP and TCP, same port): A records from `names`, NXDOMAIN
 * for the rest; records every question it gets. `hold()` keeps answers back until `release()`;
 * `silent` never answers.
 */
export interface FakeUpstream {
  port: number;
  questions: { name: string; type: number; tcp: boolean }[];
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

export function dnsAnswer(query: Buffer, address: string | undefined): Buffer {
  const parsed = parseQuery(query);
  if (parsed.kind !== "query") throw new Error("fake upstream got a bad query");
  const header = Buffer.alloc(12);
  header.writeUInt16BE(parsed.id, 0);
  header.writeUInt16BE(0x8180 | (address === undefined ? 3 : 0), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(address === undefined ? 0 : 1, 6);
  const question = query.subarray(12, parsed.questionEnd);
  if (address === undefined) return Buffer.concat([header, question]);
  const answer = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, ...address.split(".").map(Number)]);
  return Buffer.concat([header, question, answer]);
}

export async function startFakeUpstream(names: Record<string, string>, options: { silent?: boolean } = {}): Promise<FakeUpstream> {
  const questions: FakeUpstream["questions"] = [];
  let held: (() => void)[] | null = null;
  const later = (f: () => void) => (held === null ? f() : held.push(f));
  const respond = (query: Buffer, tcp: boolean): Buffer | null => {
    const parsed = parseQuery(query);
    if (parsed.kind !== "query") return null;
    questions.push({ name: parsed.question.name, type: parsed.question.type, tcp });
    return options.silent === true ? null : dnsAnswer(query, names[parsed.question.name]);
  };
  const udp = createSocket("udp4");
  udp.on("message", (msg, rinfo) => {
    const a = respond(msg, false);
    if (a !== null) later(() => udp.send(a, rinfo.port, rinfo.address));
  });
  await new Promise<void>((resolve) => udp.bind(0, "127.0.0.1", resolve));
  const port = udp.address().port;
  const tcp = createServer((socket) => {
    socket.on("error", () => undefined);
    socket.once("data", (data: Buffer) => {
      const a = respond(data.subarray(2, 2 + data.readUInt16BE(0)), true);
      if (a === null) return;
      const len = Buffer.alloc(2);
      len.writeUInt16BE(a.length);
      later(() => socket.end(Buffer.concat([len, a])));
    });
  });
  await new Promise<void>((resolve) => tcp.listen(port, "127.0.0.1", resolve));
  if ((tcp.address() as AddressInfo).port !== port) throw new Error("fake upstream: TCP port differs");
  return {
    port,
    questions,
    hold: () => {
      held = [];
    },
    release: () => {
      const fs = held ?? [];
      held = null;
      for (const f of fs) f();
    },
    close: () =>
      new Promise<void>((resolve) => {
        udp.close();
        tcp.close(() => resolve());
      }),
  };
}
