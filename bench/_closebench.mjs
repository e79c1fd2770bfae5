import { native } from '/work/main/dist/sbus/native.js';
import fs from 'node:fs';
for (const size of [0, 65536, 1<<20]) {
  const t = performance.now(); const N = 5000;
  for (let i = 0; i < N; i++) { const [r, w] = native.pipe(size); native.close(r); native.close(w); }
  console.log('pipe+close size', size, ((performance.now() - t) / N * 1000).toFixed(1), 'us');
}
{ const t = performance.now(); const N = 5000;
  for (let i = 0; i < N; i++) { const fd = fs.openSync('/tmp/x.log', 'a'); fs.fstatSync(fd); fs.closeSync(fd); }
  console.log('open+fstat+close log', ((performance.now() - t) / N * 1000).toFixed(1), 'us'); }
