// A synthetic project: `minutes` of audio in two clips, peaks at 100/s, words and edits.

function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

const FILLERS = ["um", "uh", "like", "so"];
const VOCAB = ("the a we this that is of to and in for on it with as our data model results " +
  "show clearly when each sample was measured again under new conditions").split(" ");
const KINDS = ["silence", "false_start", "repeated_take", "filler", "stutter"];

/** Peaks as int16 LE pairs inside a larger buffer (byteOffset != 0, like a comm buffer). */
export function makePeaks(seconds, perSecond = 100, seed = 1, byteOffset = 6) {
  const n = Math.round(seconds * perSecond);
  const buf = new ArrayBuffer(byteOffset + n * 4 + 8);
  const dv = new DataView(buf, byteOffset, n * 4);
  const rand = rng(seed);
  let env = 0.3;
  for (let i = 0; i < n; i += 1) {
    if (i % 37 === 0) env = Math.max(0.02, Math.min(1, env + (rand() - 0.5) * 0.6));
    const syll = 0.5 + 0.5 * Math.sin(i * 0.9);
    const a = env * syll * (0.6 + 0.4 * rand());
    dv.setInt16(i * 4, Math.round(-a * 30000), true);
    dv.setInt16(i * 4 + 2, Math.round(a * 30000), true);
  }
  return dv;
}

export function makeProject(minutes = 60, { nEdits = 2000 } = {}) {
  const total = minutes * 60;
  const perSecond = 100;
  const d1 = Math.round(total * 0.42 * 100) / 100;
  const d2 = Math.round((total - d1) * 100) / 100;
  const clips = [
    { id: "c1", filename: "part1.mp4", status: "ready", error: null, duration: d1, offset: 0,
      proxy_url: null, width: 640, height: 360 },
    { id: "c2", filename: "part2.mp4", status: "ready", error: null, duration: d2, offset: d1,
      proxy_url: null, width: 640, height: 360 },
  ];
  const c1 = Math.round(d1 * perSecond);
  const c2 = Math.round(d2 * perSecond);
  const peaks = makePeaks(total, perSecond);
  const peaksMeta = { per_second: perSecond, count: c1 + c2,
    clips: [{ id: "c1", offset: 0, count: c1 }, { id: "c2", offset: d1, count: c2 }] };
  const rand = rng(7);
  const words = [];
  let t = 0.5;
  while (t < total - 1) {
    const len = 0.15 + rand() * 0.35;
    const w = rand() < 0.05 ? FILLERS[Math.floor(rand() * FILLERS.length)]
      : VOCAB[Math.floor(rand() * VOCAB.length)];
    words.push([Math.round(t * 1000) / 1000, Math.round((t + len) * 1000) / 1000, w,
      t < d1 ? "c1" : "c2"]);
    t += len + 0.05 + rand() * (rand() < 0.05 ? 2.5 : 0.2);
  }
  const edits = [];
  const step = total / nEdits;
  for (let i = 0; i < nEdits; i += 1) {
    const t0 = Math.round((i * step + rand() * step * 0.5) * 1000) / 1000;
    const t1 = Math.round((t0 + 0.2 + rand() * Math.min(1.5, step * 0.4)) * 1000) / 1000;
    const kind = KINDS[i % KINDS.length];
    const clip = t0 < d1 ? clips[0] : clips[1];
    const r = rand();
    edits.push({ id: `e${i}`, clip_id: clip.id, kind,
      status: r < 0.5 ? "proposed" : r < 0.85 ? "accepted" : "rejected",
      t0, t1, start: t0 - clip.offset, end: t1 - clip.offset, reason: `${kind} ${(t1 - t0).toFixed(2)} s`,
      source: "analysis", confidence: kind === "silence" ? null : Math.round(rand() * 100) / 100,
      words: kind === "silence" ? "" : "um so" });
  }
  return { clips, peaks, peaksMeta, words, edits, total };
}
