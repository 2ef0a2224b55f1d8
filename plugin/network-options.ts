import { PluginError } from './protocol/contract.js';

/** Driver options a user may pass with `docker network create -o key=value`. */
export interface NetworkOptions {
  mtu?: number;
}

const MTU_MIN = 576;
const MTU_MAX = 9000;

/**
 * Validates `-o` options. Docker's own keys (com.docker.*) pass through; anything else unknown is refused so a
 * typo (`-o mut=1400`) fails loudly instead of being ignored.
 */
export function parseNetworkOptions(raw: Record<string, unknown> | null | undefined): NetworkOptions {
  const out: NetworkOptions = {};
  for (const [key, value] of Object.entries(raw ?? {})) {
    if (key.startsWith('com.docker.')) {
      if (key === 'com.docker.network.driver.mtu') out.mtu = parseMtu(key, value);
      continue;
    }
    if (key === 'mtu') {
      out.mtu = parseMtu(key, value);
      continue;
    }
    throw new PluginError(`unknown swarmnet network option ${JSON.stringify(key)}; supported: mtu (e.g. -o mtu=1400)`, 400);
  }
  return out;
}

function parseMtu(key: string, value: unknown): number {
  // Only a string (the CLI's -o) or a number (an API client's): String() of anything else is a coercion that can
  // throw (an own "toString" member) or overflow the stack (a deeply nested array).
  const text = typeof value === 'string' || typeof value === 'number' ? String(value).trim() : undefined;
  if (text === undefined || !/^\d+$/.test(text) || Number(text) < MTU_MIN || Number(text) > MTU_MAX) {
    const shown = text ?? (value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value);
    throw new PluginError(`network option ${key}=${JSON.stringify(shown)}: MTU must be an integer from ${MTU_MIN} to ${MTU_MAX}`, 400);
  }
  return Number(text);
}

/** CreateNetwork carries the user's options under com.docker.network.generic (on workers: AllocateNetwork's reply). */
export function genericOptions(options: Record<string, unknown> | null | undefined): Record<string, unknown> {
  const generic = options?.['com.docker.network.generic'];
  return generic && typeof generic === 'object' && !Array.isArray(generic) ? (generic as Record<string, unknown>) : {};
}
