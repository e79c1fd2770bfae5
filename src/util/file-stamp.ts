// What changes whenever a file read whole may have changed: its inode (a writer's atomic rename
// makes a new one), size and mtime. One stat; "absent" when there is no file.
import fs from 'node:fs';

export function fileStamp(file: string): string {
  try {
    const st = fs.statSync(file);
    return `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return 'absent';
  }
}
