// The uid and gid a build step runs as, looked up in the layers below it.
import { join } from "node:path";
import { BoundedReadError, readBoundedFile } from "../bounded-read.js";
import type { BuildStep } from "../template-definition.js";
import { BuildStepError, isSymlink } from "./build-common.js";

/** Most of /etc/passwd or /etc/group read to look a USER up. */
const MAX_USER_DB_BYTES = 1024 * 1024;

/**
 * uid/gid for a USER: numbers as given, names looked up in the layer's /etc/passwd and /etc/group. The
 * files are read from the host side, so a symlinked /etc or passwd (which could point at host files) is
 * refused rather than followed; so is anything but a regular file of at most 1 MiB (a FIFO would block
 * the daemon's event loop forever, a device node is a host device, a huge sparse file reads GBs).
 */
export async function resolveUser(rootfs: string, user: string | null, step: BuildStep): Promise<{ uid: number; gid: number }> {
  if (user === null || user === "root" || user === "0") return { uid: 0, gid: 0 };
  const [u = "", g] = user.split(":");
  const read = async (file: string): Promise<string[][]> => {
    const refuse = (what: string) => new BuildStepError(`/etc/${file} in the template is ${what}; USER needs a plain file to look '${user}' up`, null, step.text, step.line);
    if (isSymlink(join(rootfs, "etc"))) throw refuse("a symlink");
    try {
      return (await readBoundedFile(join(rootfs, "etc", file), MAX_USER_DB_BYTES)).toString("utf8").split("\n").map((l) => l.split(":"));
    } catch (err) {
      if (!(err instanceof BoundedReadError)) return [];
      const why = { missing: null, symlink: "a symlink", not_regular: "not a regular file", too_large: `larger than ${MAX_USER_DB_BYTES / 1024 / 1024} MiB` }[err.reason];
      if (why === null) return []; // missing: the name is not found
      throw refuse(why);
    }
  };
  const passwd = /^\d+$/.test(u) ? null : (await read("passwd")).find((f) => f[0] === u);
  if (passwd === undefined) throw new BuildStepError(`USER '${u}' does not exist in the template (add it with RUN useradd)`, null, step.text, step.line, "invalid_template");
  const uid = passwd ? Number(passwd[2]) : Number(u);
  let gid = passwd ? Number(passwd[3]) : uid;
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const group = (await read("group")).find((f) => f[0] === g);
      if (!group) throw new BuildStepError(`group '${g}' does not exist in the template`, null, step.text, step.line, "invalid_template");
      gid = Number(group[2]);
    }
  }
  return { uid, gid };
}
