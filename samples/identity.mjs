// identity: the object, unchanged (or the requested byte range of it), with its metadata.
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { once } from 'node:events';

function rangeOf({ start, end }) {
  let offset = 0;
  return new Transform({
    transform(chunk, _enc, cb) {
      const from = Math.max(start - offset, 0);
      const to = Math.min(end + 1 - offset, chunk.length);
      offset += chunk.length;
      cb(null, from < to ? chunk.subarray(from, to) : undefined);
    },
  });
}

export default class Identity {
  async invoke({ inputs, output }) {
    const [object] = inputs;
    output.setMetadata(object.metadata);
    if (object.range) return pipeline(object.stream, rangeOf(object.range), output.stream);
    // A plain copy loop: for a small object, pipeline()'s bookkeeping costs more than the copy.
    const out = output.stream;
    for await (const chunk of object.stream) {
      if (out.write(chunk)) continue;
      if (out.destroyed) break; // its reader is gone: stop reading the object too
      await once(out, 'drain');
    }
    out.end();
  }
}
