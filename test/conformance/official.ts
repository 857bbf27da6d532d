// Test helper: Envoy's OFFICIAL protos (shipped in @grpc/grpc-js-xds/deps), loaded with
// protobufjs for wire-compatibility checks. Never copied into the repo.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
// proto-loader registers google/protobuf/descriptor.proto with protobufjs (needed by
// the validate/udpa option extensions the official files import).
import '@grpc/proto-loader';

const DEPS = fileURLToPath(new URL('../../node_modules/@grpc/grpc-js-xds/deps/', import.meta.url));
export const OFFICIAL_INCLUDE_DIRS = ['envoy-api', 'googleapis', 'xds', 'protoc-gen-validate'].map((d) =>
  path.join(DEPS, d),
);

export function loadRoot(files: string[], includeDirs: readonly string[]): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of includeDirs) {
      const p = path.join(dir, target);
      if (fs.existsSync(p)) return p;
    }
    return protobuf.util.path.resolve(origin, target);
  };
  root.loadSync(files, { keepCase: true });
  root.resolveAll();
  return root;
}

let official: protobuf.Root | undefined;
export function officialRoot(): protobuf.Root {
  official ??= loadRoot(['envoy/service/auth/v3/external_auth.proto'], OFFICIAL_INCLUDE_DIRS);
  return official;
}
