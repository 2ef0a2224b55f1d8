import { isIp } from '../common/cidr.js';
import { run } from '../common/exec.js';

/** The interface that carries VXLAN packets: its name, IPv4 address (the VTEP's local address) and MTU. */
export interface Underlay { name: string; address: string; mtu: number }

interface RawAddrLink { ifname: string; mtu: number; addr_info?: { family: string; local: string }[] }

/**
 * Finds the underlay: `spec` is an interface name or one of its IPv4 addresses (flanneld's `-iface`); without it,
 * the interface of the IPv4 default route, with the route's preferred source if it has one.
 */
export async function findUnderlay(spec?: string, netns?: string): Promise<Underlay> {
  const ns = netns ? ['-n', netns] : [];
  const links = JSON.parse((await run('ip', [...ns, '-json', 'addr', 'show'])).stdout || '[]') as RawAddrLink[];
  const v4 = (l: RawAddrLink): string[] => (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => a.local);
  const pick = (l: RawAddrLink, preferred?: string): Underlay => {
    const addrs = v4(l);
    const address = preferred && addrs.includes(preferred) ? preferred : addrs[0];
    if (!address) throw new Error(`underlay interface ${l.ifname} has no IPv4 address`);
    return { name: l.ifname, address, mtu: l.mtu };
  };
  if (spec) {
    const want = spec.trim();
    const found = isIp(want) ? links.find((l) => v4(l).includes(want)) : links.find((l) => l.ifname === want);
    if (!found) throw new Error(`underlay interface ${JSON.stringify(spec)} not found (give an interface name or one of its IPv4 addresses)`);
    return pick(found, isIp(want) ? want : undefined);
  }
  type Route = { dev?: string; prefsrc?: string };
  const routes = JSON.parse((await run('ip', [...ns, '-json', '-4', 'route', 'show', 'default'])).stdout || '[]') as Route[];
  const dev = routes.find((r) => r.dev)?.dev;
  const found = links.find((l) => l.ifname === dev);
  if (!found) throw new Error('no underlay interface: no IPv4 default route; set UNDERLAY_INTERFACE (or -iface=) to an interface name or address');
  return pick(found, routes[0]?.prefsrc);
}
