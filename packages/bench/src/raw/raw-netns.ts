import { mustRun, runProcess } from "../host.js";

/** A network namespace with a veth pair and a /30 for a raw runsc container (as the daemon gives a sandbox). */
export interface RawNetns {
  name: string;
  path: string;
  /** The container's address (the namespace side). */
  address: string;
}

/**
 * Makes (again) a namespace `name` with the container side `address` (a /30's second address) and the
 * host side the first. runsc takes the namespace's addresses over, so each run or restore needs a fresh one.
 */
export async function makeRawNetns(name: string, hostIface: string, subnet: string): Promise<RawNetns> {
  await removeRawNetns(name, hostIface);
  const [a, b, c, d] = subnet.split(".").map(Number) as [number, number, number, number];
  const host = `${a}.${b}.${c}.${d + 1}`;
  const address = `${a}.${b}.${c}.${d + 2}`;
  await mustRun(["ip", "netns", "add", name]);
  await mustRun(["ip", "link", "add", hostIface, "type", "veth", "peer", "name", "eth0", "netns", name]);
  await mustRun(["ip", "addr", "add", `${host}/30`, "dev", hostIface]);
  await mustRun(["ip", "link", "set", hostIface, "up"]);
  await mustRun(["ip", "-n", name, "addr", "add", `${address}/30`, "dev", "eth0"]);
  await mustRun(["ip", "-n", name, "link", "set", "eth0", "up"]);
  await mustRun(["ip", "-n", name, "link", "set", "lo", "up"]);
  await mustRun(["ip", "-n", name, "route", "add", "default", "via", host]);
  return { name, path: `/var/run/netns/${name}`, address };
}

/** Removes the namespace and the host side of its pair; never throws. */
export async function removeRawNetns(name: string, hostIface: string): Promise<void> {
  await runProcess(["ip", "link", "del", hostIface], { timeoutMs: 10_000 }).catch(() => undefined);
  await runProcess(["ip", "netns", "del", name], { timeoutMs: 10_000 }).catch(() => undefined);
}
