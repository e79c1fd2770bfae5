import path from 'node:path';

/** `rot13.mjs` or `rot13.mjs:Rot13`: the module file inside the storlet dir and an optional export. */
export interface MainSpec {
  file: string;
  exportName: string | undefined;
}

export function parseMainSpec(spec: string): MainSpec {
  const colon = spec.indexOf(':');
  const file = colon < 0 ? spec : spec.slice(0, colon);
  const exportName = colon < 0 ? undefined : spec.slice(colon + 1);
  if (!/^[A-Za-z0-9_.-]+\.(mjs|js|cjs)$/.test(file) || file.startsWith('.')) {
    throw new Error(`storlet main ${JSON.stringify(spec)} must name a .mjs, .js or .cjs file in the storlet dir`);
  }
  if (exportName !== undefined && !/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(exportName)) {
    throw new Error(`storlet main ${JSON.stringify(spec)} names an invalid export`);
  }
  return { file, exportName };
}

/** The module path, which never leaves the storlet dir (the file part has no slash). */
export function resolveMainPath(storletDir: string, spec: MainSpec): string {
  return path.join(storletDir, spec.file);
}
