// A container flooding its resolver, for test/dns/isolation.test.ts: run inside the container's namespace
// (ip netns exec), it sends `name A` to 127.0.0.11:<port> as fast as it can, over UDP (sendmmsg, 64 a call) and
// pipelined over <tcp> TCP connections (writes as fast as the server reads), until killed. It reads and drops the
// answers. Prints "flooding" once both are under way. Arguments: port tcp-connections name. It stops when its stdin
// closes (the test's process is gone, however it ended), and after 60 s in any case.
import net from 'node:net';
import { frameTcp } from '../../dns/tcp-frame.js';
import { BatchUdp } from '../../dns/udp-batch.js';
import { query } from './helpers.js';

const [port = '53', conns = '4', name = 'target'] = process.argv.slice(2);
const q = query(name, 'A', 7);

const udp = BatchUdp.open('127.0.0.1', 0);
udp.serve(() => undefined);
const dest = BatchUdp.sockaddr('127.0.0.11', Number(port));
const blast = (): void => {
  for (let i = 0; i < 512; i++) udp.queueTo(q, dest); // a full batch goes out at once (sendmmsg)
  setImmediate(blast);
};
blast();

const chunk = Buffer.concat(Array.from({ length: 2000 }, () => frameTcp(q)));
for (let i = 0; i < Number(conns); i++) {
  const c = net.connect(Number(port), '127.0.0.11');
  c.on('error', () => undefined);
  c.on('data', () => undefined);
  const write = (): void => { while (c.write(chunk)); };
  c.on('drain', write);
  c.on('connect', write);
}
setImmediate(() => process.stdout.write('flooding\n'));
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), 60_000).unref();
