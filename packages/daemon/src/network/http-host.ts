import { classifyHost } from "./egress-decision.js";

/**
 * The host an HTTP/1.x request is for, read from the first bytes a sandbox sends on TCP 80 (the request
 * head up to its blank line). Called again with more bytes on `need-more`; the caller bounds the size.
 * Bytes that do not start like an HTTP request are `other` (some other protocol: the proxy then decides
 * by address). A head that starts like HTTP but is ambiguous (two Host headers, folded lines, a Host
 * that differs from an absolute URI's) is invalid, so no server reads another host than the one checked.
 */
export type HttpHostResult =
  | { kind: "need-more" }
  | { kind: "other" }
  /** `host` is null with no Host header (HTTP/1.0) or an IP literal; the port is stripped. */
  | { kind: "done"; host: string | null }
  | { kind: "invalid"; reason: string };

const requestLine = /^([A-Z]{1,16}) (\S{1,8192}) HTTP\/1\.[01]$/;
const headerLine = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/;
/** host, host:port, [v6], [v6]:port */
const hostPort = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/;

function hostOf(value: string): { host: string | null } | { invalid: string } {
  if (value === "") return { host: null };
  const m = hostPort.exec(value);
  if (m === null || m[1] === undefined) return { invalid: "malformed Host" };
  if (m[2] !== undefined && Number(m[2]) > 65_535) return { invalid: "malformed Host port" };
  const host = classifyHost(m[1]);
  if (host.kind === "invalid") return { invalid: "Host is not a DNS name" };
  return { host: host.kind === "name" ? host.name : null };
}

/** The authority of an absolute-form target (`http://host:port/path`), or undefined for origin-form. */
function absoluteAuthority(target: string): string | undefined {
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(target);
  if (m === null) return undefined;
  const authority = m[1] ?? "";
  return authority.slice(authority.lastIndexOf("@") + 1);
}

export function parseHttpHead(data: Buffer): HttpHostResult {
  const lineEnd = data.indexOf("\r\n");
  if (lineEnd === -1) {
    // Not even a whole request line yet: keep reading only while it can still become one.
    const start = data.toString("latin1", 0, Math.min(data.length, 17));
    return /^[A-Z]{0,16}$/.test(start) || /^[A-Z]{1,16} /.test(start) ? { kind: "need-more" } : { kind: "other" };
  }
  const first = requestLine.exec(data.toString("latin1", 0, lineEnd));
  if (first === null) return { kind: "other" };
  const headEnd = data.indexOf("\r\n\r\n");
  if (headEnd === -1) return { kind: "need-more" };
  const lines = data.toString("latin1", lineEnd + 2, headEnd).split("\r\n");
  let host: string | null | undefined;
  for (const line of lines) {
    if (line.length === 0) continue;
    if (line.startsWith(" ") || line.startsWith("\t")) return { kind: "invalid", reason: "folded header line" };
    const h = headerLine.exec(line);
    if (h === null) return { kind: "invalid", reason: "malformed header line" };
    if (h[1]?.toLowerCase() !== "host") continue;
    if (host !== undefined) return { kind: "invalid", reason: "two Host headers" };
    const parsed = hostOf(h[2] ?? "");
    if ("invalid" in parsed) return { kind: "invalid", reason: parsed.invalid };
    host = parsed.host;
  }
  const authority = absoluteAuthority(first[2] ?? "");
  if (authority !== undefined) {
    const parsed = hostOf(authority);
    if ("invalid" in parsed) return { kind: "invalid", reason: parsed.invalid };
    if (host !== undefined && host !== parsed.host) return { kind: "invalid", reason: "Host differs from the request URI's" };
    host = parsed.host;
  }
  return { kind: "done", host: host ?? null };
}
