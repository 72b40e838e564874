// The Node client of certificates.md §7, run by tests/tls_clients/node_client.py:
//
//   node tls_check.js '{"host", "port", "root", "address", "proxy": [host, port] | null}'
//
// tls.connect with `ca: [root]` (which replaces Node's bundled roots), `servername: host` (omitted
// for an IP host: no SNI), and checkServerIdentity against the host; through a proxy it first opens
// a CONNECT tunnel and starts TLS on it. Then GET /. Prints one JSON line {"ok", "detail"}.
'use strict';

const fs = require('fs');
const net = require('net');
const tls = require('tls');

const TIMEOUT_MS = 10000;
const args = JSON.parse(process.argv[2]);
const bracket = (h) => (net.isIPv6(h) ? `[${h}]` : h);

function finish(ok, detail) {
  process.stdout.write(JSON.stringify({ ok, detail }) + '\n');
  process.exit(ok ? 0 : 1);
}

function failure(err) {
  return `${err.code || err.name}: ${err.message}`;
}

function tunnel(callback) {
  const [proxyHost, proxyPort] = args.proxy;
  const authority = `${bracket(args.host)}:${args.port}`;
  const sock = net.connect({ host: proxyHost, port: proxyPort });
  let head = Buffer.alloc(0);
  const onData = (chunk) => {
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    sock.removeListener('data', onData);
    sock.pause();
    const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
    if (status.split(' ')[1] !== '200') finish(false, `proxy refused CONNECT: ${status}`);
    if (head.length > end + 4) sock.unshift(head.subarray(end + 4));
    callback(sock);
  };
  sock.on('data', onData);
  sock.on('error', (err) => finish(false, failure(err)));
  sock.on('connect', () => sock.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`));
}

function handshake(socket) {
  const options = {
    ca: [fs.readFileSync(args.root, 'utf8')],
    checkServerIdentity: (_, cert) => tls.checkServerIdentity(args.host, cert),
  };
  if (!net.isIP(args.host)) options.servername = args.host;
  if (socket) options.socket = socket;
  else Object.assign(options, { host: args.address, port: args.port });
  const conn = tls.connect(options, () => {
    const version = conn.getProtocol();
    conn.write(
      `GET / HTTP/1.1\r\nHost: ${bracket(args.host)}:${args.port}\r\n` +
        `User-Agent: interca-tls-test node/${process.version}\r\nConnection: close\r\n\r\n`,
    );
    let response = '';
    conn.setEncoding('utf8');
    conn.on('data', (chunk) => (response += chunk));
    conn.on('end', () => {
      const body = response.split('\r\n\r\n').slice(1).join('\r\n\r\n');
      finish(true, `verified (${version}); body: ${body.slice(0, 200)}`);
    });
  });
  conn.on('error', (err) => finish(false, failure(err)));
}

setTimeout(() => finish(false, `timed out after ${TIMEOUT_MS / 1000} s`), TIMEOUT_MS).unref();
if (args.proxy) tunnel(handshake);
else handshake(null);
