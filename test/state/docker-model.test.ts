import test from 'ava';
import { containerView, drainingContainers, networkView, serviceView } from '../../common/docker-view.js';
import { NdjsonSplitter } from '../../plugin/docker/ndjson.js';

// Inspect JSON written after the Docker Engine API 1.41 documentation (no dockerd run here): the mapping logic only.

test('NDJSON splitting keeps partial lines and reports bad ones', (t) => {
  const got: unknown[] = [];
  const bad: string[] = [];
  const s = new NdjsonSplitter((o) => got.push(o), (l) => bad.push(l));
  s.push('{"Type":"container","Actor":{"ID":"a"}}\n{"Type":"netw');
  t.is(got.length, 1);
  s.push('ork"}\nnot json\n\n');
  t.deepEqual(got, [{ Type: 'container', Actor: { ID: 'a' } }, { Type: 'network' }]);
  t.deepEqual(bad, ['not json']);
});

test('network, service and container views', (t) => {
  t.deepEqual(networkView({ Id: 'n1', Name: 'tpnet', Driver: 'swarmnet', IPAM: { Config: [{ Subnet: '10.128.0.0/20' }] } }), { id: 'n1', name: 'tpnet', subnet: '10.128.0.0/20' });
  t.deepEqual(networkView({ Id: 'n2', Name: 'x', IPAM: { Config: null } }), { id: 'n2', name: 'x' });
  t.deepEqual(serviceView({
    ID: 's1',
    Spec: { Name: 'web', EndpointSpec: { Mode: 'vip' }, TaskTemplate: { Networks: [{ Target: 'n1', Aliases: ['www'] }] } },
    Endpoint: { VirtualIPs: [{ NetworkID: 'n1', Addr: '10.128.15.130/20' }] },
  }), { id: 's1', name: 'web', endpointMode: 'vip', vips: { n1: '10.128.15.130' }, aliases: { n1: ['www'] } });
  t.is(serviceView({ ID: 's2', Spec: { Name: 'db', EndpointSpec: { Mode: 'dnsrr' } } }).endpointMode, 'dnsrr');
  t.deepEqual(containerView({
    Id: 'c1', Name: '/web.1.abc', Config: { Hostname: 'c1host', Labels: { 'com.docker.swarm.service.name': 'web' } },
    NetworkSettings: { Networks: { tpnet: { NetworkID: 'n1', IPAddress: '10.128.0.2', Aliases: ['web'], DNSNames: ['web.1.abc', 'c1host'] } } },
  }), { id: 'c1', name: 'web.1.abc', hostname: 'c1host', service: 'web', live: true, ndots: false, networks: { n1: { address: '10.128.0.2', aliases: ['web'], dnsNames: ['web.1.abc', 'c1host'] } } });
  const task = containerView({
    Id: 'c2', Name: '/api.1.x', Config: { Hostname: 'h', Labels: { 'com.docker.swarm.service.name': 'api', 'com.docker.swarm.service.id': 's9' } },
    State: { Health: { Status: 'starting' } }, HostConfig: { DnsOptions: ['ndots:2'] },
    NetworkSettings: { SandboxKey: '/var/run/docker/netns/abc', Networks: {} },
  });
  t.like(task, { serviceId: 's9', sandboxKey: '/var/run/docker/netns/abc', live: false, ndots: true });
  t.true(containerView({ Id: 'c3', State: { Health: { Status: 'healthy' } } }).live);
  t.false(containerView({ Id: 'c4', State: { Health: { Status: 'unhealthy' } } }).live);
});

test('draining: running tasks Swarm is shutting down, from GET /tasks', (t) => {
  const task = (desired: string, state: string, cid?: string) => ({ DesiredState: desired, Status: { State: state, ...(cid ? { ContainerStatus: { ContainerID: cid } } : {}) } });
  const tasks = [
    task('running', 'running', 'keep'), task('shutdown', 'running', 'b-stopping'), task('remove', 'running', 'a-removing'),
    task('shutdown', 'shutdown', 'gone'), task('shutdown', 'complete', 'done'), task('shutdown', 'running'), task('shutdown', 'starting', 'c-starting'),
  ];
  t.deepEqual(drainingContainers(tasks), ['a-removing', 'b-stopping', 'c-starting']);
  t.deepEqual(drainingContainers([null, 1, 'x', {}]), []);
  const s = { ID: 's1', Spec: { Name: 'web', EndpointSpec: { Mode: 'vip' } } };
  t.deepEqual(serviceView(s, tasks).draining, ['a-removing', 'b-stopping', 'c-starting']);
  t.false('draining' in serviceView(s, [task('running', 'running', 'keep')]), 'nothing draining: no field (the record does not change)');
});
