import { PluginError } from './protocol/contract.js';

/**
 * Tracks background initialisation. Docker's calls that need etcd wait here for a bounded time and then
 * get a clear 503 naming what is still missing — never an unbounded wait.
 */
export class Readiness {
  private done = false;
  private waiting = 'starting';
  private waiters = new Set<() => void>();

  /** What initialisation is waiting for right now (shown in errors and /healthz). */
  setWaitingFor(what: string): void {
    this.waiting = what;
  }

  get status(): { ready: boolean; waitingFor?: string } {
    return this.done ? { ready: true } : { ready: false, waitingFor: this.waiting };
  }

  markReady(): void {
    this.done = true;
    for (const w of this.waiters) w();
    this.waiters.clear();
  }

  async wait(timeoutMs: number): Promise<void> {
    if (this.done) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(wake);
        reject(new PluginError(`swarmnet is not ready yet (waiting for ${this.waiting}); try again shortly`, 503));
      }, timeoutMs);
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      this.waiters.add(wake);
    });
  }
}
