// Types of ipvs-guest.mjs for TypeScript callers (the guest tests and bench/overlay-guest).
export interface GuestImage { dir: string; kernel: string; initrd: string; kver: string; pkg: string }
export function qemuMissing(): string | undefined;
/** `extras`: programs beyond the tests' (iperf3, perf), for a bench's image. */
export function ensureGuestImage(log?: (msg: string) => void, extras?: ('iperf3' | 'perf')[]): Promise<GuestImage>;
export function bundle(entry: string): Promise<string>;
export function bootGuest(opts: { image: GuestImage; script: string; timeoutSec?: number }): Promise<{ serial: string; code: number; ms: number }>;
