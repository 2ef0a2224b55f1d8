// Types of ipvs-guest.mjs for TypeScript callers (the guest tests and bench/overlay-guest).
/** `programs`: the optional programs the image holds (iperf3 when this machine has it). */
export interface GuestImage { dir: string; kernel: string; initrd: string; kver: string; pkg: string; programs: string[] }
export function qemuMissing(): string | undefined;
export function ensureGuestImage(log?: (msg: string) => void): Promise<GuestImage>;
export function bundle(entry: string): Promise<string>;
export function bootGuest(opts: { image: GuestImage; script: string; timeoutSec?: number }): Promise<{ serial: string; code: number; ms: number }>;
