// DOM helpers. Everything is built with createElement (never innerHTML), so
// names from servers cannot inject markup, and nothing needs an inline script
// or style that the server's CSP forbids (CSSOM writes such as el.style.width
// are allowed).

export const $ = (id) => document.getElementById(id);

// h builds an element: h('div', {class: 'x', text: 'y', onclick: f}, child...).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}

export function icon(name, cls) {
  const s = svg('svg', { class: cls ? `icon ${cls}` : 'icon', 'aria-hidden': 'true', focusable: 'false' });
  s.append(svg('use', { href: `#i-${name}` }));
  return s;
}

// bidi isolates a name or URL so that it keeps its own direction inside
// text of the other direction.
export const bidi = (text, cls) => h('bdi', { class: cls, dir: 'auto', title: text, text });

export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

export function setAttr(el, name, value) {
  if (value === null || value === undefined) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
  } else if (el.getAttribute(name) !== value) {
    el.setAttribute(name, value);
  }
}

// setFill shows a fraction on a progress bar (see .progress-fill).
export function setFill(fill, fraction) {
  const v = `scaleX(${Math.max(0, Math.min(1, fraction)).toFixed(4)})`;
  if (fill.style.transform !== v) fill.style.transform = v;
}

// readableURL shows a percent-encoded URL (a Persian file name) as text.
export function readableURL(s) {
  try { return decodeURI(s); } catch { return s; }
}

// nameFromSource is what to call a download whose file name is not known
// (it failed before the server answered): the URL's last path segment.
export function nameFromSource(source) {
  try {
    const u = new URL(source);
    const last = u.pathname.split('/').filter(Boolean).pop();
    return last ? decodeURIComponent(last) : u.host;
  } catch {
    return source;
  }
}

// fileIcon picks the icon of a file by its extension.
const iconByExt = new Map([
  ...['zip', 'tar', 'gz', 'tgz', 'bz2', 'xz', 'zst', '7z', 'rar', 'lz4', 'cab', '001'].map((e) => [e, 'archive']),
  ...['iso', 'img', 'dmg', 'vhd', 'vhdx', 'qcow2', 'vmdk', 'wim'].map((e) => [e, 'disc']),
  ...['mp4', 'mkv', 'webm', 'avi', 'mov', 'm4v', 'wmv', 'flv', 'ts'].map((e) => [e, 'video']),
  ...['mp3', 'flac', 'wav', 'ogg', 'opus', 'm4a', 'aac', 'wma'].map((e) => [e, 'audio']),
  ...['png', 'jpg', 'jpeg', 'gif', 'webp', 'svg', 'avif', 'bmp', 'tif', 'tiff', 'heic'].map((e) => [e, 'image']),
  ...['pdf', 'doc', 'docx', 'odt', 'txt', 'md', 'epub', 'rtf', 'xls', 'xlsx', 'ods', 'ppt', 'pptx'].map((e) => [e, 'doc']),
  ...['json', 'jsonl', 'csv', 'tsv', 'parquet', 'xml', 'yaml', 'yml', 'sql', 'py', 'js', 'go', 'sh', 'html'].map((e) => [e, 'code']),
  ...['exe', 'msi', 'deb', 'rpm', 'apk', 'appimage', 'pkg', 'snap', 'flatpak', 'jar'].map((e) => [e, 'app']),
  ...['gguf', 'ggml', 'safetensors', 'pt', 'pth', 'onnx', 'ckpt', 'h5', 'tflite', 'mlmodel'].map((e) => [e, 'weights']),
]);

export function fileIcon(kind, name) {
  if (kind === 'model' || kind === 'export') return 'model';
  const m = /\.([A-Za-z0-9]{1,10})$/.exec(name || '');
  return (m && iconByExt.get(m[1].toLowerCase())) || 'file';
}
