// fanout-client.js: the client's side of "nothing missed across a reconnect"
// (docs/contracts.md, "Offsets, history and recovery"). No dependencies and no build step:
// copy it into an app, load it before the code that uses it, and wire a RoomSequence to a
// WebSocket as local/static/app.js does:
//
//   const sequence = new RoomSequence({
//     deliver: (frame) => show(frame),               // each message once, in offset order
//     recover: (request) => socket.send(JSON.stringify(request)),
//     incomplete: (recovered) => reloadState(),       // history did not reach back
//   });
//   socket.onopen = () => sequence.resume();          // on every (re)connect
//   socket.onmessage: frames of type "message" go to sequence.message(frame),
//                     "recovered" to sequence.recovered(frame)
//   setInterval(() => socket.send(JSON.stringify(PING)), PING_EVERY_MS);
//
// The rule it follows, per room: keep the epoch and `last`, the highest offset up to which
// every message was handed on. A message at or below `last`, or one already held, is a
// duplicate. The next one is handed on, with every held one that now follows. One ahead of a
// gap is held; if the gap is still there after GAP_WAIT_MS, it asks to recover from `last`.
// A `recovered` frame settles everything up to its `to`: offsets it did not send were never
// delivered to anyone (a send that failed), and one of them that still arrives (it was being
// written during the recovery) is handed on late, once. Another epoch means the room's
// sequence started over: the app reloads its state and the client goes on in the new epoch.
"use strict";

/** The keep-alive frame: answered {"type":"pong"}, it costs no fan-out. */
const PING = Object.freeze({ action: "ping" });
/** API Gateway closes a connection that sends nothing for 10 minutes: ping well before. */
const PING_EVERY_MS = 5 * 60 * 1000;
/** How long a gap may stay open before the client asks to recover it. */
const GAP_WAIT_MS = 2000;
/** How many of the room's last messages a client that joins for the first time asks for. */
const JOIN_LAST = 20;
/** Offsets settled as never delivered, remembered to let a late one through. */
const MAX_SKIPPED = 1000;
/** A recovery unanswered this long (API Gateway's 29 s, and a margin) is asked again. */
const RECOVERY_TIMEOUT_MS = 35000;

class RoomSequence {
  /**
   * @param {object} handlers
   * @param {(frame: object) => void} handlers.deliver each message, once, in offset order
   * @param {(request: object) => void} handlers.recover sends a recover request
   * @param {(recovered: object|null) => void} [handlers.incomplete] history did not reach
   *   back (a `recovered` frame with complete: false), or the room's epoch changed (null):
   *   the app reloads its state from its own source of truth
   * @param {object} [options] `gapWaitMs`, `joinLast`, `recoveryTimeoutMs`, and `timers`
   *   ({set, clear}: a clock of the caller's own, as tests use; default setTimeout and
   *   clearTimeout)
   */
  constructor(handlers, options = {}) {
    this.handlers = handlers;
    this.gapWaitMs = options.gapWaitMs ?? GAP_WAIT_MS;
    this.recoveryTimeoutMs = options.recoveryTimeoutMs ?? RECOVERY_TIMEOUT_MS;
    this.joinLast = options.joinLast ?? JOIN_LAST;
    this.timers = options.timers ?? {
      set: (callback, ms) => setTimeout(callback, ms),
      clear: (timer) => clearTimeout(timer),
    };
    /** The room's epoch; null until the first recovery or message says it. */
    this.epoch = null;
    /** Every message up to this offset was handed on (or never existed). */
    this.last = 0;
    /** Messages ahead of a gap, by offset. */
    this.held = new Map();
    /** Offsets a recovery settled as never delivered. */
    this.skipped = new Set();
    /** Whether a recovery is under way: gaps wait for its `recovered` frame. */
    this.recovering = false;
    this.gapTimer = null;
    /** Asks again if a recovery is never answered (it failed, or its answer was lost). */
    this.recoveryTimer = null;
  }

