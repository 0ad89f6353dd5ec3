import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { originalDestination, parseConntrackLine } from "./conntrack.js";

// A sandbox at 10.77.0.2 dialled 93.184.216.34:443, redirected to the proxy's TLS listener on 15443.
const redirected = "ipv4     2 tcp      6 431999 ESTABLISHED src=10.77.0.2 dst=93.184.216.34 sport=40312 dport=443 src=10.77.0.1 dst=10.77.0.2 sport=15443 dport=40312 [ASSURED] mark=0 zone=0 use=2";
const table = [
  "ipv4     2 udp      17 20 src=10.77.0.2 dst=10.77.0.1 sport=40312 dport=53 src=10.77.0.1 dst=10.77.0.2 sport=53 dport=40312 mark=0 zone=0 use=2",
  // Same client port, another sandbox.
  "ipv4     2 tcp      6 431999 ESTABLISHED src=10.77.0.3 dst=1.1.1.1 sport=40312 dport=443 src=10.77.0.1 dst=10.77.0.3 sport=15443 dport=40312 [ASSURED] mark=0 zone=0 use=2",
  // Same client and port, not redirected to our listener.
  "ipv4     2 tcp      6 100 TIME_WAIT src=10.77.0.2 dst=8.8.8.8 sport=40312 dport=853 src=8.8.8.8 dst=192.0.2.10 sport=853 dport=40312 [ASSURED] mark=0 zone=0 use=2",
  "garbage line",
  redirected,
].join("\n");

describe("conntrack", () => {
  it("parses both tuples of a TCP entry", () => {
    expect(parseConntrackLine(redirected)).toEqual({
      original: { src: "10.77.0.2", dst: "93.184.216.34", sport: 40312, dport: 443 },
      reply: { src: "10.77.0.1", dst: "10.77.0.2", sport: 15443, dport: 40312 },
    });
    expect(parseConntrackLine("ipv6 10 tcp 6 1 src=::1 dst=::1 sport=1 dport=2 src=::1 dst=::1 sport=2 dport=1")).toBeNull();
    expect(parseConntrackLine("ipv4 2 tcp 6 1 src=1.2.3.4 dst=5.6.7.8 sport=1")).toBeNull();
  });

  it("finds the original destination of the redirected connection only", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "stasis-ct-")), "nf_conntrack");
    writeFileSync(path, `${table}\n`);
    expect(await originalDestination("10.77.0.2", 40312, 15443, path)).toEqual({ address: "93.184.216.34", port: 443 });
    expect(await originalDestination("10.77.0.2", 40312, 15080, path)).toBeNull();
    expect(await originalDestination("10.77.0.4", 40312, 15443, path)).toBeNull();
  });

  it("gives null when the table is absent (the proxy then refuses)", async () => {
    expect(await originalDestination("10.77.0.2", 40312, 15443, join(tmpdir(), "no-such-conntrack"))).toBeNull();
  });
});
