// The XML of S3's multipart operations: the CompleteMultipartUpload request body sandlet reads
// (with fast-xml-parser: validated, then read as data), and the results it answers.
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { MAX_PART_NUMBER, type SpooledPart, type UploadMeta } from './multipart-spool.js';
import { S3Error, XML_DECLARATION, xmlEscape } from './s3-errors.js';

const NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"';

const malformed = (why: string): S3Error => new S3Error('MalformedXML', `The XML you provided was not well-formed or did not validate against our published schema: ${why}`);

const parser = new XMLParser({
  ignoreAttributes: true, // the namespace
  ignoreDeclaration: true,
  parseTagValue: false, // an ETag stays a string, a PartNumber is checked below
  trimValues: true,
  htmlEntities: true, // &#34; as well as &quot;: clients escape the ETag's quotes either way
  isArray: (_name, jpath) => jpath === 'CompleteMultipartUpload.Part',
});

/** The parts a CompleteMultipartUpload body names, in the order given. */
export function parseCompleteMultipartUpload(xml: string): { number: number; etag: string }[] {
  if (/<!DOCTYPE/i.test(xml)) throw malformed('a document type declaration is not allowed');
  const valid = XMLValidator.validate(xml);
  if (valid !== true) throw malformed(valid.err.msg);
  const doc = parser.parse(xml) as Record<string, unknown>;
  const names = Object.keys(doc);
  if (names.length !== 1 || names[0] !== 'CompleteMultipartUpload') throw malformed('no CompleteMultipartUpload element');
  const root = doc.CompleteMultipartUpload;
  if (root === '') return [];
  if (typeof root !== 'object' || root === null) throw malformed('only Part elements may be inside CompleteMultipartUpload');
  if (Object.keys(root).some((k) => k !== 'Part')) throw malformed('only Part elements may be inside CompleteMultipartUpload');
  return ((root as { Part?: unknown[] }).Part ?? []).map((part) => {
    const { PartNumber: n, ETag: etag } = (typeof part === 'object' && part !== null ? part : {}) as { PartNumber?: unknown; ETag?: unknown };
    if (typeof n !== 'string' || typeof etag !== 'string') throw malformed('a Part needs a PartNumber and an ETag');
    if (!/^\d{1,5}$/.test(n)) throw malformed(`PartNumber ${JSON.stringify(n.slice(0, 20))} is not a number`);
    const number = Number(n);
    if (number < 1 || number > MAX_PART_NUMBER) throw new S3Error('InvalidArgument', `Part number must be an integer between 1 and ${MAX_PART_NUMBER}, inclusive`);
    return { number, etag };
  });
}

export function initiateResult(bucket: string, upload: UploadMeta): string {
  return `${XML_DECLARATION}<InitiateMultipartUploadResult ${NS}><Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(upload.key)}</Key><UploadId>${upload.id}</UploadId></InitiateMultipartUploadResult>`;
}

/** Without the declaration: it may follow one sent before the keep-alive spaces. */
export function completeResult(location: string, bucket: string, key: string, etag: string): string {
  return `<CompleteMultipartUploadResult ${NS}><Location>${xmlEscape(location)}</Location><Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(key)}</Key><ETag>${xmlEscape(etag)}</ETag></CompleteMultipartUploadResult>`;
}

const owner = (id: string): string => `<ID>${xmlEscape(id)}</ID><DisplayName>${xmlEscape(id)}</DisplayName>`;

export function listPartsResult(bucket: string, upload: UploadMeta, parts: SpooledPart[], marker: number, maxParts: number): string {
  const after = parts.filter((p) => p.number > marker);
  const page = after.slice(0, maxParts);
  const truncated = after.length > page.length;
  const items = page.map((p) => `<Part><PartNumber>${p.number}</PartNumber><LastModified>${p.modified.toISOString()}</LastModified><ETag>${xmlEscape(p.etag)}</ETag><Size>${p.size}</Size></Part>`).join('');
  return `${XML_DECLARATION}<ListPartsResult ${NS}><Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(upload.key)}</Key><UploadId>${upload.id}</UploadId>`
    + `<Initiator>${owner(upload.keyId)}</Initiator><Owner>${owner(upload.keyId)}</Owner><StorageClass>STANDARD</StorageClass>`
    + `<PartNumberMarker>${marker}</PartNumberMarker><NextPartNumberMarker>${page.at(-1)?.number ?? marker}</NextPartNumberMarker><MaxParts>${maxParts}</MaxParts><IsTruncated>${truncated}</IsTruncated>${items}</ListPartsResult>`;
}

/** `uploads` sorted by key, then id; the page after the markers, as S3 pages them. */
export function listUploadsResult(bucket: string, uploads: UploadMeta[], q: { prefix: string; keyMarker: string; uploadIdMarker: string; maxUploads: number }): string {
  const { prefix, keyMarker, uploadIdMarker, maxUploads } = q;
  const after = (u: UploadMeta): boolean => !keyMarker || u.key > keyMarker || (u.key === keyMarker && uploadIdMarker !== '' && u.id > uploadIdMarker);
  const matching = uploads.filter((u) => u.key.startsWith(prefix) && after(u));
  const page = matching.slice(0, maxUploads);
  const last = page.at(-1);
  const items = page.map((u) => `<Upload><Key>${xmlEscape(u.key)}</Key><UploadId>${u.id}</UploadId><Initiator>${owner(u.keyId)}</Initiator><Owner>${owner(u.keyId)}</Owner><StorageClass>STANDARD</StorageClass><Initiated>${new Date(u.created).toISOString()}</Initiated></Upload>`).join('');
  return `${XML_DECLARATION}<ListMultipartUploadsResult ${NS}><Bucket>${xmlEscape(bucket)}</Bucket><KeyMarker>${xmlEscape(keyMarker)}</KeyMarker><UploadIdMarker>${xmlEscape(uploadIdMarker)}</UploadIdMarker>`
    + `<NextKeyMarker>${last ? xmlEscape(last.key) : ''}</NextKeyMarker><NextUploadIdMarker>${last?.id ?? ''}</NextUploadIdMarker><Prefix>${xmlEscape(prefix)}</Prefix>`
    + `<MaxUploads>${maxUploads}</MaxUploads><IsTruncated>${matching.length > page.length}</IsTruncated>${items}</ListMultipartUploadsResult>`;
}
