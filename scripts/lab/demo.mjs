// The sandbox's demo: a swarmnet network, a web service with one task per node (busybox httpd serving its node's
// name), each task's address, every task reaching the next node's task by ICMP and HTTP, and every task reaching
// the service by its name (its VIP, balanced over all tasks). Prints the results; leaves the service running.
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
  // The service by name, as a user would: `wget http://demo-web:8080/` resolves to the VIP, which any task answers.
  const loop = 'i=0; while [ $i -lt "$1" ]; do timeout 3 wget -q -O - "$2" 2>/dev/null || echo FAILED; i=$((i+1)); done';
  for (const from of tasks) {
    const r = await execInContainer(from.node, from.id, ['sh', '-c', loop, 'sh', '12', `http://${DEMO_SERVICE}:8080/`], 60_000);
    const seen = {};
    for (const l of r.stdout.split('\n').map((x) => x.trim()).filter(Boolean)) seen[l] = (seen[l] ?? 0) + 1;
    if (seen.FAILED || Object.keys(seen).length === 0) failures++;
    log(`  ${from.node.name}: 12 x wget http://${DEMO_SERVICE}:8080/ answered by ${Object.entries(seen).map(([k, v]) => `${k} x${v}`).join(', ') || 'nobody'}`);
  }
  log(failures ? `demo: ${failures} check(s) failed` : 'demo: every task reached the next node\'s task by ICMP and TCP, and the service by its VIP');
  log(`(left running; remove with: npm run sandbox -- exec node1 docker service rm ${DEMO_SERVICE})`);
  return { tasks, failures };
}
