import { z } from "zod";

const absolutePath = z
  .string()
  .min(1)
  .max(4096)
  .startsWith("/", "must be an absolute path")
  .regex(/^[^\0]*$/, "cannot contain NUL");

export const FileTypeSchema = z.enum(["file", "dir", "symlink", "other"]);

export const FileInfoSchema = z
  .object({
    name: z.string(),
    path: z.string(),
    type: FileTypeSchema,
    size: z.number().int(),
    mode: z.number().int(),
    mtime: z.iso.datetime(),
    uid: z.number().int(),
    gid: z.number().int(),
    symlinkTarget: z.string().nullable(),
  })
  .meta({ id: "FileInfo" });
export type FileInfo = z.infer<typeof FileInfoSchema>;

export const FileListSchema = z
  .object({ entries: z.array(FileInfoSchema), truncated: z.boolean() })
  .meta({ id: "FileList" });
export type FileList = z.infer<typeof FileListSchema>;

export const PathQuerySchema = z.object({ path: absolutePath }).strict();
export const ListQuerySchema = z
  .object({ path: absolutePath, depth: z.coerce.number().int().min(1).max(32).default(1) })
  .strict();
export const WriteQuerySchema = z
  .object({
    path: absolutePath,
    mode: z
      .string()
      .regex(/^[0-7]{3,4}$/, "octal permission bits, e.g. 644")
      .optional(),
    user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$|^[0-9]{1,10}$/).optional(),
  })
  .strict();
export const RemoveQuerySchema = z
  .object({ path: absolutePath, recursive: z.enum(["true", "false"]).default("false").transform((v) => v === "true") })
  .strict();

export const MkdirRequestSchema = z
  .object({ path: absolutePath, user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$|^[0-9]{1,10}$/).optional() })
  .strict();
export const MkdirResultSchema = z.object({ created: z.boolean() }).meta({ id: "MkdirResult" });
export const MoveRequestSchema = z.object({ from: absolutePath, to: absolutePath }).strict();
