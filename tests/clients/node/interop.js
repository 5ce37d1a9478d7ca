// Interop client for mtlsd: Node's https module (OpenSSL underneath).
//
//   node interop.js PORT CA_FILE CASE...
//
// CASE is NAME,VERSION,CERT,KEY (one certificate; "-" for none; see
// tests/clients/go/main.go). Per case: one keep-alive agent, two requests on
// one socket, then the socket is destroyed and a third request opens a new
// one that should resume from the agent's session cache. One JSON line per
// case.
'use strict';
const fs = require('fs');
const https = require('https');

function get(agent, opts, path) {
  return new Promise((resolve, reject) => {
    const req = https.request({ ...opts, agent, path, timeout: 10000 }, (res) => {
      // the socket goes back to the agent at the end: read it now
      const r = { status: res.statusCode, reused: req.reusedSocket,
        resumed: res.socket.isSessionReused(), version: res.socket.getProtocol() };
      res.resume();
      res.on('end', () => resolve(r));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function run(port, ca, spec) {
  const [name, version, cert, key] = spec.split(',');
  const r = { case: name, statuses: [], reused: false, resumed: false, version: '' };
  const v = version === '1.2' ? 'TLSv1.2' : 'TLSv1.3';
  const opts = { host: '127.0.0.1', port, ca, minVersion: v, maxVersion: v };
  if (cert !== '-') {
    opts.cert = fs.readFileSync(cert);
    opts.key = fs.readFileSync(key);
  }
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, maxCachedSessions: 4 });
  const path = `/whoami?c=${name}&n=`;
  try {
    r.statuses.push((await get(agent, opts, path + '1')).status);
    const second = await get(agent, opts, path + '2');
    r.statuses.push(second.status);
    r.reused = second.reused;
    // TLS 1.3 tickets come after the handshake: let the agent cache one.
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (const sockets of Object.values(agent.freeSockets)) sockets.forEach((s) => s.destroy());
    const third = await get(agent, opts, path + '3');
    r.statuses.push(third.status);
    r.resumed = third.resumed;
    r.version = third.version;
  } catch (e) {
    r.error = String(e && e.message ? e.message : e);
  }
  agent.destroy();
  return r;
}

(async () => {
  const [port, caFile, ...cases] = process.argv.slice(2);
  const ca = fs.readFileSync(caFile);
  for (const spec of cases) process.stdout.write(JSON.stringify(await run(port, ca, spec)) + '\n');
})();
