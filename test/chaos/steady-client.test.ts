import test from 'ava';
import { parseSamples, summarize } from './steady-client.js';

const at = (s: number): string => new Date(Date.UTC(2026, 10, 30, 0, 0, s)).toISOString();
const t0 = Date.UTC(2026, 10, 30, 0, 0, 0);

test('docker logs -t lines become samples; other lines are ignored', (t) => {
  const s = parseSamples(`${at(1)} 000\n${at(2)} 101\nnslookup: noise\n${at(3)} 010\n`);
  t.deepEqual(s.map((x) => [x.at - t0, x.ok.dns, x.ok.vip, x.ok.task]), [[1000, true, true, true], [2000, false, true, false], [3000, true, false, true]]);
});

test('an outage runs from the last answered round before it to the first answered one after it', (t) => {
  const s = parseSamples([`${at(1)} 000`, `${at(2)} 100`, `${at(3)} 100`, `${at(5)} 100`, `${at(6)} 000`, `${at(7)} 100`, `${at(8)} 000`].join('\n'));
  const r = summarize(s, t0, t0 + 10_000);
  t.deepEqual(r.dns, { total: 7, failed: 4, longestOutageMs: 5000 });
  t.deepEqual(r.vip, { total: 7, failed: 0, longestOutageMs: 0 });
});

test('an outage still open at the end of the window lasts until its end; rounds outside the window do not count', (t) => {
  const s = parseSamples([`${at(1)} 001`, `${at(4)} 000`, `${at(5)} 001`, `${at(6)} 001`, `${at(20)} 000`].join('\n'));
  const r = summarize(s, t0 + 3000, t0 + 10_000);
  t.deepEqual(r.task, { total: 3, failed: 2, longestOutageMs: 6000 });
  t.is(r.dns.failed, 0);
});
