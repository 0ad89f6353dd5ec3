import { z } from "zod";

/**
 * Preview URLs: every TCP port a process listens on inside a sandbox is reachable through the daemon at
 * `http://<port>-<sandboxId>.<domain>` (default domain `localhost`, on the API's own address, which browsers
 * and curl resolve with no DNS set-up). Private by default: a request needs the sandbox's access token (the
 * `X-Stasis-Preview-Token` header, or the cookie a signed URL sets); a public sandbox needs none. A request
 * to a paused or hibernated sandbox wakes it first.
 */
export const PreviewSchema = z
  .object({
    public: z.boolean().meta({ description: "Whether its ports are served without the access token." }),
    token: z.string().meta({ description: "The access token: send it as X-Stasis-Preview-Token (rotate it to revoke every signed URL and cookie)." }),
    urlTemplate: z.string().meta({ description: "The URL of a port: replace {port}." }),
  })
  .meta({ id: "Preview" });
export type Preview = z.infer<typeof PreviewSchema>;

export const SetPreviewRequestSchema = z
  .object({
    public: z.boolean().optional().meta({ description: "Serve its ports to anyone (true) or only with the token (false)." }),
    rotateToken: z.boolean().optional().meta({ description: "A new token: the old one, and every signed URL and cookie made from it, stop working." }),
  })
  .strict()
  .meta({ id: "SetPreviewRequest" });
export type SetPreviewRequest = z.infer<typeof SetPreviewRequestSchema>;

export const SignPreviewUrlRequestSchema = z
  .object({
    port: z.number().int().min(1).max(65535),
    expiresInS: z.number().int().min(1).max(30 * 24 * 3600).default(3600).meta({ description: "How long the URL opens the port (it sets a cookie on first use, which lasts as long)." }),
  })
  .strict()
  .meta({ id: "SignPreviewUrlRequest" });
export type SignPreviewUrlRequest = z.input<typeof SignPreviewUrlRequestSchema>;

export const SignedPreviewUrlSchema = z.object({ url: z.string(), expiresAt: z.iso.datetime() }).meta({ id: "SignedPreviewUrl" });
export type SignedPreviewUrl = z.infer<typeof SignedPreviewUrlSchema>;

export const ListeningPortSchema = z.object({ port: z.number().int(), url: z.string() }).meta({ id: "ListeningPort" });
export const PortListSchema = z.object({ ports: z.array(ListeningPortSchema) }).meta({ id: "PortList", description: "TCP ports a process listens on inside the sandbox (on every address or its own)." });
export type PortList = z.infer<typeof PortListSchema>;

const hostName = z
  .string()
  .min(1)
  .max(253)
  .regex(/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/, "a lower-case domain name such as app.example.com");

export const CreateDomainRequestSchema = z
  .object({
    host: hostName.meta({ description: "The host name to serve (point its DNS at the daemon, or at a proxy in front of it)." }),
    sandboxId: z.string().regex(/^sbx_[a-z0-9]{16}$/, "not a sandbox id"),
    port: z.number().int().min(1).max(65535),
  })
  .strict()
  .meta({ id: "CreateDomainRequest", description: "Serves a sandbox's port at a host name of your own; the sandbox's access settings apply." });
export type CreateDomainRequest = z.infer<typeof CreateDomainRequestSchema>;

export const DomainSchema = z
  .object({ host: z.string(), sandboxId: z.string(), port: z.number().int(), createdAt: z.iso.datetime() })
  .meta({ id: "Domain" });
export type Domain = z.infer<typeof DomainSchema>;
export const DomainListSchema = z.object({ domains: z.array(DomainSchema) }).meta({ id: "DomainList" });
