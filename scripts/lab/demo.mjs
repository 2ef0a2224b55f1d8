// The sandbox's demo: a swarmnet network, a web service with one task per node (busybox httpd serving its node's
// name), each task's address, and every task reaching the next node's task by ICMP and HTTP. Prints the results;
// leaves the service running to play with.
import { docker } from './dockerd.mjs';
import { execInContainer, httpGetFromContainer, removeServiceAndNetwork, serviceContainers, waitServiceRunning } from './services.mjs';

export const DEMO_NETWORK = 'demo-net';
export const DEMO_SERVICE = 'demo-web';

export async function runDemo(sb, log = console.log) {
  const { manager, nodes } = sb;
  const replicas = nodes.length;
  const driver = sb.layout.networkDriver;
  log(`\n=== demo: network ${DEMO_NETWORK} (--driver ${driver} --ipam-driver ${driver}), service ${DEMO_SERVICE} x${replicas}`);
  await removeServiceAndNetwork(manager, nodes, DEMO_SERVICE, DEMO_NETWORK);
  await docker(manager, ['network', 'create', '--driver', driver, '--ipam-driver', driver, '--attachable', DEMO_NETWORK]);
  await docker(manager, ['service', 'create', '--detach', '--no-resolve-image', '--name', DEMO_SERVICE, '--replicas', String(replicas),
    '--replicas-max-per-node', '1', '--stop-grace-period', '1s', '--network', DEMO_NETWORK, '--hostname', '{{.Node.Hostname}}-web',
    'swarmnet/busybox', 'sh', '-c', 'hostname > /www/index.html && exec httpd -f -p 8080 -h /www']);
  const t = Date.now();
  await waitServiceRunning(manager, DEMO_SERVICE, replicas);
  log(`all ${replicas} tasks running after ${((Date.now() - t) / 1000).toFixed(0)} s`);
  const tasks = await serviceContainers(nodes, DEMO_SERVICE, DEMO_NETWORK);
  for (const c of tasks) log(`  ${c.node.name}: task ${c.name.slice(0, 40)} address ${c.address}/${c.prefixLen}`);
  let failures = 0;
  for (let i = 0; i < tasks.length && tasks.length > 1; i++) {
    const from = tasks[i];
    const to = tasks[(i + 1) % tasks.length];
    const ping = await execInContainer(from.node, from.id, ['ping', '-c', '1', '-W', '2', to.address]);
    const rtt = /time=([\d.]+ ms)/.exec(ping.stdout)?.[1];
    const http = await httpGetFromContainer(from.node, from.id, to.address, 8080);
    const ok = ping.code === 0 && http.ok;
    if (!ok) failures++;
    log(`  ${from.node.name} -> ${to.node.name} ${to.address}: ping ${ping.code === 0 ? `ok ${rtt}` : 'FAILED'}, ` +
      `http ${http.ok ? `ok "${http.body}"` : `FAILED (exit ${http.code}) ${http.stderr}`}`);
  }
  log(failures ? `demo: ${failures} cross-node check(s) failed` : 'demo: every task reached the next node\'s task by ICMP and TCP');
  log(`(left running; remove with: npm run sandbox -- exec node1 docker service rm ${DEMO_SERVICE})`);
  return { tasks, failures };
}
