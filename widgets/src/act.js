// The action channel browser -> kernel (contract: "Actions").
// anywidget models have `send` (custom messages, with binary buffers); Panel's AnyWidgetComponent
// model does not, so there actions travel in the `_outbox` trait and Python acknowledges the
// highest handled `seq` in `_acked`.

const counters = new WeakMap();

// seq must grow past anything Python already acknowledged: after a page reload the model keeps
// `_acked` while this counter restarts, and Python ignores entries with seq <= _acked.
function nextSeq(model) {
  let seq = counters.get(model);
  if (seq === undefined) {
    seq = Number(model.get("_acked")) || 0;
    for (const a of model.get("_outbox") || []) seq = Math.max(seq, Number(a.seq) || 0);
  }
  seq += 1;
  counters.set(model, seq);
  return seq;
}

function toBase64(buffer) {
  const bytes = new Uint8Array(buffer.buffer ? buffer.buffer : buffer,
    buffer.byteOffset || 0, buffer.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

export function canSend(model) {
  return typeof model.send === "function";
}

/** Send one action `{type, ...}`; returns the action as sent (with its seq). */
export function act(model, action, buffers) {
  const full = { ...action, seq: nextSeq(model) };
  if (canSend(model)) {
    model.send(full, undefined, buffers);
  } else {
    if (buffers && buffers.length) {
      // No binary messages here (Panel): the one buffer travels as base64 in the action
      // itself, which the kernel side accepts as `data`.
      full.data = toBase64(buffers[0]);
    }
    const acked = Number(model.get("_acked")) || 0;
    const outbox = (model.get("_outbox") || []).filter((a) => a.seq > acked);
    model.set("_outbox", [...outbox, full]);
    model.save_changes();
  }
  return full;
}
