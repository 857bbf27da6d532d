import { randomUUID } from 'node:crypto';
import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * A Kubernetes ConfigMap/Secret volume under `parent`, as the kubelet lays it out:
 * `<file> -> ..data/<file>`, `..data -> ..<timestamp>`. `publish` writes a new version the
 * way the kubelet does, with an atomic rename of the `..data` symlink.
 */
export async function kubeVolume(parent: string, file: string, text: string) {
  const vol = path.join(parent, `vol-${randomUUID().slice(0, 8)}`);
  await mkdir(vol);
  let n = 0;
  const publish = async (t: string) => {
    const ts = path.join(vol, `..2024_06_01_12_00_${String(n++).padStart(2, '0')}.${randomUUID().slice(0, 6)}`);
    await mkdir(ts);
    await writeFile(path.join(ts, file), t);
    await symlink(path.basename(ts), path.join(vol, '..data_tmp'));
    await rename(path.join(vol, '..data_tmp'), path.join(vol, '..data'));
  };
  await publish(text);
  await symlink(path.join('..data', file), path.join(vol, file));
  return { file: path.join(vol, file), publish };
}