  /** On every (re)connect: recover from where the client is, or the room's last messages. */
  resume() {
    this.recovering = true;
    if (this.recoveryTimer !== null) this.timers.clear(this.recoveryTimer);
    this.recoveryTimer = this.timers.set(() => {
      this.recoveryTimer = null;
      if (this.recovering) this.resume();
    }, this.recoveryTimeoutMs);
    const someHeld = this.held.values().next().value;
    if (this.epoch === null && someHeld) {
      // The join's answer never came, but live messages did: recover their epoch from its
      // start (the join's "last N" would not reach back to the first of them).
      this.epoch = someHeld.epoch;
      this.last = 0;
      this.handlers.recover({ action: "recover", offset: 0, epoch: this.epoch });
    } else if (this.epoch === null) {
      this.handlers.recover({ action: "recover", last: this.joinLast });
    } else {
      this.handlers.recover({ action: "recover", offset: this.last, epoch: this.epoch });
    }
  }

  /** A `message` frame, live or recovered. */
  message(frame) {
    if (typeof frame.offset !== "number" || typeof frame.epoch !== "string") {
      // A producer's job has no place in the sequence: nothing to order it by.
      this.handlers.deliver(frame);
      return;
    }
    if (this.epoch === null) {
      if (this.recovering) {
        this.held.set(frame.offset, frame);
        return;
      }
      this.epoch = frame.epoch;
    }
    if (frame.epoch !== this.epoch) {
      // The room's sequence started over: what the app holds may be stale.
      this.restart(frame.epoch);
      this.handlers.incomplete?.(null);
    }
    const offset = frame.offset;
    if (offset <= this.last) {
      if (this.skipped.delete(offset)) this.handlers.deliver(frame);
      return;
    }
    if (this.held.has(offset)) return;
    this.held.set(offset, frame);
    this.drain();
  }

  /** The `recovered` frame that ends a recovery. */
  recovered(frame) {
    this.recovering = false;
    if (this.recoveryTimer !== null) this.timers.clear(this.recoveryTimer);
    this.recoveryTimer = null;
    const to = typeof frame.to === "number" ? frame.to : 0;
    if (typeof frame.epoch === "string" && frame.epoch !== this.epoch) {
      // First join, or another epoch: go on from the room's present.
      const first = this.epoch === null;
      this.restart(frame.epoch);
      this.last = typeof frame.from === "number" ? frame.from : 0;
      if (!first && !frame.complete) this.handlers.incomplete?.(frame);
    } else if (!frame.complete) {
      this.handlers.incomplete?.(frame);
    }
    // Everything up to `to` is settled: hand on what came, in order, and skip what never
    // existed (only the last MAX_SKIPPED are remembered: the work is bounded by what is held,
    // not by how far `to` is).
    if (to > this.last) {
      const settled = [...this.held.keys()].filter((offset) => offset <= to).sort((a, b) => a - b);
      for (let offset = Math.max(this.last + 1, to - MAX_SKIPPED + 1); offset <= to; offset++) {
        if (!this.held.has(offset)) this.skip(offset);
      }
      for (const offset of settled) {
        const held = this.held.get(offset);
        this.held.delete(offset);
        if (offset > this.last) this.handlers.deliver(held);
      }
      this.last = to;
    }
    this.drain();
  }

  /** Hands on every held message that follows `last`; watches a gap that remains. */
  drain() {
    // Held at or below `last` (live before a join settled past them): nothing to wait for.
    for (const offset of this.held.keys()) if (offset <= this.last) this.held.delete(offset);
    for (let next = this.held.get(this.last + 1); next; next = this.held.get(this.last + 1)) {
      this.held.delete(this.last + 1);
      this.last += 1;
      this.handlers.deliver(next);
    }
    if (this.held.size === 0) {
      if (this.gapTimer !== null) this.timers.clear(this.gapTimer);
      this.gapTimer = null;
    } else if (this.gapTimer === null) {
      this.gapTimer = this.timers.set(() => {
        this.gapTimer = null;
        if (this.held.size > 0 && !this.recovering) this.resume();
        else if (this.held.size > 0) this.drain();
      }, this.gapWaitMs);
    }
  }

  restart(epoch) {
    this.epoch = epoch;
    this.last = 0;
    for (const [offset, frame] of this.held) {
      if (frame.epoch !== epoch) this.held.delete(offset);
    }
    this.skipped.clear();
  }

  skip(offset) {
    this.skipped.add(offset);
    if (this.skipped.size > MAX_SKIPPED) {
      this.skipped.delete(this.skipped.values().next().value);
    }
  }
}

globalThis.FanoutClient = {
  RoomSequence,
  PING,
  PING_EVERY_MS,
  GAP_WAIT_MS,
  JOIN_LAST,
  RECOVERY_TIMEOUT_MS,
};
