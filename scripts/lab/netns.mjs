// Network namespaces, the underlay bridge and veths for the sandbox lab (iproute2 with argument arrays).
// Every function is idempotent where it can be: creating what exists is an error only if it differs, deleting what
// is gone is a no-op — so `up` after a crash and `down` twice both work.
import { existsSync } from 'node:fs';
import { run } from '../lib/proc.mjs';

export const linkExists = async (name, netns) =>
  (await run('ip', [...(netns ? ['-n', netns] : []), 'link', 'show', 'dev', name], { allowFailure: true })).code === 0;

export const netnsExists = (name) => existsSync(`/run/netns/${name}`);

/** Creates a bridge with an address (e.g. "10.99.0.1/24") and brings it up. */
export async function createBridge(name, address) {
  if (!(await linkExists(name))) await run('ip', ['link', 'add', 'name', name, 'type', 'bridge']);
  await run('ip', ['addr', 'replace', address, 'dev', name]);
  await run('ip', ['link', 'set', 'dev', name, 'up']);
}

/** Deletes a link in the root namespace (or in netns); missing is fine. */
export async function deleteLink(name, netns) {
  // A veth vanishes by itself once its peer's namespace is gone, possibly between the check and the delete.
  const r = await run('ip', [...(netns ? ['-n', netns] : []), 'link', 'del', 'dev', name], { allowFailure: true });
  if (r.code !== 0 && (await linkExists(name, netns))) throw new Error(`ip link del dev ${name} failed: ${r.stderr.trim()}`);
}

/** Creates a named network namespace (/run/netns/<name>) with loopback up. */
export async function createNetns(name) {
  if (!netnsExists(name)) await run('ip', ['netns', 'add', name]);
  await run('ip', ['-n', name, 'link', 'set', 'dev', 'lo', 'up']);
}

/** Deletes a named network namespace; missing is fine. Processes still inside keep the namespace alive. */
export async function deleteNetns(name) {
  if (netnsExists(name)) await run('ip', ['netns', 'del', name]);
}

/**
 * Connects netns to bridge: a veth `hostIf` (root namespace, enslaved to bridge) whose peer is `ifname` inside
 * netns with `address` (CIDR) and, if given, a default route via `gateway`. Replaces a leftover veth of that name.
 */
export async function addVethToBridge({ netns, bridge, hostIf, ifname = 'eth0', address, gateway }) {
  await deleteLink(hostIf);
  await deleteLink(ifname, netns);
  await run('ip', ['link', 'add', 'name', hostIf, 'type', 'veth', 'peer', 'name', ifname, 'netns', netns]);
  await run('ip', ['link', 'set', 'dev', hostIf, 'master', bridge, 'up']);
  await run('ip', ['-n', netns, 'addr', 'add', address, 'dev', ifname]);
  await run('ip', ['-n', netns, 'link', 'set', 'dev', ifname, 'up']);
  if (gateway) await run('ip', ['-n', netns, 'route', 'replace', 'default', 'via', gateway]);
}

/** Names of the links in a namespace (root if netns is undefined). */
export async function listLinks(netns) {
  const { stdout } = await run('ip', [...(netns ? ['-n', netns] : []), '-j', 'link', 'show']);
  return JSON.parse(stdout || '[]').map((l) => l.ifname);
}
