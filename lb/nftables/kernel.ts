import { runIn } from '../../common/exec.js';
import type { LbBackend } from '../backend.js';
import { DAMAGED, type LbDelta, type LbState } from '../desired.js';
import { parseListing, renderDelta, renderFull, renderRemove, TABLE } from './render.js';

/** The nftables backend: every write is one `nft -f -` transaction (all of it applies or none of it). */
export class NftablesBackend implements LbBackend {
  readonly kind = 'nftables' as const;
  /** The pick chains in the kernel (one per backend count in use): a delta creates the ones it needs. */
  private picks = new Set<number>();
  constructor(private readonly opts: { netns?: string } = {}) {}

  private nft(args: string[], input?: string, allowFailure = false): ReturnType<typeof runIn> {
    return runIn(this.opts.netns, 'nft', args, { input, allowFailure });
  }

  async apply(delta: LbDelta): Promise<void> {
    const picks = new Set(this.picks);
    const script = renderDelta(delta, picks);
    if (script) await this.nft(['-f', '-'], script);
    this.picks = picks;
  }

  async replace(state: LbState): Promise<void> {
    // No VIP left (the last service or network is gone): nothing of ours stays in the kernel.
    if (state.vips.size === 0) return this.remove();
    await this.nft(['-f', '-'], renderFull(state));
    this.picks = new Set([...state.vips.values()].map((e) => e.backends.length).filter((n) => n > 0));
  }

  async read(): Promise<LbState | undefined> {
    const r = await this.nft(['list', 'table', 'ip', TABLE], undefined, true);
    if (r.code !== 0) return undefined;
    const parsed = parseListing(r.stdout);
    if (!parsed) return DAMAGED;
    this.picks = parsed.picks;
    return parsed.state;
  }

  async remove(): Promise<void> {
    await this.nft(['-f', '-'], renderRemove());
    this.picks.clear();
  }
}
