import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../common/exec.js';
import { createEndpointLink } from '../../flannel/endpoint.js';
import type { LocalNode } from '../../flannel/model.js';

/**
 * A namespace lab: "hosts" are network namespaces on a shared underlay bridge (itself in its own namespace), with
 * Docker's FORWARD policy (DROP) and forwarding on; "containers" are namespaces attached through the endpoint helper.
 * Every name carries a random suffix so test files can run concurrently; destroy() removes exactly what was made.
 */

export const isRoot = process.getuid?.() === 0;
export const hasTools = ['/usr/sbin/ip', '/usr/sbin/bridge', '/usr/sbin/iptables', '/usr/bin/busybox'].every((p) => existsSync(p));

export function sh(ns: string, cmd: string, args: string[], allowFailure = false): ReturnType<typeof run> {
  return run('ip', ['netns', 'exec', ns, cmd, ...args], { allowFailure, timeoutMs: 30_000 }); // a guard against hangs
}

export interface LabHost { ns: string; node: LocalNode; stateDir: string }
export interface LabContainer { ns: string; ip: string; endpointId: string }

export class Lab {
  readonly id = randomBytes(3).toString('hex');
  readonly underlay = `swt${this.id}u`;
  private readonly namespaces: string[] = [];
  private readonly dirs: string[] = [];

  private async addNs(name: string): Promise<string> {
    await run('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  async init(): Promise<void> {
    await this.addNs(this.underlay);
    await run('ip', ['-n', this.underlay, 'link', 'add', 'underbr', 'type', 'bridge']);
    await run('ip', ['-n', this.underlay, 'link', 'set', 'underbr', 'up']);
  }

  /** A host on the underlay at 192.168.200.<octet>/24 with eth0 of the given MTU. */
  async host(name: string, octet: number, mtu = 1500): Promise<LabHost> {
    const ns = await this.addNs(`swt${this.id}${name}`);
    const port = `port-${name}`;
    await run('ip', ['-n', this.underlay, 'link', 'add', port, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns, 'mtu', String(mtu)]);
    await run('ip', ['-n', this.underlay, 'link', 'set', port, 'master', 'underbr', 'up']);
    const publicIp = `192.168.200.${octet}`;
    await run('ip', ['-n', ns, 'addr', 'add', `${publicIp}/24`, 'dev', 'eth0']);
    await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    await sh(ns, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
    await sh(ns, 'iptables', ['-w', '-P', 'FORWARD', 'DROP']); // as Docker does
    const stateDir = mkdtempSync(join(tmpdir(), `swarmnet-overlay-${name}-`));
    this.dirs.push(stateDir);
    return { ns, stateDir, node: { name: `node-${name}`, publicIp, underlayInterface: 'eth0', vxlanPort: 8472 } };
  }

  /** A container namespace on `bridge` of `host`: address ip/prefix, default route via the gateway. */
  async container(host: LabHost, name: string, bridge: string, ip: string, prefix: number, gateway: string, mtu: number): Promise<LabContainer> {
    const ns = await this.addNs(`swt${this.id}${name}`);
    const endpointId = randomBytes(32).toString('hex');
    const mac = `02:42:${randomBytes(4).toString('hex').match(/../g)!.join(':')}`;
    const { peerName } = await createEndpointLink({ bridge, endpointId, mac, mtu, netns: host.ns });
    await run('ip', ['-n', host.ns, 'link', 'set', peerName, 'netns', ns]);
    await run('ip', ['-n', ns, 'link', 'set', peerName, 'name', 'eth0']);
    await run('ip', ['-n', ns, 'addr', 'add', `${ip}/${prefix}`, 'dev', 'eth0']);
    await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    // A default route stands in for docker_gwbridge: it makes every other subnet reachable at the host, so only
    // the filter rules keep networks apart.
    await run('ip', ['-n', ns, 'route', 'add', 'default', 'via', gateway]);
    return { ns, ip, endpointId };
  }

  async destroy(): Promise<void> {
    for (const ns of this.namespaces.reverse()) await run('ip', ['netns', 'del', ns], { allowFailure: true });
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }
}

/**
 * One echo request; true if answered within waitS. The default leaves room for a busy machine; a check that
 * expects no answer may pass 1, since waiting longer could only turn a wrong pass into a failure.
 */
export async function ping(from: string, to: string, waitS = 5): Promise<boolean> {
  const r = await sh(from, 'busybox', ['ping', '-c', '1', '-W', String(waitS), to], true);
  return r.code === 0;
}

/** Polls `check` until it holds or `ms` pass (a guard: size it for a busy machine). */
export async function eventually(check: () => Promise<boolean>, ms: number, step = 50): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, step));
  }
}
