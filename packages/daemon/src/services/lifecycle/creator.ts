import { dirname } from "node:path";
import type { CreateSandboxParams, Runtime, Sandbox } from "@stasis/protocol";
import { ApiError } from "../../errors/api-error.js";
import { annotate, traced } from "../../observability/tracing.js";
import { checkDiskFits, freeBytes } from "../disk-space.js";
import type { Booter } from "./boot.js";
import { EGRESS_CA_ENV } from "./network-files.js";
import { asApiError } from "./records.js";
import type { SandboxCore } from "./sandbox-core.js";
import { SANDBOX_ENV_FILE, writeSandboxEnv } from "./sandbox-env-file.js";
import type { WarmPools } from "./warm-pools.js";

export interface CreateExtras {
  /** Headers the egress proxy sets per host pattern (the E2B surface's `rules`). */
  headerRules?: Record<string, Record<string, string>>;
  /** Aborts when the client goes away: a sandbox created for nobody is removed, not left running. */
  abandoned?: AbortSignal;
}

/** A create: from a warm pool member when one fits, else booted (cold or from the template's snapshot). */
export class Creator {
  constructor(
    private readonly core: SandboxCore,
    private readonly booter: Booter,
    private readonly pools: WarmPools,
    private readonly get: (id: string) => Sandbox,
    private readonly remove: (id: string) => Promise<void>,
  ) {}

  create(params: CreateSandboxParams, extras: CreateExtras = {}): Promise<Sandbox> {
    const runtime = params.runtime ?? this.core.deps.config.defaultRuntime;
    return traced("sandbox.create", { "stasis.runtime": runtime, "stasis.template": params.template }, () => this.createTraced(params, runtime, extras));
  }

  private async createTraced(params: CreateSandboxParams, runtime: Runtime, extras: CreateExtras): Promise<Sandbox> {
    const { config, store, metrics, log: rootLog } = this.core.deps;
    const driver = this.core.usableDriver(runtime);
    const headerRules = extras.headerRules ?? {};
    const secrets = this.secretsFor(params.secrets, Object.keys(headerRules).length > 0);
    const base = this.booter.shapeOf(params, this.booter.resolveTemplate(params.template), runtime);
    // The placeholders (never the values) and where the egress CA is, in the sandbox's environment.
    const trustsMore = secrets !== null || (!!this.core.deps.extraCaPem && !!this.core.deps.network);
    const shape = trustsMore ? { ...base, env: { ...base.env, ...EGRESS_CA_ENV, ...secrets } } : base;
    const disks = dirname(this.core.deps.filesystem.paths("_").dir);
    checkDiskFits(shape.diskMiB, freeBytes(disks) ?? freeBytes(config.dataDir), disks);
    this.core.checkCapacity(1);
    const started = performance.now();
    // A pool member was booted without the egress CA: a create with secrets boots its own.
    const warm = secrets ? null : await this.pools.claim(shape, params);
    if (warm) {
      annotate({ "stasis.sandbox.id": warm.id, "stasis.created_via": "warm_pool" });
      metrics.sandboxCreate.observe({ runtime, via: "warm_pool" }, (performance.now() - started) / 1000);
      rootLog.info({ sandbox: warm.id, ms: Math.round((performance.now() - started) * 10) / 10 }, "sandbox created from the warm pool");
      return this.unlessAbandoned(warm, extras.abandoned);
    }
    // Checked in the same tick as the insert: a delete that began since the template was resolved either
    // sees this record (and refuses) or is seen here.
    this.booter.refuseIfDeleting(shape.template.ref);
    const record = this.booter.newRecord(params, shape, Date.now(), false, secrets ?? {}, headerRules);
    const log = rootLog.child({ sandbox: record.id, runtime });
    annotate({ "stasis.sandbox.id": record.id, "stasis.created_via": record.createdVia });
    store.insert(record);
    try {
      await this.booter.materialize(record, shape, driver, log);
      metrics.sandboxCreate.observe({ runtime, via: record.createdVia }, (performance.now() - started) / 1000);
      log.info({ ms: Math.round(performance.now() - started), via: record.createdVia, template: record.template }, "sandbox created");
      return await this.unlessAbandoned(this.get(record.id), extras.abandoned);
    } catch (err) {
      metrics.sandboxFailures.inc({ runtime, phase: "create" });
      log.error({ err }, "sandbox create failed");
      await this.core.teardown(record).catch((e: Error) => log.error({ err: e }, "cleanup after failed create failed"));
      store.delete(record.id);
      throw asApiError(err, "sandbox failed to start");
    } finally {
      this.core.updateGauges();
    }
  }

  /**
   * The end of a create: its env written for processes older than the sandbox (SANDBOX_ENV_FILE). A create
   * whose client went away (it timed out in a queue of creates) would leave a sandbox nobody knows of: removed.
   */
  private async unlessAbandoned(sandbox: Sandbox, abandoned: AbortSignal | undefined): Promise<Sandbox> {
    if (!abandoned?.aborted) {
      const agent = this.core.live.get(sandbox.id)?.agent;
      if (agent && Object.keys(sandbox.env).length > 0) {
        await writeSandboxEnv(agent, sandbox.env).catch((err: Error) => this.core.deps.log.warn({ sandbox: sandbox.id, err: err.message }, `could not write ${SANDBOX_ENV_FILE}`));
      }
      return sandbox;
    }
    this.core.deps.log.warn({ sandbox: sandbox.id }, "the client went away before its create answered: the sandbox is removed");
    await this.remove(sandbox.id);
    throw new ApiError("invalid_request", "the client closed the connection before the sandbox was created; it was removed");
  }

  /**
   * Placeholders for a create's secrets (null when it needs no TLS through the egress proxy: no secrets, no
   * header rules); refused up front when they cannot work.
   */
  private secretsFor(names: readonly string[], headerRules: boolean): Record<string, string> | null {
    if (names.length === 0 && !headerRules) return null;
    const { network, secrets } = this.core.deps;
    if (!network || !secrets) throw new ApiError("network_unavailable", "secrets need sandbox networking, which this daemon does not have (STASIS_NETWORK=off, or the host lacks ip/nftables: run `stasis doctor`)");
    return secrets.issue(names);
  }
}
