// Min/max pyramid over the `peaks` trait (int16 little-endian min,max pairs), built once per
// change; the timeline reads only the level whose resolution matches the pixels on screen.

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** int16 pairs of a DataView/ArrayBuffer/typed array, honouring its byteOffset. */
export function toInt16(data) {
  if (!data) return new Int16Array(0);
  let buffer;
  let offset = 0;
  let length;
  if (data instanceof ArrayBuffer) {
    buffer = data;
    length = data.byteLength;
  } else if (ArrayBuffer.isView(data)) {
    buffer = data.buffer;
    offset = data.byteOffset;
    length = data.byteLength;
  } else {
    return new Int16Array(0);
  }
  const n = length >> 1;
  if (LITTLE_ENDIAN && offset % 2 === 0) return new Int16Array(buffer, offset, n);
  const view = new DataView(buffer, offset, length);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i += 1) out[i] = view.getInt16(i * 2, true);
  return out;
}

/** Levels: level k holds min,max pairs each covering 2^k base pairs. */
export function buildLevels(pairs) {
  const levels = [pairs];
  let cur = pairs;
  while (cur.length >= 4) {
    const n = cur.length >> 1; // pairs in cur
    const m = (n + 1) >> 1; // pairs in next level
    const next = new Int16Array(m * 2);
    for (let j = 0; j < m; j += 1) {
      const a = 4 * j;
      let lo = cur[a];
      let hi = cur[a + 1];
      if (a + 2 < cur.length) {
        if (cur[a + 2] < lo) lo = cur[a + 2];
        if (cur[a + 3] > hi) hi = cur[a + 3];
      }
      next[2 * j] = lo;
      next[2 * j + 1] = hi;
    }
    levels.push(next);
    cur = next;
  }
  return levels;
}

/**
 * Segments of the project axis that have peaks: [{id, offset, count, levels}], plus the
 * loudest absolute value (to scale quiet recordings up).
 */
export function buildPyramid(data, meta) {
  const all = toInt16(data);
  const perSecond = Number(meta && meta.per_second) || 100;
  let clips = (meta && meta.clips) || [];
  if (!clips.length && all.length) clips = [{ id: null, offset: 0, count: all.length >> 1 }];
  const segments = [];
  let start = 0;
  let peak = 1;
  for (const c of clips) {
    const count = Math.min(Number(c.count) || 0, (all.length >> 1) - start);
    if (count <= 0) continue;
    const pairs = all.subarray(2 * start, 2 * (start + count));
    for (let i = 0; i < pairs.length; i += 1) {
      const v = pairs[i] < 0 ? -pairs[i] : pairs[i];
      if (v > peak) peak = v;
    }
    segments.push({ id: c.id, offset: Number(c.offset) || 0, count, levels: buildLevels(pairs) });
    start += count;
  }
  return { perSecond, segments, peak };
}
