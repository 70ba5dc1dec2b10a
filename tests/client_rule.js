// The reference client's rule (local/static/fanout-client.js, RoomSequence) under random
// schedules, run in the page by tests/browser.rs: a room's sends, some failing after taking
// their offset; live deliveries reordered, repeated and lost (a fan-out that gave up); the
// client dropping and reconnecting, recovering from history each time, and some recoveries
// failing with no answer (the client asks again after its recovery timeout). History keeps
// everything, so a client that follows the rule must hand on every message that was kept,
// exactly once, in offset order. Returns null, or what went wrong with the seed to replay it.
//
// arguments[0]: how many schedules; arguments[1]: the first seed.
const [schedules, firstSeed] = arguments;
const { RoomSequence } = globalThis.FanoutClient;

function random(seed) {
  // mulberry32: small, seedable, good enough to pick schedules.
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function run(seed) {
  const rand = random(seed);
  const epoch = "e" + seed;
  const history = new Map(); // offset -> frame (sends that failed are never kept)
  let top = 0;
  const wire = []; // frames on their way to the client, delivered in a random order
  let connected = true;
  let now = 0;
  const timers = new Map();
  let nextTimer = 1;
  const handed = [];
  const sequence = new RoomSequence(
    {
      deliver: (frame) => handed.push(frame.offset),
      recover: (request) => {
        // The server's answer: the kept messages after the offset, in order, then `recovered`.
        // They go on the wire in order; live frames may pass them.
        if (!connected || rand() < 0.05) return;
        const after = "last" in request ? Math.max(0, top - request.last) : request.offset;
        const batch = [];
        for (let offset = after + 1; offset <= top; offset++) {
          if (history.has(offset)) batch.push(history.get(offset));
        }
        batch.push({ type: "recovered", from: after, to: top, epoch, complete: true });
        wire.push({ ordered: batch });
      },
      incomplete: () => {
        throw new Error("history keeps everything: no recovery may be incomplete");
      },
    },
    {
      gapWaitMs: 50,
      recoveryTimeoutMs: 200,
      joinLast: 0,
      timers: {
        set: (callback, ms) => {
          timers.set(nextTimer, { at: now + ms, callback });
          return nextTimer++;
        },
        clear: (id) => timers.delete(id),
      },
    },
  );
  // The client has joined (its first recovery answered) before the room's first message.
  while (wire.length === 0) sequence.resume(); // a failed answer is asked again
  sequence.recovered(wire.shift().ordered[0]);
  for (let step = 0; step < 400; step++) {
    now += 1 + Math.floor(rand() * 10);
    const roll = rand();
    if (roll < 0.3) {
      // A send: its offset is taken; one in ten fails before it is kept (no one gets it).
      top += 1;
      if (rand() < 0.1) continue;
      const frame = { type: "message", offset: top, epoch };
      history.set(top, frame);
      if (connected && rand() > 0.1) {
        wire.push({ frame });
        if (rand() < 0.1) wire.push({ frame }); // a repeated post
      }
    } else if (roll < 0.33 && connected) {
      connected = false; // what is on the wire is lost with the connection
      wire.length = 0;
    } else if (roll < 0.4 && !connected) {
      connected = true;
      sequence.resume();
    } else if (wire.length > 0 && connected) {
      // Deliver one frame of the wire, chosen at random; an ordered batch gives its next.
      const index = Math.floor(rand() * wire.length);
      const item = wire[index];
      const frame = item.ordered ? item.ordered.shift() : item.frame;
      if (!item.ordered || item.ordered.length === 0) wire.splice(index, 1);
      if (frame.type === "recovered") sequence.recovered(frame);
      else sequence.message(frame);
    }
    for (const [id, timer] of [...timers]) {
      if (timer.at <= now && connected) {
        timers.delete(id);
        timer.callback();
      }
    }
  }
  // Settle: reconnect, deliver everything, let the timers run out.
  if (!connected) {
    connected = true;
    sequence.resume();
  }
  for (let round = 0; round < 1000 && (wire.length > 0 || timers.size > 0); round++) {
    now += 100;
    while (wire.length > 0) {
      const item = wire[0];
      const frame = item.ordered ? item.ordered.shift() : item.frame;
      if (!item.ordered || item.ordered.length === 0) wire.shift();
      if (frame.type === "recovered") sequence.recovered(frame);
      else sequence.message(frame);
    }
    for (const [id, timer] of [...timers]) {
      if (timer.at <= now) {
        timers.delete(id);
        timer.callback();
      }
    }
  }
  while (wire.length === 0) sequence.resume();
  while (wire.length > 0) {
    for (const frame of wire.shift().ordered) {
      if (frame.type === "recovered") sequence.recovered(frame);
      else sequence.message(frame);
    }
  }
  const kept = [...history.keys()].sort((a, b) => a - b);
  if (JSON.stringify(handed) !== JSON.stringify(kept)) {
    return { seed, kept, handed };
  }
  return null;
}

for (let n = 0; n < schedules; n++) {
  const failed = run(firstSeed + n);
  if (failed) return failed;
}
return null;
