// Preview playback over the project axis: plays a list of segments [[t0, t1], ...] in order,
// jumping between them (5 ms WebAudio gain fades at each jump when the browser allows it) and
// switching the proxy video from clip to clip. Without a reachable proxy it runs on a silent
// clock, so the playhead still shows what the cut would play.

import { clipAt } from "./util.js";

const FADE = 0.005;

export class Player {
  /**
   * @param {HTMLVideoElement} video
   * @param {() => {clips: object[], urls: Map<string,string>, total: number}} source
   * @param {(t: number, playing: boolean) => void} onTime
   * @param {(mode: string|null, phase: string) => void} onMode
   */
  constructor(video, source, onTime, onMode) {
    this.video = video;
    this.source = source;
    this.onTime = onTime;
    this.onMode = onMode;
    this.mode = null;
    this.phase = "";
    this.segments = [];
    this.segIdx = 0;
    this.clip = null; // clip loaded in the video
    this.clockBase = 0;
    this.clockStart = 0;
    this.clockRunning = false;
    this.position = 0; // last known project time
    this.jumping = false;
    this.internal = 0; // >0 while we change the video ourselves (ignore its events)
    this.audio = null; // {ctx, gain} once WebAudio is wired
    this.audioFailed = false;
    this.raf = 0;
    this.timers = new Set();
    this.note = "";
    this._tick = this._tick.bind(this);
    this._onVideoPlay = () => {
      if (!this.internal && !this.mode && this._usesVideo()) {
        // Native controls started playback: follow it as plain play.
        this.segments = [[this.time(), this.source().total]];
        this.segIdx = 0;
        this._setMode("play", "");
        this.raf = requestAnimationFrame(this._tick);
      }
    };
    this._onVideoPause = () => {
      if (!this.internal && this.mode && !this.jumping && !this._switching) this.stop();
    };
    this._onSeeked = () => {
      if (this.audio && this.mode) this._ramp(1);
      if (!this.mode) this.onTime(this.time(), false);
    };
    video.addEventListener("play", this._onVideoPlay);
    video.addEventListener("pause", this._onVideoPause);
    video.addEventListener("seeked", this._onSeeked);
  }

  destroy() {
    this.stop();
    cancelAnimationFrame(this.raf);
    for (const t of this.timers) clearTimeout(t);
    this.video.removeEventListener("play", this._onVideoPlay);
    this.video.removeEventListener("pause", this._onVideoPause);
    this.video.removeEventListener("seeked", this._onSeeked);
    try {
      this.video.pause();
      this.video.removeAttribute("src");
      this.video.load();
    } catch {
      /* element already gone */
    }
    if (this.audio) this.audio.ctx.close().catch(() => {});
    this.audio = null;
  }

  _usesVideo() {
    const { clips, urls } = this.source();
    const timed = clips.filter((c) => c.duration);
    return timed.length > 0 && timed.every((c) => urls.has(c.id));
  }

  time() {
    if (this._usesVideo()) {
      if (this.clip && this.video.readyState > 0 && !this._switching) {
        this.position = (this.clip.offset || 0) + this.video.currentTime;
      }
      return this.position;
    }
    if (this.clockRunning) {
      return this.clockBase + (performance.now() - this.clockStart) / 1000;
    }
    return this.position;
  }

  /** Move to project time t (keeps playing if playing). */
  seek(t) {
    const { total } = this.source();
    t = Math.max(0, Math.min(total, t));
    this.position = t;
    if (this._usesVideo()) {
      this._videoSeek(t, Boolean(this.mode));
    } else if (this.clockRunning) {
      this.clockBase = t;
      this.clockStart = performance.now();
    }
    if (!this.mode) this.onTime(t, false);
  }

  _videoSeek(t, play) {
    const { clips, urls } = this.source();
    const clip = clipAt(clips, t);
    if (!clip || !urls.has(clip.id)) return;
    const inClip = Math.max(0, Math.min(clip.duration || 0, t - (clip.offset || 0)));
    const url = urls.get(clip.id);
    if (this.clip && this.clip.id === clip.id && this.video.currentSrc) {
      this.clip = clip;
      if (Math.abs(this.video.currentTime - inClip) > 0.001) this.video.currentTime = inClip;
      if (play && this.video.paused) this._playVideo();
      return;
    }
    this.clip = clip;
    this._switching = true;
    this.internal += 1;
    const done = () => {
      this.video.removeEventListener("loadedmetadata", done);
      this._switching = false;
      this.internal = Math.max(0, this.internal - 1);
      this.video.currentTime = inClip;
      if (play && this.mode) {
        this._wireAudio();
        this.video.dataset.fades = this.audio ? "webaudio" : "none";
        this._playVideo();
      }
    };
    this.video.addEventListener("loadedmetadata", done);
    this.video.src = url;
    this.video.load();
  }

  _playVideo() {
    this.internal += 1;
    const p = this.video.play();
    const release = () => {
      this.internal = Math.max(0, this.internal - 1);
    };
    if (p && p.then) {
      p.then(release, (err) => {
        release();
        if (err && err.name === "NotAllowedError" && !this.video.muted) {
          // Autoplay policy without a gesture: play muted rather than not at all.
          this.video.muted = true;
          this.note = "playing muted: the browser blocked sound without a click";
          if (this.mode) this._playVideo();
        }
      });
    } else release();
  }

