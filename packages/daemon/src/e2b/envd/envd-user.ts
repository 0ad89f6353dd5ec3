// Who an envd request acts as, and paths resolved as envd resolves them (against that user's home).
import { posix } from "node:path";
import type { Context } from "hono";
import { z } from "zod";
import { ConnectError } from "../connect-rpc.js";

/** E2B's default user; Stasis's base template has it (uid 1000, home /home/user). */
const DEFAULT_USER = "user";
export const MAX_PATH = 4096;

export const UserSchema = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$|^[0-9]{1,10}$/, "not a user name");

/** The user a request acts as: HTTP Basic `user:` as the SDK sends it, else E2B's default user. */
export function userOf(c: Context): string {
  const header = c.req.header("authorization") ?? "";
  const m = /^Basic\s+([A-Za-z0-9+/=]+)$/.exec(header);
  if (!m) return DEFAULT_USER;
  const user = Buffer.from(m[1]!, "base64").toString("utf8").split(":")[0] ?? "";
  if (user === "") return DEFAULT_USER;
  if (!UserSchema.safeParse(user).success) throw new ConnectError("invalid_argument", `'${user.slice(0, 40)}' is not a user name`);
  return user;
}

function homeOf(user: string): string {
  return user === "root" || user === "0" ? "/root" : `/home/${user}`;
}

/** envd resolves relative paths (and ~) against the user's home directory. */
export function resolvePath(path: string, user: string): string {
  if (path.includes("\0")) throw new ConnectError("invalid_argument", "paths cannot contain NUL");
  let absolute: string;
  if (path.startsWith("/")) absolute = path;
  else if (path === "~" || path.startsWith("~/")) absolute = homeOf(user) + path.slice(1);
  else absolute = posix.join(homeOf(user), path);
  const normal = posix.normalize(absolute);
  return normal.length > 1 && normal.endsWith("/") ? normal.slice(0, -1) : normal;
}
