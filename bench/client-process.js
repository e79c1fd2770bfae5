// The HTTP client of the front-door benchmarks, in a process of its own (started with fork()).
// A real client never shares the proxy's event loop; in the proxy's process, reading a 1 GiB
// response would compete with the proxy's own work and be counted against it.
// Messages: { id, op: 'get', url, headers } → { id, bytes, status, ms }
//           { id, op: 'series', targets: [{ url, headers }], n } → { id, times: number[][] } (interleaved)
import http from 'node:http';

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

function get(url, headers) {
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const req = http.get(url, { agent, headers }, (res) => {
      let bytes = 0;
      res.on('data', (c) => (bytes += c.length));
      res.on('end', () => resolve({ bytes, status: res.statusCode, ms: Number(process.hrtime.bigint() - t) / 1e6 }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

async function series(targets, n) {
  const times = targets.map(() => []);
  for (let i = 0; i < n; i++) {
    for (const [k, t] of targets.entries()) {
      const r = await get(t.url, t.headers);
      if (r.status >= 300) throw new Error(`GET ${t.url.split('?')[0]}: ${r.status}`);
      times[k].push(r.ms);
    }
  }
  return { times };
}

process.on('message', (m) => {
  const work = m.op === 'get' ? get(m.url, m.headers) : series(m.targets, m.n);
  work.then(
    (r) => process.send({ id: m.id, ...r }),
    (err) => process.send({ id: m.id, error: err.message }),
  );
});
process.on('disconnect', () => {
  agent.destroy();
  process.exit(0);
});
