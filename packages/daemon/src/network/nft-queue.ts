import { applyNft } from "./firewall.js";

interface Change {
  script: string;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Changes to the daemon's nftables table, one `nft` run at a time and in order. Changes that queue while a
 * run is going go together in the next run: a run costs ~6 ms here whatever its size, so sandboxes starting
 * at once (a fork's two, a burst of creates) share one instead of waiting on each other's. A combined run is
 * one transaction; when it fails, its changes are tried again one by one, so a bad change fails only its
 * own caller.
 */
export class NftQueue {
  private pending: Change[] = [];
  private running = false;

  constructor(private readonly run: (script: string) => Promise<void> = applyNft) {}

  apply(script: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ script, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0);
        if (batch.length === 1) {
          await this.settle(batch[0]!);
          continue;
        }
        try {
          await this.run(batch.map((c) => c.script).join(""));
          for (const c of batch) c.resolve();
        } catch {
          for (const c of batch) await this.settle(c);
        }
      }
    } finally {
      this.running = false;
    }
  }

  private async settle(change: Change): Promise<void> {
    try {
      await this.run(change.script);
      change.resolve();
    } catch (err) {
      change.reject(err);
    }
  }
}
