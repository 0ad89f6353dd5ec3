/** HTTPS: where the certificates are and which port serves them. Off unless a certificate source is given. */
export interface TlsConfig {
  /** A default certificate and key (PEM files): served when no certificate in `dir` names the host (STASIS_TLS_CERT, STASIS_TLS_KEY). */
  certFile: string | null;
  keyFile: string | null;
  /** A folder of certificates picked by the names they carry (STASIS_TLS_DIR), e.g. certbot's /etc/letsencrypt/live. */
  dir: string | null;
  /** The HTTPS listen port, on the daemon's host (STASIS_HTTPS_PORT, default 7443; 0: any free port). */
  port: number;
}

export function loadTlsConfig(env: NodeJS.ProcessEnv): TlsConfig | null {
  const certFile = env.STASIS_TLS_CERT || null;
  const keyFile = env.STASIS_TLS_KEY || null;
  const dir = env.STASIS_TLS_DIR || null;
  if ((certFile === null) !== (keyFile === null)) throw new Error("STASIS_TLS_CERT and STASIS_TLS_KEY go together: give both files (PEM) or neither");
  if (certFile === null && dir === null) {
    if (env.STASIS_HTTPS_PORT) throw new Error("STASIS_HTTPS_PORT needs certificates: set STASIS_TLS_CERT and STASIS_TLS_KEY, or STASIS_TLS_DIR");
    return null;
  }
  const raw = env.STASIS_HTTPS_PORT ?? "";
  const port = raw === "" ? 7443 : Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`STASIS_HTTPS_PORT must be a port number, got '${raw}'`);
  return { certFile, keyFile, dir, port };
}
