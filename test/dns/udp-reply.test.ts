import test from 'ava';
import dgram from 'node:dgram';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { replySender } from '../../dns/udp-reply.js';

/** A server socket that answers every datagram with `reply:<payload>` through replySender; returns what the client got. */
async function roundTrip(type: 'udp4' | 'udp6', host: string, payload: string): Promise<string> {
  const server = dgram.createSocket(type);
  const client = dgram.createSocket(type);
  try {
    await new Promise<void>((r) => server.bind(0, host, r));
    const send = replySender(server);
    server.on('message', (msg, rinfo) => send(Buffer.from(`reply:${msg.toString()}`), rinfo.port, rinfo.address));
    await new Promise<void>((r) => client.bind(0, host, r));
    const got = once(client, 'message');
    client.send(payload, (server.address() as AddressInfo).port, host);
    const [msg] = (await got) as [Buffer];
    return msg.toString();
  } finally {
    client.close();
    server.close();
  }
}

test('replies reach the sender over IPv4', async (t) => {
  t.is(await roundTrip('udp4', '127.0.0.1', 'abc'), 'reply:abc');
});

test('replies reach the sender over IPv6', async (t) => {
  t.is(await roundTrip('udp6', '::1', 'xyz'), 'reply:xyz');
});

test('sending on a closed socket neither throws nor sends', async (t) => {
  const server = dgram.createSocket('udp4');
  const client = dgram.createSocket('udp4');
  await new Promise<void>((r) => server.bind(0, '127.0.0.1', r));
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
  const send = replySender(server);
  server.close();
  let received = 0;
  client.on('message', () => { received++; });
  t.notThrows(() => send(Buffer.from('late'), (client.address() as AddressInfo).port, '127.0.0.1'));
  await new Promise((r) => setTimeout(r, 100));
  client.close();
  t.is(received, 0);
});
