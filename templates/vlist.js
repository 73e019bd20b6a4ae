// VirtualList keeps in the DOM only the rows of a long list that are near
// the window's view (issue 18: 10,000 queued downloads were 520,000 nodes
// and 8 s of blocked main thread). The rows above and below are stood in for
// by the list's padding, so the page scrolls as if they were all there.
//
// Rows may differ in height (an error line, a model's layers, the phone's
// cards): a row is measured once it has been shown, and an estimate stands
// in for those never shown. The page scrolls, not the list: the view is the
// window, so the list sits in the page's flow like any other element.
export class VirtualList {
  // The items are ids; get(id) is the item now. build(id, item) makes a
  // row element; update(row, item, index, count) fills it when the item
  // or its place changed, and returns a key of what decides the row's
  // height (a row is measured again only when that key changes, so that a
  // progress update forces no layout of its own); estimate(item) guesses
  // the height in px of a row never measured.
  // positional: a row shows its place (first, last), so a change of place
  // fills it again; otherwise only a change of its item does.
  constructor(ul, { get, build, update, estimate, overscan = 800, positional = false }) {
    this.ul = ul;
    this.get = get;
    this.positional = positional;
    this.build = build;
    this.update = update;
    this.estimate = estimate;
    this.overscan = overscan;
    this.items = []; // ids, in order
    this.rows = new Map(); // id → row element in the DOM
    this.heights = new Map(); // id → measured height (with the gap below it)
    this.offsets = null; // offsets[i] = top of item i; offsets[n] = total
    this.range = [0, 0];
  }

  setItems(items) {
    this.items = items;
    this.offsets = null;
  }

  // removedAt and insertedAt follow a change the caller made to the items
  // array (a splice): the offsets after it shift, with no walk over the
  // other items' heights.
  removedAt(i) {
    const off = this.offsets;
    if (!off) return;
    const n = this.items.length; // after the removal
    const h = off[i + 1] - off[i];
    const next = new Float64Array(n + 1);
    next.set(off.subarray(0, i + 1));
    for (let k = i + 1; k <= n; k++) next[k] = off[k + 1] - h;
    this.offsets = next;
  }

  insertedAt(i) {
    const off = this.offsets;
    if (!off) return;
    const n = this.items.length; // after the insertion
    const id = this.items[i];
    const h = this.heights.get(id) ?? this.estimate(this.get(id));
    const next = new Float64Array(n + 1);
    next.set(off.subarray(0, i + 1));
    for (let k = i + 1; k <= n; k++) next[k] = off[k - 1] + h;
    this.offsets = next;
  }

  // forget drops measured heights (the width changed) and, with rebuild,
  // the row elements too (the language changed).
  forget(rebuild) {
    this.heights.clear();
    this.offsets = null;
    for (const row of this.rows.values()) row._shape = undefined;
    if (rebuild) {
      for (const row of this.rows.values()) row.remove();
      this.rows.clear();
    }
  }

  // touch makes every row in view be filled again on the next render
  // (something they show besides their item changed).
  touch() {
    for (const row of this.rows.values()) row._item = null;
  }

  rendered() {
    return this.rows.values();
  }

  computeOffsets() {
    const n = this.items.length;
    const off = new Float64Array(n + 1);
    for (let i = 0; i < n; i++) {
      const id = this.items[i];
      off[i + 1] = off[i] + (this.heights.get(id) ?? this.estimate(this.get(id)));
    }
    this.offsets = off;
  }

  // indexAt is the first item whose bottom is below y.
  indexAt(y) {
    const off = this.offsets;
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (off[mid + 1] <= y) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  render() {
    // A hidden list (another tab) has no geometry: it renders when shown.
    const rects = this.ul.getClientRects();
    if (!rects.length && this.items.length) return;
    // The list's own padding does not move its top: read it once.
    const top = rects.length ? rects[0].top : 0;
    for (let pass = 0; pass < 3; pass++) {
      if (!this.offsets) this.computeOffsets();
      if (!this.place(top)) return;
    }
  }

  // place renders the rows in view and measures those that are new or
  // changed shape; it says whether a measurement moved anything (then the
  // range is worked out again).
  place(top) {
    const n = this.items.length;
    const off = this.offsets;
    const viewTop = -top - this.overscan;
    const viewBottom = -top + window.innerHeight + this.overscan;
    let start = Math.min(this.indexAt(Math.max(0, viewTop)), n);
    let end = start;
    while (end < n && off[end] < viewBottom) end++;
    // Always show something near the top when the list is far off screen.
    if (start >= n && n > 0) { start = Math.max(0, n - 1); end = n; }
    this.range = [start, end];

    const wanted = new Set();
    for (let i = start; i < end; i++) wanted.add(this.items[i]);
    for (const [id, row] of this.rows) {
      if (!wanted.has(id)) {
        row.remove();
        this.rows.delete(id);
      }
    }
    let prev = null;
    let measure = false;
    for (let i = start; i < end; i++) {
      const id = this.items[i];
      const item = this.get(id);
      let row = this.rows.get(id);
      if (!row) {
        row = this.build(id, item);
        this.rows.set(id, row);
      }
      const moved = row._index !== i || row._count !== n;
      if (row._item !== item || (moved && this.positional)) {
        row._item = item;
        const shape = this.update(row, item, i, n);
        if (shape !== row._shape) {
          row._shape = shape;
          measure = true;
        }
      }
      if (moved) {
        row._index = i;
        row._count = n;
        row.setAttribute('aria-posinset', String(i + 1));
        row.setAttribute('aria-setsize', String(n));
      }
      if (!this.heights.has(id)) measure = true;
      // Move a row only when the order changed: moving a node drops its focus.
      const want = prev ? prev.nextSibling : this.ul.firstChild;
      if (want !== row) this.ul.insertBefore(row, want);
      prev = row;
    }
    const padTop = `${off[start]}px`;
    const padBottom = `${off[n] - off[end]}px`;
    if (this.ul.style.paddingBlockStart !== padTop) this.ul.style.paddingBlockStart = padTop;
    if (this.ul.style.paddingBlockEnd !== padBottom) this.ul.style.paddingBlockEnd = padBottom;

    if (!measure) return false;
    // Measure: the distance from a row's top to the next one's includes the
    // gap between them; the last row takes the gap seen above it.
    const shown = [];
    for (let i = start; i < end; i++) shown.push(this.rows.get(this.items[i]));
    let gap = 0;
    const tops = shown.map((r) => r.offsetTop);
    if (shown.length >= 2) gap = Math.max(0, tops[1] - tops[0] - shown[0].offsetHeight);
    // A height that differs from what was assumed moves every row below it:
    // the offsets shift in one pass (no walk over the items' heights).
    const olds = shown.map((_, k) => off[start + k + 1] - off[start + k]);
    let acc = 0;
    for (let k = 0; k < shown.length; k++) {
      const hgt = k + 1 < shown.length ? tops[k + 1] - tops[k] : shown[k].offsetHeight + gap;
      const i = start + k;
      const old = olds[k];
      if (hgt > 0) this.heights.set(this.items[i], hgt);
      if (hgt > 0 && Math.abs(old - hgt) > 0.5) acc += hgt - old;
      off[i + 1] += acc;
    }
    if (acc === 0) return false;
    for (let i = end + 1; i <= n; i++) off[i] += acc;
    return true;
  }
}
