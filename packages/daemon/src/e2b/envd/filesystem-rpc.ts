// envd's filesystem.Filesystem service: Stasis's file service, entries described as envd describes them.
import type { Context } from "hono";
import { z } from "zod";
import type { FileInfo } from "@stasis/protocol";
import { ApiError } from "../../errors/api-error.js";
import type { FileService, LinkedFileInfo } from "../../services/file-service.js";
import { ConnectError, unaryRequest, unaryResponse } from "../connect-rpc.js";
import { MAX_PATH, resolvePath, userOf } from "./envd-user.js";

const PASSWD_CACHE_MS = 30_000;

const PathRequest = z.object({ path: z.string().min(1).max(MAX_PATH) });
const ListDirRequest = z.object({ path: z.string().min(1).max(MAX_PATH), depth: z.number().int().min(0).max(32).default(1) });
const MoveRequest = z.object({ source: z.string().min(1).max(MAX_PATH), destination: z.string().min(1).max(MAX_PATH) });

export class EnvdFilesystem {
  private readonly passwd = new Map<string, { at: number; users: Map<number, string>; groups: Map<number, string> }>();

  constructor(private readonly files: FileService) {}

  /** One filesystem.Filesystem method; errors are thrown for the caller to answer. */
  async call(c: Context, id: string, rpc: string): Promise<Response> {
    switch (rpc) {
      case "filesystem.Filesystem/Stat": {
        const { path } = await unaryRequest(c, PathRequest);
        return unaryResponse({ entry: await this.entry(id, await this.files.statLinked(id, resolvePath(path, userOf(c)))) });
      }
      case "filesystem.Filesystem/MakeDir": {
        const user = userOf(c);
        const path = resolvePath((await unaryRequest(c, PathRequest)).path, user);
        const { created } = await this.files.mkdir(id, path, user);
        if (!created) throw new ConnectError("already_exists", `directory ${path} already exists`);
        return unaryResponse({ entry: await this.entry(id, await this.files.statLinked(id, path)) });
      }
      case "filesystem.Filesystem/Move": {
        const req = await unaryRequest(c, MoveRequest);
        const user = userOf(c);
        const destination = resolvePath(req.destination, user);
        await this.files.move(id, resolvePath(req.source, user), destination);
        return unaryResponse({ entry: await this.entry(id, await this.files.statLinked(id, destination)) });
      }
      case "filesystem.Filesystem/ListDir": {
        const req = await unaryRequest(c, ListDirRequest);
        const list = await this.files.listLinked(id, resolvePath(req.path, userOf(c)), Math.max(1, req.depth));
        const entries = [];
        for (const e of list) entries.push(await this.entry(id, e));
        return unaryResponse({ entries });
      }
      case "filesystem.Filesystem/Remove": {
        const { path } = await unaryRequest(c, PathRequest);
        // envd removes as `rm -rf` does: a path that is not there is already removed.
        await this.files.remove(id, resolvePath(path, userOf(c)), true).catch((err: unknown) => {
          if (!(err instanceof ApiError && err.code === "file_not_found")) throw err;
        });
        return unaryResponse({});
      }
      default:
        throw new ConnectError("unimplemented", `envd has no method ${rpc}`);
    }
  }

  /**
   * Stasis's FileInfo as envd's EntryInfo (enum names, int64 as a string, owner names). A symlink is
   * described as envd describes it: the type and mode of what it finally leads to, and that absolute path
   * as its target (the link's own path, typeless, when it leads nowhere).
   */
  private async entry(id: string, { info, link }: LinkedFileInfo): Promise<object> {
    const names = await this.ownerNames(id);
    const symlink = info.type === "symlink";
    const type = symlink ? (link ? link.type : "other") : info.type;
    return {
      name: info.name,
      type: type === "file" ? "FILE_TYPE_FILE" : type === "dir" ? "FILE_TYPE_DIRECTORY" : type === "symlink" ? "FILE_TYPE_SYMLINK" : "FILE_TYPE_UNSPECIFIED",
      path: info.path,
      size: String(info.size),
      mode: (symlink ? (link?.mode ?? 0) : info.mode) & 0o777,
      permissions: permissionString(info),
      owner: names.users.get(info.uid) ?? String(info.uid),
      group: names.groups.get(info.gid) ?? String(info.gid),
      modifiedTime: info.mtime,
      ...(symlink ? { symlinkTarget: link?.path ?? info.path } : {}),
    };
  }

  /** The sandbox's user and group names, read from its /etc/passwd and /etc/group (cached briefly). */
  private async ownerNames(id: string): Promise<{ users: Map<number, string>; groups: Map<number, string> }> {
    const cached = this.passwd.get(id);
    if (cached && Date.now() - cached.at < PASSWD_CACHE_MS) return cached;
    const read = async (path: string): Promise<Map<number, string>> => {
      const names = new Map<number, string>();
      try {
        const { size, body } = await this.files.read(id, path);
        if (size > 1024 * 1024) return names;
        const chunks: Buffer[] = [];
        for await (const chunk of body) chunks.push(chunk);
        for (const line of Buffer.concat(chunks).toString("utf8").split("\n")) {
          const [name, , num] = line.split(":");
          if (name && num && /^\d+$/.test(num) && !names.has(Number(num))) names.set(Number(num), name);
        }
      } catch {
        // Numbers instead of names.
      }
      return names;
    };
    const entry = { at: Date.now(), users: await read("/etc/passwd"), groups: await read("/etc/group") };
    if (this.passwd.size > 10_000) this.passwd.clear();
    this.passwd.set(id, entry);
    return entry;
  }
}

function permissionString(info: FileInfo): string {
  const kind = info.type === "dir" ? "d" : info.type === "symlink" ? "L" : "-";
  const bits = "rwxrwxrwx";
  let out = kind;
  for (let i = 0; i < 9; i++) out += info.mode & (1 << (8 - i)) ? bits[i] : "-";
  return out;
}
