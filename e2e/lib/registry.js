// A minimal model registry for the browser tests: one model, library/tiny:1,
// served the way registry.ollama.ai serves it (a Docker v2 manifest by tag,
// with its Docker-Content-Digest, also to a HEAD; blobs by digest, with
// Range support), and a newer version of it on demand. Nothing else.
import http from 'node:http';
import crypto from 'node:crypto';

const sha = (b) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

export async function startRegistry() {
  const blobs = new Map();
  const desc = (mediaType, data) => {
    const digest = sha(data);
    blobs.set(digest, data);
    return { mediaType, digest, size: data.length };
  };
  // version makes the model's manifest: another version has other weights.
  const version = (v) => {
    const weights = Buffer.alloc(64 << 10);
    for (let i = 0; i < weights.length; i++) weights[i] = (i * 131 + 7 + v) & 0xff;
    return Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: desc('application/vnd.docker.container.image.v1+json', Buffer.from('{"model_format":"gguf","model_family":"tiny","model_type":"64K","file_type":"F32"}')),
      layers: [
        desc('application/vnd.ollama.image.model', weights),
        desc('application/vnd.ollama.image.template', Buffer.from('{{ .Prompt }}')),
      ],
    }));
  };
  let manifest = version(0);
  const methods = []; // the method of each manifest request, in order

  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405);
      res.end();
      return;
    }
    if (u.pathname === '/v2/library/tiny/manifests/1' || u.pathname === `/v2/library/tiny/manifests/${sha(manifest)}`) {
      methods.push(req.method);
      res.writeHead(200, {
        'content-type': 'application/vnd.docker.distribution.manifest.v2+json',
        'docker-content-digest': sha(manifest),
        'content-length': String(manifest.length),
      });
      res.end(req.method === 'HEAD' ? undefined : manifest);
      return;
    }
    const m = /^\/v2\/library\/tiny\/blobs\/(sha256:[0-9a-f]{64})$/.exec(u.pathname);
    const data = m && blobs.get(m[1]);
    if (!data) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"NAME_UNKNOWN","message":"unknown"}]}');
      return;
    }
    let start = 0;
    let end = data.length - 1;
    const headers = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes' };
    const r = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range || '');
    if (r && Number(r[1]) < data.length) {
      start = Number(r[1]);
      end = r[2] === '' ? end : Math.min(end, Number(r[2]));
      headers['content-range'] = `bytes ${start}-${end}/${data.length}`;
    }
    headers['content-length'] = String(end - start + 1);
    res.writeHead(r ? 206 : 200, headers);
    res.end(req.method === 'HEAD' ? undefined : data.subarray(start, end + 1));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    base,
    get manifest() { return manifest; },
    blobs,
    methods,
    // publish tags a newer version as library/tiny:1 (its blobs stay served).
    publish() { manifest = version(1); },
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
