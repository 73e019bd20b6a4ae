// What a link is: its file type group (for the page's link list and for
// taking over browser downloads), and whether it names an Ollama model.

// The type groups a person picks from (their names are in _locales).
export const groups = {
  archives: ['zip', 'rar', '7z', 'tar', 'gz', 'tgz', 'bz2', 'tbz2', 'xz', 'txz', 'zst', 'lz', 'lzma', 'cab', 'arj'],
  video: ['mp4', 'mkv', 'webm', 'avi', 'mov', 'm4v', 'wmv', 'flv', 'mpg', 'mpeg', '3gp', 'ogv'],
  images: ['iso', 'img', 'dmg', 'vhd', 'vhdx', 'vmdk', 'qcow2', 'wim', 'ova', 'ovf'],
  models: ['gguf', 'safetensors', 'ggml', 'ggjt', 'pt', 'pth', 'onnx', 'ckpt', 'tflite', 'mlmodel'],
};

// extensionOf is the lower-case file extension of a URL's last path
// segment (or of a file name), '' when it has none.
export function extensionOf(urlOrName) {
  let name = String(urlOrName || '');
  try {
    name = new URL(name).pathname;
  } catch {
    // a plain name
  }
  name = name.split(/[\\/]/).pop() || '';
  try {
    name = decodeURIComponent(name);
  } catch {
    // keep it as it is
  }
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : '';
}

// customList reads "pdf, .epub  mobi" into ['pdf', 'epub', 'mobi'].
export function customList(text) {
  return String(text || '').toLowerCase().split(/[\s,;]+/).map((e) => e.replace(/^\*?\./, '')).filter((e) => /^[a-z0-9]{1,16}$/.test(e));
}

// groupOf is the group a link belongs to ('custom' for the person's own
// extensions, 'models' for an Ollama model page, '' for none).
export function groupOf(url, custom = []) {
  if (modelName(url)) return 'models';
  const ext = extensionOf(url);
  if (!ext) return '';
  for (const [g, exts] of Object.entries(groups)) {
    if (exts.includes(ext)) return g;
  }
  return custom.includes(ext) ? 'custom' : '';
}

// modelName is the Ollama model a link names: ollama.com/library/llama3:8b
// → "llama3:8b"; '' for any other link.
export function modelName(url) {
  let u;
  try {
    u = new URL(url);
  } catch {
    return '';
  }
  if (!/^(www\.)?ollama\.com$/i.test(u.hostname)) return '';
  const m = /^\/library\/([a-z0-9][a-z0-9._-]*(?::[a-z0-9._-]+)?)\/?$/i.exec(decodeURIComponent(u.pathname));
  return m ? m[1] : '';
}

// matchesTakeover reports whether a browser download is one the person
// wants handed over: of a chosen type, or at least minBytes big (when its
// size is known).
export function matchesTakeover({ url, filename, size }, { types = [], custom = [], minBytes = 0 }) {
  const ext = extensionOf(filename) || extensionOf(url);
  const inGroup = types.some((g) => (g === 'custom' ? custom : groups[g] || []).includes(ext));
  return inGroup || (minBytes > 0 && size >= minBytes);
}
