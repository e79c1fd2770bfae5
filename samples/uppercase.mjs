// uppercase: the object's text in upper case.
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';

export async function invoke({ inputs, output, logger }) {
  const [object] = inputs;
  output.setMetadata({ ...object.metadata, 'Storlet-Transform': 'uppercase' });
  logger.info('uppercasing');
  // Per chunk is safe for ASCII; a decoder keeps multi-byte characters whole.
  const decoder = new TextDecoder('utf-8');
  await pipeline(
    object.stream,
    new Transform({
      transform(chunk, _enc, cb) {
        cb(null, decoder.decode(chunk, { stream: true }).toUpperCase());
      },
      flush(cb) {
        cb(null, decoder.decode().toUpperCase());
      },
    }),
    output.stream,
  );
}
