import { z } from "zod";

/** An absolute path inside the sandbox. */
export const AbsolutePathSchema = z
  .string()
  .min(1)
  .max(4096)
  .startsWith("/", "must be an absolute path")
  .regex(/^[^\0]*$/, "cannot contain NUL");

/** A user of the sandbox's /etc/passwd, by name or numeric uid. */
export const UserSchema = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$|^[0-9]{1,10}$/);

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

export const PathQuerySchema = z.object({ path: AbsolutePathSchema }).strict();
export const ListQuerySchema = z
  .object({ path: AbsolutePathSchema, depth: z.coerce.number().int().min(1).max(32).default(1) })
  .strict();
export const WriteQuerySchema = z
  .object({
    path: AbsolutePathSchema,
    mode: z
      .string()
      .regex(/^[0-7]{3,4}$/, "octal permission bits, e.g. 644")
      .optional(),
    user: UserSchema.optional(),
  })
  .strict();
export const RemoveQuerySchema = z
  .object({ path: AbsolutePathSchema, recursive: z.enum(["true", "false"]).default("false").transform((v) => v === "true") })
  .strict();

export const MkdirRequestSchema = z
  .object({ path: AbsolutePathSchema, user: UserSchema.optional() })
  .strict();
export const MkdirResultSchema = z.object({ created: z.boolean() }).meta({ id: "MkdirResult" });
export const MoveRequestSchema = z.object({ from: AbsolutePathSchema, to: AbsolutePathSchema }).strict();
