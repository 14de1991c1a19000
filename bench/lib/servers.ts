/**
 * The configs of the comparison servers of bench/l7.ts and bench/listeners-quick.ts, generated in one place: an nginx
 * backend (`return 200` per port, its own prefix, pid and temp paths) and haproxy in front of it (mode http,
 * keep-alive both sides, `http-reuse always`). Each writes its file and returns the argv to start the server with.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * nginx in `prefix` serving `body` (one server per port); args for `nginx`. Its listen backlog is 4096 (nginx's
 * default, 511, overflowed when a proxy opened ~1,000 server connections at once for `-c 1000`: the dropped SYNs
 * were retried after 1 s, which showed as the proxy's latency).
 */
export function nginxConfig(prefix: string, backends: { port: number; body: string }[]): string[] {
  for (const sub of ['', 'logs', 'tmp']) mkdirSync(join(prefix, sub), { recursive: true });
  const p = prefix;
  writeFileSync(
    join(p, 'nginx.conf'),
    `worker_processes 1;
pid ${p}/nginx.pid;
error_log ${p}/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${p}/tmp/client_body;
  proxy_temp_path ${p}/tmp/proxy;
  fastcgi_temp_path ${p}/tmp/fastcgi;
  uwsgi_temp_path ${p}/tmp/uwsgi;
  scgi_temp_path ${p}/tmp/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
${backends
  .map(
    (b) =>
      `  server { listen 127.0.0.1:${b.port} backlog=4096; location / { default_type text/plain; return 200 ${JSON.stringify(b.body)}; } }`,
  )
  .join('\n')}
}
`,
  );
  return ['-p', p, '-e', `${p}/logs/error.log`, '-c', `${p}/nginx.conf`, '-g', 'daemon off;'];
}

/** haproxy (nbthread `threads`) on `port` in front of `servers`; args for `haproxy` */
export function haproxyConfig(
  file: string,
  o: {
    port: number;
    threads: number;
    balance: string;
    servers: { name: string; port: number }[];
    /** also a mode tcp listener on this port, to the same servers */
    tcpPort?: number;
    /** global maxconn (default 4000) */
    maxconn?: number;
  },
): string[] {
  writeFileSync(
    file,
    `global
  nbthread ${o.threads}
  maxconn ${o.maxconn ?? 4000}
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always
listen bench
  bind 127.0.0.1:${o.port}
  balance ${o.balance}
${o.servers.map((s) => `  server ${s.name} 127.0.0.1:${s.port}`).join('\n')}
${
  o.tcpPort
    ? `listen bench_tcp
  mode tcp
  bind 127.0.0.1:${o.tcpPort}
  balance ${o.balance}
${o.servers.map((s) => `  server ${s.name} 127.0.0.1:${s.port}`).join('\n')}
`
    : ''
}`,
  );
  return ['-f', file, '-db'];
}
