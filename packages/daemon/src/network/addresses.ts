import { parseEgressTarget, parseIpv4 } from "@stasis/protocol";

export function formatIpv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** One sandbox's link: a /30 whose first host address is the host's side (its gateway), the second its own. */
export interface SandboxLink {
  gateway: string;
  address: string;
}

/**
 * The daemon's sandbox range, cut into /30 links. Block 0 is never handed out: its first address is the
 * resolver every sandbox's resolv.conf names (the same in every sandbox, so a fork's copied disk stays
 * right), which the host redirects to the daemon's DNS.
 */
export class AddressRange {
  private readonly base: number;
  private readonly blocks: number;
  readonly cidr: string;

  constructor(cidr: string) {
    const parsed = parseEgressTarget(cidr);
    if (parsed?.kind !== "cidr") throw new Error(`not a CIDR: ${cidr}`);
    this.base = parsed.network;
    this.blocks = 2 ** (32 - parsed.prefix) / 4;
    this.cidr = `${formatIpv4(parsed.network)}/${parsed.prefix}`;
  }

  /** The address sandboxes send DNS queries to. */
  get resolver(): string {
    return formatIpv4(this.base + 1);
  }

  get capacity(): number {
    return this.blocks - 1;
  }

  linkOf(address: string): SandboxLink {
    const n = parseIpv4(address);
    if (n === null || n - this.base < 4 || n - this.base >= this.blocks * 4 || (n - this.base) % 4 !== 2) throw new Error(`${address} is not a sandbox address in ${this.cidr}`);
    return { gateway: formatIpv4(n - 1), address };
  }

  /** A free sandbox address (the lowest), or null when every link is taken. */
  allocate(taken: ReadonlySet<string>): string | null {
    for (let block = 1; block < this.blocks; block++) {
      const address = formatIpv4(this.base + block * 4 + 2);
      if (!taken.has(address)) return address;
    }
    return null;
  }
}