  _wireAudio() {
    if (this.audio || this.audioFailed) return;
    const Ctx = window.AudioContext || window.webkitAudioContext;
    // A cross-origin video without CORS would feed silence into WebAudio: only wire it when
    // the media is same-origin or loaded with crossorigin.
    const src = this.video.currentSrc || this.video.src;
    if (!src) return; // nothing loaded yet: wired once the first clip has loaded
    const sameOrigin = src && new URL(src, location.href).origin === location.origin;
    if (!Ctx || (!sameOrigin && this.video.crossOrigin !== "anonymous")) {
      this.audioFailed = true;
      return;
    }
    try {
      const ctx = new Ctx();
      const node = ctx.createMediaElementSource(this.video);
      const gain = ctx.createGain();
      node.connect(gain).connect(ctx.destination);
      this.audio = { ctx, gain };
      if (ctx.state === "suspended") ctx.resume().catch(() => {});
    } catch {
      this.audioFailed = true;
    }
  }

  _ramp(value) {
    if (!this.audio) return;
    const { ctx, gain } = this.audio;
    const now = ctx.currentTime;
    gain.gain.cancelScheduledValues(now);
    gain.gain.setValueAtTime(gain.gain.value, now);
    gain.gain.linearRampToValueAtTime(value, now + FADE);
  }

  /** Play segments in order; mode is "play", "cut" or "ba" (before/after). */
  start(mode, segments, phase = "") {
    this.stop(true);
    const segs = segments.filter(([a, b]) => b - a > 0.01);
    if (!segs.length) {
      this._setMode(null, "");
      return;
    }
    this.segments = segs;
    this.segIdx = 0;
    this._setMode(mode, phase);
    const t = segs[0][0];
    this.position = t;
    if (this._usesVideo()) {
      this._wireAudio();
      this.video.dataset.fades = this.audio ? "webaudio" : "none"; // readable by tests
      if (this.audio) {
        this.audio.gain.gain.setValueAtTime(1, this.audio.ctx.currentTime);
        if (this.audio.ctx.state === "suspended") this.audio.ctx.resume().catch(() => {});
      }
      this._videoSeek(t, true);
    } else {
      this.clockBase = t;
      this.clockStart = performance.now();
      this.clockRunning = true;
    }
    cancelAnimationFrame(this.raf);
    this.raf = requestAnimationFrame(this._tick);
  }

  /** Replace the remaining segments (the edits changed while playing the cut). */
  replaceSegments(segments) {
    if (!this.mode) return;
    const segs = segments.filter(([a, b]) => b - a > 0.01);
    if (!segs.length) return;
    this.segments = segs;
    this.segIdx = 0;
  }

  stop(quiet = false) {
    const wasPlaying = Boolean(this.mode);
    cancelAnimationFrame(this.raf);
    this.raf = 0;
    if (this.clockRunning) {
      this.position = this.time();
      this.clockRunning = false;
    }
    if (this._usesVideo() && !this.video.paused) {
      this.internal += 1;
      this.video.pause();
      this.internal = Math.max(0, this.internal - 1);
    }
    this.position = this.time();
    this.jumping = false;
    if (!quiet) this._setMode(null, "");
    else this.mode = null;
    if (wasPlaying && !quiet) this.onTime(this.position, false);
  }

  _setMode(mode, phase) {
    this.mode = mode;
    this.phase = phase;
    this.onMode(mode, phase);
  }

  _later(fn, ms) {
    const id = setTimeout(() => {
      this.timers.delete(id);
      fn();
    }, ms);
    this.timers.add(id);
  }

  _jumpTo(t) {
    // Fade out, jump, fade in on `seeked` (video) or at once (clock).
    this.jumping = true;
    const go = () => {
      this.jumping = false;
      if (!this.mode) return;
      if (this._usesVideo()) this._videoSeek(t, true);
      else {
        this.clockBase = t;
        this.clockStart = performance.now();
      }
      this.position = t;
    };
    if (this.audio) {
      this._ramp(0);
      this._later(go, FADE * 1000);
    } else go();
  }

  _tick() {
    if (!this.mode) return;
    this.raf = requestAnimationFrame(this._tick);
    if (this.jumping || this._switching) {
      return;
    }
    let t = this.time();
    const seg = this.segments[this.segIdx];
    const video = this._usesVideo();
    // Crossing into the next clip inside one segment: load it at its start.
    if (video && this.clip) {
      const clipEnd = (this.clip.offset || 0) + (this.clip.duration || 0);
      if ((this.video.ended || t >= clipEnd - 0.01) && t < seg[1] - 0.02) {
        this._videoSeek(clipEnd + 1e-3, true);
        this.onTime(clipEnd, true);
        return;
      }
    }
    // Look one frame ahead so the fade ends at the boundary, not after it.
    const ahead = video ? FADE + 0.012 : 0;
    if (t >= seg[1] - ahead) {
      t = Math.min(t, seg[1]);
      const next = this.segments[this.segIdx + 1];
      if (!next) {
        this.onTime(seg[1], true);
        this.stop();
        return;
      }
      this.segIdx += 1;
      if (this.phase === "before" && this.mode === "ba" && this.segIdx === 1) {
        this.phase = "after";
        this.onMode(this.mode, this.phase);
      }
      if (Math.abs(next[0] - seg[1]) > 0.002) this._jumpTo(next[0]);
    }
    this.onTime(Math.max(seg[0], t), true);
  }
}
