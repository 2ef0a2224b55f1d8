// Types of ipvs-guest.mjs for TypeScript callers (the IPVS backend's guest test).
export interface GuestImage { dir: string; kernel: string; initrd: string; kver: string; pkg: string }
export function qemuMissing(): string | undefined;
export function ensureGuestImage(log?: (msg: string) => void): Promise<GuestImage>;
export function bundle(entry: string): Promise<string>;
export function bootGuest(opts: { image: GuestImage; script: string; timeoutSec?: number }): Promise<{ serial: string; code: number; ms: number }>;
