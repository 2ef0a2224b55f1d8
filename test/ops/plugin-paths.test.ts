import test from 'ava';
import { hostPath } from '../../ops/cli.js';

const mounts = [
  { Source: '/var/run/docker.sock', Destination: '/var/run/docker.sock' },
  { Source: '/srv/node1/swarmnet-state/', Destination: '/var/lib/swarmnet' },
  { Source: '/srv/tls', Destination: '/var/lib/swarmnet/tls' },
];

test('a file the plugin reads through a mount is read on the host under the mount source, the longest mount winning', (t) => {
  t.is(hostPath('/var/lib/swarmnet/etcd/ca.pem', mounts), '/srv/node1/swarmnet-state/etcd/ca.pem');
  t.is(hostPath('/var/lib/swarmnet/tls/ca.pem', mounts), '/srv/tls/ca.pem');
});

test('a path outside every mount, or one only sharing a prefix with one, is left as it is', (t) => {
  t.is(hostPath('/etc/ssl/ca.pem', mounts), '/etc/ssl/ca.pem');
  t.is(hostPath('/var/lib/swarmnet-other/ca.pem', mounts), '/var/lib/swarmnet-other/ca.pem');
  t.is(hostPath('/var/lib/swarmnet/x', [{ Destination: '/var/lib/swarmnet' }]), '/var/lib/swarmnet/x');
});
