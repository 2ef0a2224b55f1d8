import test from 'ava';
import { frameTcp, TcpFrameReader } from '../../dns/tcp-frame.js';

test('TCP framing: length prefix; messages split across and packed into chunks; a zero-length frame stops the stream', (t) => {
  const a = Buffer.from('first message');
  const b = Buffer.from('second');
  t.deepEqual(frameTcp(a), Buffer.concat([Buffer.from([0, a.length]), a]));
  const stream = Buffer.concat([frameTcp(a), frameTcp(b)]);
  const r = new TcpFrameReader();
  t.deepEqual(r.push(stream.subarray(0, 1)), [], 'half a length prefix');
  t.deepEqual(r.push(stream.subarray(1, 5)), [], 'a message not complete yet');
  t.is(r.pending, 5, 'prefix and start of the first message are held');
  t.deepEqual(r.push(stream.subarray(5)).map(String), ['first message', 'second'], 'the rest completes both');
  t.is(r.pending, 0);
  const bad = new TcpFrameReader();
  t.deepEqual(bad.push(Buffer.concat([frameTcp(a), Buffer.from([0, 0]), frameTcp(b)])).map(String), ['first message']);
  t.true(bad.invalid);
  t.deepEqual(bad.push(frameTcp(b)), [], 'nothing after the stream went out of sync');
});
