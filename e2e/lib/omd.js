// Builds (or takes from OMD_BIN) the ollama-model-downloader binary and runs
// it as the tests' server: `omd -no-browser -port 0 -output-dir <tmp>`, with
// the URL read from the first http://127.0.0.1:<port> it prints.
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export async function buildBinary(tmp) {
  if (process.env.OMD_BIN) return path.resolve(process.env.OMD_BIN);
  const out = path.join(tmp, 'omd');
  await promisify(execFile)('go', ['build', '-o', out, '.'], { cwd: repoRoot, timeout: 300_000 });
  return out;
}

// args are extra flags (e.g. -registry), env extra variables (e.g.
// OLLAMA_MODELS), user { uid, gid } another user to run it as (root only).
export async function startOmd(bin, outputDir, { timeoutMs = 30_000, args = [], env = {}, user = {} } = {}) {
  await fs.mkdir(outputDir, { recursive: true });
  const child = spawn(bin, ['-no-browser', '-port', '0', '-output-dir', outputDir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost', ...env },
    ...user,
  });
  let output = '';
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URL printed within ${timeoutMs} ms; output:\n${output}`)), timeoutMs);
    const onData = (d) => {
      output += d;
      const m = /http:\/\/127\.0\.0\.1:\d+/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(`${m[0]}/`);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${bin} exited (${code ?? signal}) before printing a URL; output:\n${output}`));
    });
  });
  return {
    url,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
}
