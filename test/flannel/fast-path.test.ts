import test from 'ava';
import { fastPathDevices, renderDeviceChange, renderFastPath, splitListing } from '../../flannel/fast-path.js';

/** The fast path's pure half: what is written, and how a kernel listing is compared with it. */

const pairs = [{ bridge: 'swbr101', vxlan: 'swvx101' }, { bridge: 'swbr102', vxlan: 'swvx102' }];

// As nft 1.0.6 lists the table (tabs, one device line).
const LISTING = `table inet swarmnet-fast {
\tflowtable overlay {
\t\thook ingress priority filter
\t\tdevices = { swbr101, swve0a1b2c3d, swvx101 }
\t}

\tchain forward {
\t\ttype filter hook forward priority filter + 10; policy accept;
\t\tiifname . oifname { "swbr101" . "swvx101", "swvx101" . "swbr101" } ct state established meta l4proto { tcp, udp } flow add @overlay
\t}
}
`;

test('devices: every pair\'s bridge and VXLAN device and the ports, sorted, once', (t) => {
  t.deepEqual(fastPathDevices(pairs, ['swve0a1b2c3d', 'swbr101']), ['swbr101', 'swbr102', 'swve0a1b2c3d', 'swvx101', 'swvx102']);
});

test('the table offloads only bridge <-> VXLAN of one network, established TCP/UDP, after FORWARD', (t) => {
  const text = renderFastPath(pairs, fastPathDevices(pairs, []));
  t.true(text.startsWith('add table inet swarmnet-fast\ndelete table inet swarmnet-fast\n'), 'replaces whatever is there');
  t.regex(text, /devices = \{ swbr101, swbr102, swvx101, swvx102 \}/);
  t.regex(text, /iifname \. oifname \{ "swbr101" \. "swvx101", "swvx101" \. "swbr101", "swbr102" \. "swvx102", "swvx102" \. "swbr102" \}/);
  t.notRegex(text, /"swbr101" \. "swvx102"/, 'never across networks');
  t.regex(text, /hook forward priority filter \+ 10;.*ct state established meta l4proto \{ tcp, udp \} flow add @overlay/s);
});

test('a listing splits into its devices and a shape that ignores them', (t) => {
  const { shape, devices } = splitListing(LISTING);
  t.deepEqual(devices, ['swbr101', 'swve0a1b2c3d', 'swvx101']);
  t.false(shape.includes('swve0a1b2c3d'));
  t.is(splitListing(LISTING.replace('swbr101, swve0a1b2c3d, swvx101', 'swbr101, swvx101')).shape, shape, 'a port leaving does not change the shape');
  t.not(splitListing(LISTING.replace(' flow add @overlay', '')).shape, shape, 'an edited rule does');
  t.deepEqual(splitListing('table inet swarmnet-fast {\n}\n').devices, [], 'no flowtable: no devices');
});

test('a device change adds and removes in one transaction, and nothing else', (t) => {
  t.is(renderDeviceChange(['swveaa'], []), 'add flowtable inet swarmnet-fast overlay { hook ingress priority filter; devices = { swveaa }; }\n');
  t.is(renderDeviceChange(['swveaa'], ['swvebb', 'swvecc']),
    'add flowtable inet swarmnet-fast overlay { hook ingress priority filter; devices = { swveaa }; }\n' +
    'delete flowtable inet swarmnet-fast overlay { hook ingress priority filter; devices = { swvebb, swvecc }; }\n');
});
