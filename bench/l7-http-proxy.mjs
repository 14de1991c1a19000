// The single-process baseline of bench/l7.ts: http-proxy-3 in front of one backend, keep-alive to it.
// usage: node bench/l7-http-proxy.mjs LISTEN_PORT TARGET_URL
import http from 'node:http';
import { createProxyServer } from 'http-proxy-3';

const [port, target] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 512, maxFreeSockets: 512 });
const proxy = createProxyServer({ target, agent, xfwd: false });
proxy.on('error', (_err, _req, res) => {
  if (res && 'writeHead' in res && !res.headersSent) res.writeHead(502);
  res?.end();
});
http
  .createServer({ keepAliveTimeout: 30_000 }, (req, res) => proxy.web(req, res))
  .listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\n'));
// SIGINT/SIGTERM: exit normally (so that --cpu-prof writes its profile)
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => process.exit(0));
