#!/usr/bin/env node
// `npm run sandbox -- <verb>`: a real multi-node Docker Swarm on this machine with the swarmnet plugin.
// See docs/sandbox.md. The work is in scripts/lab/ (shared with the end-to-end tests).
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { runDemo } from './lab/demo.mjs';
import { nodeCommand, nodeEnv } from './lab/dockerd.mjs';
import { DEFAULT_ENGINE } from './lab/engines.mjs';
import { childEnv } from './lib/proc.mjs';
import { down, loadSandbox, up } from './lab/sandbox.mjs';
import { status } from './lab/status.mjs';

const USAGE = `usage: npm run sandbox -- <verb>
  up [--nodes N] [--managers M] [--docker E] [--no-hook] [--prometheus] [--etcd-tls] [--no-demo] [--log-level L]
                         a swarm of N nodes (default 3; node1..M managers, default 1) with the plugin enabled
                         everywhere, then a short demo (a service on a swarmnet network, reached across nodes);
                         each node gets the runtime wrapper + createContainer hook (swarmnet host install)
                         unless --no-hook;
                         --docker 28 (default: Docker 28.5 from Debian sid, downloaded once into build/.cache),
                         20.10 (Debian 12's docker.io) or one per node, e.g. 28,20.10 (the last one repeats);
                         --prometheus: a Prometheus on http://10.99.0.1:9090 scraping every node, with the alert rules
                         --etcd-tls: etcd with mutual TLS (a throwaway CA) and auth; the plugins log in as a user
                         limited to /flannel/, with their certificate in their state directory's tls/
  exec <node> <cmd...>   run a command in a node's namespaces against its dockerd, e.g. exec node2 docker service ls
  status                 nodes, swarm state, plugin state, etcd
  demo                   run the demo again on a running sandbox
  down                   remove everything the sandbox made (and nothing else)`;

function fail(msg) {
  process.stderr.write(`sandbox: ${msg}\n`);
  process.exit(1);
}

async function exec(argv) {
  const [name, cmd, ...args] = argv;
  if (!name || !cmd) fail('usage: npm run sandbox -- exec <node> <command...>');
  const sb = loadSandbox();
  if (!sb) fail('no sandbox is up (npm run sandbox -- up)');
  const node = sb.nodes.find((n) => n.name === name);
  if (!node) fail(`no node ${name}; nodes: ${sb.nodes.map((n) => n.name).join(', ')}`);
  const [c, a] = nodeCommand(node, cmd, args);
  const child = spawn(c, a, { stdio: 'inherit', env: childEnv(nodeEnv(node)) });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
}

async function main() {
  const [verb, ...rest] = process.argv.slice(2);
  if (verb === 'exec') return exec(rest);
  if (!verb || verb === 'help' || verb === '--help' || verb === '-h') {
    console.log(USAGE);
    return;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      nodes: { type: 'string', default: '3' },
      managers: { type: 'string', default: '1' },
      docker: { type: 'string', default: DEFAULT_ENGINE },
      'no-demo': { type: 'boolean', default: false },
      'no-hook': { type: 'boolean', default: false },
      prometheus: { type: 'boolean', default: false },
      'etcd-tls': { type: 'boolean', default: false },
      'log-level': { type: 'string', default: 'info' },
    },
    strict: true,
  });
  switch (verb) {
    case 'up': {
      const sb = await up({ nodes: Number(values.nodes), managers: Number(values.managers), docker: values.docker, hook: !values['no-hook'], prometheus: values.prometheus, etcdTls: values['etcd-tls'], logLevel: values['log-level'] });
      printUsage(sb);
      if (!values['no-demo']) await runDemo(sb);
      return;
    }
    case 'down':
      return down();
    case 'status':
      return status();
    case 'demo': {
      const sb = loadSandbox();
      if (!sb?.ready) fail('no sandbox is up (npm run sandbox -- up)');
      return runDemo(sb);
    }
    default:
      fail(`unknown verb ${JSON.stringify(verb)}\n${USAGE}`);
  }
}

function printUsage(sb) {
  console.log(`
The sandbox swarm:
${sb.nodes.map((n) => `  ${n.name.padEnd(6)} ${n.role.padEnd(7)} ${n.address.padEnd(12)} Docker ${n.engine}, netns ${n.netns}, dockerd pid ${n.pid}, DOCKER_HOST=unix://${n.socket}`).join('\n')}
  etcd    ${sb.etcd.endpoint} (pid ${sb.etcd.pid}, data ${sb.etcd.dataDir})
  bridge  ${sb.layout.bridge} ${sb.layout.hostAddress}/24; plugin "${sb.layout.pluginAlias}" enabled on every node; image swarmnet/busybox

Try:
  npm run sandbox -- exec node1 docker network create --driver swarmnet:latest --ipam-driver swarmnet:latest --attachable mynet
  npm run sandbox -- exec node1 docker service create --name web --replicas 3 --network mynet swarmnet/busybox httpd -f -p 8080 -h /
  npm run sandbox -- exec node2 docker ps
  npm run sandbox -- status
  npm run sandbox -- down
`);
}

main().catch((e) => fail(e.message));
