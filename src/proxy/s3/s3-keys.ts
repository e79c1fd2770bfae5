// S3 keys sandlet issues to its access points' clients. SigV4 needs the secret itself (both sides
// compute the same HMAC), so the file (config s3_keys_file) holds secrets and is kept mode 0600;
// `create` prints a secret once, `ls` never does, and no secret reaches a log or an error.
import { randomBytes } from 'node:crypto';
import { SandletError } from '../../errors.js';
import { validateBucketName } from '../../names.js';
import { RecordFile } from './live-file.js';

export interface S3Key {
  /** The access key id, e.g. `SLK7Q2...` (20 characters, as AWS's). */
  id: string;
  secret: string;
  /** The access points this key may use. */
  accessPoints: string[];
  created: string;
  note?: string;
}

/** What `ls` shows: everything but the secret. */
export type S3KeyView = Omit<S3Key, 'secret'>;

const ID_RE = /^SL[A-Z2-7]{18}$/;
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** The S3 keys file (config s3_keys_file, mode 0600); a server follows it through get(). */
export class S3KeyStore extends RecordFile<S3Key> {
  constructor(file: string) {
    super({
      file,
      what: 'S3 keys',
      listKey: 'keys',
      mode: 0o600,
      parse: (e) => {
        const k = e as S3Key;
        if (typeof k?.id !== 'string' || typeof k.secret !== 'string' || !Array.isArray(k.accessPoints)) throw new SandletError('EBADCONFIG', `S3 keys file ${file} holds an entry without id, secret and accessPoints`);
        return k;
      },
      id: (k) => k.id,
    });
  }
}

const view = ({ secret: _secret, ...rest }: S3Key): S3KeyView => rest;

/** Adds a key for the access points and returns it with its secret: the only time the secret is shown. */
export function createS3Key(file: string, accessPoints: string[], note?: string): S3Key {
  if (accessPoints.length === 0) throw new SandletError('EBADNAME', 'an S3 key needs the access points it may use (--access-points a,b)');
  const aps = [...new Set(accessPoints.map((a) => validateBucketName(a)))];
  const bytes = randomBytes(18);
  const id = `SL${Array.from(bytes, (b) => BASE32[b & 31]).join('')}`;
  const key: S3Key = { id, secret: randomBytes(30).toString('base64'), accessPoints: aps, created: new Date().toISOString(), ...(note ? { note } : {}) };
  const store = new S3KeyStore(file);
  const all = store.read();
  all.set(id, key);
  store.write(all);
  return key;
}

export function listS3Keys(file: string): S3KeyView[] {
  return [...new S3KeyStore(file).read().values()].map(view);
}

/** Removes a key; false when there was none with that id. */
export function revokeS3Key(file: string, id: string): boolean {
  if (!ID_RE.test(id)) throw new SandletError('EBADNAME', `${JSON.stringify(id.slice(0, 40))} is not an S3 access key id`);
  return new S3KeyStore(file).remove(id);
}
