import test from 'ava';
import { loadConfig, ConfigError, splitFlannelOptions, describeConfig } from '../../plugin/config.js';

test('defaults match the predecessor where it had them', (t) => {
  const c = loadConfig({});
  t.is(c.etcd.prefix, '/flannel');
  t.deepEqual(c.etcd.endpoints, []);
  t.is(c.networkSubnetSize, 20);
  t.is(c.hostSubnetSize, 25);
  t.is(c.vniStart, 6514);
  t.false(c.isHookAvailable);
  t.true(c.dnsDockerCompatibilityMode);
  t.is(c.dnsMaxQpsPerContainer, 2000);
  t.is(loadConfig({ DNS_MAX_QPS_PER_CONTAINER: '0' }).dnsMaxQpsPerContainer, 0, '0 turns the cap off');
  t.is(c.lbBackend, 'auto');
  t.is(c.logLevel, 'info');
});

test('predecessor-style values parse the same way', (t) => {
  const c = loadConfig({
    ETCD_ENDPOINTS: 'http://10.0.0.1:2379,http://10.0.0.2:2379',
    ETCD_PREFIX: '/my/prefix/',
    AVAILABLE_SUBNETS: '10.1.0.0/16,10.2.0.0/16',
    NETWORK_SUBNET_SIZE: '22',
    DEFAULT_HOST_SUBNET_SIZE: '26',
    DNS_DOCKER_COMPATIBILITY_MODE: 'FALSE',
    IS_HOOK_AVAILABLE: 'True',
    DEFAULT_FLANNEL_OPTIONS: '-iface=eth1,-ip-masq',
  });
  t.deepEqual(c.etcd.endpoints, ['http://10.0.0.1:2379', 'http://10.0.0.2:2379']);
  t.is(c.etcd.prefix, '/my/prefix', 'trailing slash trimmed');
  t.is(c.availableSubnets.length, 2);
  t.is(c.networkSubnetSize, 22);
  t.false(c.dnsDockerCompatibilityMode);
  t.true(c.isHookAvailable);
  t.is(c.underlayInterface, 'eth1');
});

test('flannel options: commas inside a value survive, whitespace also separates', (t) => {
  t.deepEqual(splitFlannelOptions('-iface=eth1,-iface-regex=eth[0,1]'), ['-iface=eth1', '-iface-regex=eth[0,1]']);
  t.deepEqual(splitFlannelOptions('-iface=eth1 -public-ip=192.0.2.1'), ['-iface=eth1', '-public-ip=192.0.2.1']);
  t.deepEqual(splitFlannelOptions(''), []);
});

test('UNDERLAY_INTERFACE overrides -iface', (t) => {
  t.is(loadConfig({ UNDERLAY_INTERFACE: 'ens5', DEFAULT_FLANNEL_OPTIONS: '-iface=eth1' }).underlayInterface, 'ens5');
});

const invalid: [Record<string, string>, string, RegExp][] = [
  [{ AVAILABLE_SUBNETS: '10.0.0.0/33' }, 'AVAILABLE_SUBNETS', /IPv4 CIDR/],
  [{ AVAILABLE_SUBNETS: '10.0.0.1/16' }, 'AVAILABLE_SUBNETS', /host bits/],
  [{ AVAILABLE_SUBNETS: '10.0.0.0/16,10.0.128.0/17' }, 'AVAILABLE_SUBNETS', /overlap/],
  [{ AVAILABLE_SUBNETS: ' , ' }, 'AVAILABLE_SUBNETS', /at least one/],
  [{ AVAILABLE_SUBNETS: '10.0.0.0/24' }, 'AVAILABLE_SUBNETS', /at least one \/20/],
  [{ NETWORK_SUBNET_SIZE: 'twenty' }, 'NETWORK_SUBNET_SIZE', /integer from 8 to 28/],
  [{ NETWORK_SUBNET_SIZE: '24', DEFAULT_HOST_SUBNET_SIZE: '24' }, 'DEFAULT_HOST_SUBNET_SIZE', /larger than NETWORK_SUBNET_SIZE/],
  [{ VNI_START: '-1' }, 'VNI_START', /integer/],
  [{ VNI_START: '99999999' }, 'VNI_START', /integer from 1 to 16000000/],
  [{ DNS_DOCKER_COMPATIBILITY_MODE: 'maybe' }, 'DNS_DOCKER_COMPATIBILITY_MODE', /true or false/],
  [{ DNS_MAX_QPS_PER_CONTAINER: '1e4' }, 'DNS_MAX_QPS_PER_CONTAINER', /integer from 0 to 1000000/],
  [{ LB_BACKEND: 'iptables' }, 'LB_BACKEND', /one of auto, ipvs, nftables/],
  [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', /one of trace/],
  [{ ETCD_ENDPOINTS: 'not a url' }, 'ETCD_ENDPOINTS', /etcd URLs/],
  [{ ETCD_PREFIX: 'flannel' }, 'ETCD_PREFIX', /starting with/],
  [{ DEFAULT_FLANNEL_OPTIONS: '-frobnicate=1' }, 'DEFAULT_FLANNEL_OPTIONS', /unknown: -frobnicate/],
  [{ DEFAULT_FLANNEL_OPTIONS: 'iface=eth0' }, 'DEFAULT_FLANNEL_OPTIONS', /flanneld-style/],
  [{ METRICS_ADDRESS: 'localhost' }, 'METRICS_ADDRESS', /host:port/],
  [{ NODE_NAME: 'bad name!' }, 'NODE_NAME', /letters, digits/],
  [{ ETCD_USERNAME: 'root' }, 'ETCD_USERNAME', /together/],
  [{ ETCD_CERT_FILE: '/etc/cert.pem' }, 'ETCD_KEY_FILE', /together/],
  [{ ETCD_CA_FILE: 'relative.pem' }, 'ETCD_CA_FILE', /absolute/],
];

for (const [env, setting, re] of invalid) {
  test(`invalid ${setting}=${JSON.stringify(Object.values(env)[0])} is refused with a message naming it`, (t) => {
    const e = t.throws(() => loadConfig(env), { instanceOf: ConfigError });
    t.is(e?.setting, setting);
    t.true(e?.message.includes(setting));
    t.regex(e?.message ?? '', re);
  });
}

test('a secret never appears in an error or in the loggable description', (t) => {
  const e = t.throws(() => loadConfig({ ETCD_PASSWORD: 's3cr3t-value' }), { instanceOf: ConfigError });
  t.false(e?.message.includes('s3cr3t-value'));
  const c = loadConfig({ ETCD_USERNAME: 'u', ETCD_PASSWORD: 's3cr3t-value' });
  t.is(c.etcd.password, 's3cr3t-value');
  t.false(JSON.stringify(describeConfig(c)).includes('s3cr3t-value'));
});
