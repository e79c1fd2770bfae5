// identity: the object, unchanged (or the requested byte range of it), with its metadata.
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';

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
    if (object.range) await pipeline(object.stream, rangeOf(object.range), output.stream);
    else await pipeline(object.stream, output.stream);
  }
}
