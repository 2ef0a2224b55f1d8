// Runs inside a test namespace (ip netns exec <ns> node probe.mjs ...).
//   serve <name> <port>              TCP and UDP: answer "<name> <client address>" (TCP: one line, then close;
//                                    TCP "hold": keep the connection and answer every line)
//   tcp <host> <port> <n>            n connections; prints a JSON list of answers (or "ERR <code>")
//   udp <host> <port> <n> [gapMs]    n datagrams from ONE socket (one flow); prints the answers
import { createServer, connect } from 'node:net';
import { createSocket } from 'node:dgram';

const [mode, a, b, c, d] = process.argv.slice(2);
if (mode === 'serve') {
  const name = a; const port = Number(b);
  createServer((s) => {
    s.on('error', () => {});
    let held = false;
    s.on('data', (buf) => {
      if (buf.toString().startsWith('hold')) held = true;
      s.write(`${name} ${s.remoteAddress}\n`);
      if (!held) s.end();
    });
  }).listen(port, '0.0.0.0');
  const u = createSocket('udp4');
  u.on('message', (_m, r) => u.send(`${name} ${r.address}`, r.port, r.address));
  u.bind(port, '0.0.0.0', () => console.log('ready'));
} else if (mode === 'tcp') {
  const out = [];
  for (let i = 0; i < Number(c); i++) {
    out.push(await new Promise((res) => {
      const s = connect({ host: a, port: Number(b) });
      let got = '';
      s.setTimeout(3000, () => { s.destroy(); res('ERR timeout'); });
      s.on('connect', () => s.write('x\n'));
      s.on('data', (x) => { got += x; });
      s.on('end', () => res(got.trim()));
      s.on('error', (e) => res(`ERR ${e.code}`));
    }));
  }
  console.log(JSON.stringify(out));
} else if (mode === 'udp') {
  const s = createSocket('udp4');
  const out = [];
  s.connect(Number(b), a, async () => {
    for (let i = 0; i < Number(c); i++) {
      out.push(await new Promise((res) => {
        const t = setTimeout(() => { s.removeAllListeners('message'); s.removeAllListeners('error'); res('ERR timeout'); }, 2000);
        s.once('message', (m) => { clearTimeout(t); s.removeAllListeners('error'); res(m.toString()); });
        s.once('error', (e) => { clearTimeout(t); s.removeAllListeners('message'); res(`ERR ${e.code}`); });
        s.send('x');
      }));
      if (d) await new Promise((r) => setTimeout(r, Number(d)));
    }
    console.log(JSON.stringify(out));
    s.close();
  });
}
