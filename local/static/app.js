// The fanout-local page: one WebSocket to ws(s)://HOST/STAGE?room=NAME[&token=...], the frames
// of docs/contracts.md rendered as text (never as HTML), reconnection with backoff after a drop,
// and on every (re)connect a recovery of what was missed, ordered by the reference client's
// RoomSequence (fanout-client.js); a ping every few minutes keeps an idle connection open.
// No build step and nothing fetched from anywhere but this server.
"use strict";

(() => {
  /** Room names the API accepts (docs/contracts.md). */
  const ROOM_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;
  const ROOM_KEY = "fanout-local.room";
  /** The token lives in this tab's session storage only: it is gone when the tab closes. */
  const TOKEN_KEY = "fanout-local.token";
  /** Reconnection waits 1 s, 2 s, 4 s, ... up to 30 s, each plus up to a quarter of jitter. */
  const BACKOFF_FIRST_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  /** How many messages and activity lines stay on the page, and message ids remembered. */
  const MAX_MESSAGES = 500;
  const MAX_LOG = 200;
  const MAX_SEEN_IDS = 2000;

  const byId = (id) => document.getElementById(id);
  const { RoomSequence, PING, PING_EVERY_MS } = globalThis.FanoutClient;
  const ui = {
    historyBanner: byId("history-banner"),
    joinForm: byId("join-form"),
    room: byId("room"),
    token: byId("token"),
    leave: byId("leave"),
    state: byId("state"),
    detail: byId("state-detail"),
    reconnectNow: byId("reconnect-now"),
    tokenHint: byId("token-hint"),
    me: byId("me"),
    endpoint: byId("endpoint"),
    messages: byId("messages"),
    sendForm: byId("send-form"),
    text: byId("message"),
    asJson: byId("as-json"),
    sendError: byId("send-error"),
    log: byId("log"),
  };
  const stage = document.querySelector('meta[name="fanout-stage"]').content;

  /** The socket in use; events of any older one are ignored. */
  let socket = null;
  /** Whether this socket's handshake succeeded. */
  let opened = false;
  /** Whether the user wants to be connected (false after Leave): drops reconnect only then. */
  let wanted = false;
  /** Failed attempts since the last open: the backoff's exponent. */
  let failures = 0;
  let retryTimer = null;
  let countdownTimer = null;
  /** This connection's id, learned from our own message's `from`. */
  let myId = null;
  /** Every id this tab had (a reconnection is a new connection): its messages stay "you". */
  const myIds = new Set();
  /** Ids of our acked messages, to recognise them when they come back. */
  const acked = new Set();
  /** Delivered message ids, in arrival order: delivery is at least once, we show each once. */
  const seen = new Map();
  /** The room's sequence as this tab has it: kept across reconnections to the same room. */
  let sequence = null;
  let sequenceRoom = null;
  let pingTimer = null;

  // ---- small helpers -----------------------------------------------------------------------

  /** An element with a class and text; text is always set with textContent. */
  function node(tag, className, text) {
    const element = document.createElement(tag);
    if (className) element.className = className;
    if (text !== undefined) element.textContent = text;
    return element;
  }

  function clock(date) {
    const pad = (n, width) => String(n).padStart(width, "0");
    return `${pad(date.getHours(), 2)}:${pad(date.getMinutes(), 2)}:${pad(date.getSeconds(), 2)}.${pad(date.getMilliseconds(), 3)}`;
  }

  function trim(list, max) {
    while (list.children.length > max) list.firstElementChild.remove();
  }

  /** Keeps a list scrolled to its end if it was there before an append. */
  function append(list, item, max) {
    const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.append(item);
    trim(list, max);
    if (atEnd) list.scrollTop = list.scrollHeight;
  }

  function log(kind, text) {
    const item = node("li", kind, `${clock(new Date())} ${text}`);
    append(ui.log, item, MAX_LOG);
  }

  function setState(state, detail) {
    ui.state.dataset.state = state;
    ui.state.textContent = state;
    ui.detail.textContent = detail || "";
  }

  function endpoint(room, token) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let url = `${scheme}//${location.host}/${stage}?room=${encodeURIComponent(room)}`;
    if (token) url += `&token=${encodeURIComponent(token)}`;
    return url;
  }

  function showSendError(code, text) {
    ui.sendError.querySelector(".code").textContent = code;
    ui.sendError.querySelector(".text").textContent = text;
    ui.sendError.dataset.code = code;
    ui.sendError.hidden = false;
  }

  function clearSendError() {
    ui.sendError.hidden = true;
    delete ui.sendError.dataset.code;
  }

  // ---- connection ----------------------------------------------------------------------------

  function clearRetry() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    retryTimer = countdownTimer = null;
    ui.reconnectNow.hidden = true;
  }

  function connect() {
    const room = ui.room.value.trim();
    if (!ROOM_PATTERN.test(room)) {
      // The connection in use, if any, stays; a retry waits for a valid name.
      const why = "invalid room: use 1 to 64 of A-Z a-z 0-9 _ . : -";
      ui.room.setCustomValidity(why);
      ui.room.reportValidity();
      log("error", why);
      if (!socket) {
        clearRetry();
        setState("idle", why);
      }
      return;
    }
    clearRetry();
    const token = ui.token.value.trim();
    localStorage.setItem(ROOM_KEY, room);
    const page = new URL(location.href);
    page.searchParams.set("room", room);
    history.replaceState(null, "", page);

    if (socket) {
      const old = socket;
      socket = null;
      old.close(1000, "switching room");
    }
    wanted = true;
    opened = false;
    setMe(null);
    ui.endpoint.textContent = endpoint(room, "") + (token ? "&token=…" : "");
    setState("connecting", `to room ${room}`);

    let ws;
    try {
      ws = new WebSocket(endpoint(room, token));
    } catch (error) {
      setState("closed", `cannot connect: ${error.message}`);
      wanted = false;
      return;
    }
    socket = ws;
    if (sequenceRoom !== room) {
      sequence = newSequence();
      sequenceRoom = room;
      ui.historyBanner.hidden = true;
    }
    ws.onopen = () => {
      if (socket !== ws) return;
      opened = true;
      failures = 0;
      ui.tokenHint.hidden = true;
      ui.token.classList.remove("needed");
      setState("open", `in room ${room}`);
      log("state", `open: room ${room}`);
      sequence.resume();
      clearInterval(pingTimer);
      pingTimer = setInterval(() => sendFrame(PING), PING_EVERY_MS);
    };
    ws.onmessage = (event) => {
      if (socket !== ws) return;
      receive(event.data);
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = null;
      clearInterval(pingTimer);
      closed(event, room, token);
    };
  }

  /** A sequence that shows each message once, in offset order, and asks for what is missing. */
  function newSequence() {
    return new RoomSequence({
      deliver: showMessage,
      recover: (request) => {
        sendFrame(request);
        log("state", "recover " + ("last" in request ? `the last ${request.last}` : `after offset ${request.offset}`));
      },
      incomplete: (recovered) => {
        ui.historyBanner.hidden = false;
        log("error", recovered ? "history no longer reaches back: some messages are lost" : "the room's sequence started over");
      },
    });
  }

  function sendFrame(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  }

  function closeReason(event) {
    const said = event.reason ? ` ${event.reason}` : "";
    switch (event.code) {
      case 1000:
        return `closed (1000${said})`;
      case 1001:
        return `closed by the server (1001${said}: idle timeout, maximum duration or shutdown)`;
      case 1006:
        return "connection lost (1006)";
      case 1009:
        return `closed by the server (1009${said}: a frame or message over its size limit)`;
      default:
        return `closed (${event.code}${said})`;
    }
  }

  function closed(event, room, token) {
    if (opened) {
      const why = closeReason(event);
      log("state", why);
      setState("closed", why);
    } else {
      // A browser does not tell why a handshake failed; a refusal (400, 401, 403) and an
      // unreachable server look the same. A server that needs a token refuses with 401 or 403.
      const hint = token
        ? "The server refused the connection or could not be reached. If it checks tokens, the token may be invalid or expired: paste a fresh one and Join."
        : "The server refused the connection or could not be reached. If it asks for a token, paste one in the Token field and Join.";
      ui.tokenHint.textContent = hint;
      ui.tokenHint.hidden = false;
      ui.token.classList.toggle("needed", !token);
      log("error", `connection to room ${room} failed before it opened`);
      setState("refused", "the connection did not open");
    }
    if (wanted) scheduleRetry();
  }

  function scheduleRetry() {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(failures, 10));
    const delay = Math.round(base * (1 + Math.random() * 0.25));
    failures += 1;
    const at = Date.now() + delay;
    const detail = ui.detail.textContent;
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((at - Date.now()) / 1000));
      ui.detail.textContent = `${detail}; retry in ${seconds} s`;
    };
    tick();
    countdownTimer = setInterval(tick, 250);
    retryTimer = setTimeout(connect, delay);
    ui.reconnectNow.hidden = false;
  }

  function leave() {
    wanted = false;
    clearRetry();
    if (socket) {
      const old = socket;
      socket = null;
      old.close(1000, "left");
    }
    setState("closed", "you left the room");
    log("state", "left");
  }

  // ---- frames --------------------------------------------------------------------------------

  function receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      frame = undefined;
    }
    const typed = frame !== null && typeof frame === "object" && !Array.isArray(frame) && typeof frame.type === "string";
    if (!typed) {
      // DELIVERY_MODE=raw: members receive the data itself.
      showMessage({ data: text, raw: true });
      return;
    }
    switch (frame.type) {
      case "ack":
        onAck(frame);
        break;
      case "message":
        sequence.message(frame);
        break;
      case "recovered":
        sequence.recovered(frame);
        onRecovered(frame);
        break;
      case "pong":
        break;
      case "error":
        onError(frame);
        break;
      default:
        log("unknown", `unknown frame type ${frame.type}: ${text.slice(0, 200)}`);
    }
  }

  function onAck(frame) {
    const id = String(frame.id);
    clearSendError();
    acked.add(id);
    if (acked.size > MAX_SEEN_IDS) acked.delete(acked.values().next().value);
    log("ack", `ack ${id}`);
    // The delivery may have come first.
    const from = seen.get(id);
    if (from) setMe(from);
  }

  function onRecovered(frame) {
    const count = typeof frame.count === "number" ? frame.count : 0;
    ui.detail.dataset.recovered = String(count);
    log("recovered", `recovered ${count} message${count === 1 ? "" : "s"}${frame.complete ? "" : " (incomplete)"}`);
  }

  function onError(frame) {
    const code = typeof frame.code === "string" ? frame.code : "error";
    const message = typeof frame.message === "string" ? frame.message : JSON.stringify(frame);
    showSendError(code, message);
    log("error", `error ${code}: ${message}`);
  }

  function showMessage(frame) {
    const id = typeof frame.id === "string" ? frame.id : null;
    const from = typeof frame.from === "string" ? frame.from : null;
    if (id !== null) {
      if (seen.has(id)) {
        log("duplicate", `dropped a duplicate of ${id}`);
        return;
      }
      seen.set(id, from);
      if (seen.size > MAX_SEEN_IDS) seen.delete(seen.keys().next().value);
      if (from && acked.has(id)) setMe(from);
    }
    const received = new Date();
    const item = node("li", frame.raw ? "message raw" : "message");
    if (id !== null) item.dataset.id = id;
    if (from !== null) item.dataset.from = from;

    const meta = node("div", "meta");
    meta.append(node("time", "at", clock(received)));
    const sender = node("span", "sender");
    sender.append(node("span", "from", from ?? (frame.raw ? "(raw delivery)" : "(no sender)")));
    meta.append(sender);
    if (typeof frame.room === "string") meta.append(node("span", "room", `#${frame.room}`));
    if (typeof frame.sentAt === "number") {
      const latency = received.getTime() - frame.sentAt;
      const shown = node("span", "latency", `${latency} ms`);
      shown.dataset.ms = String(latency);
      shown.title = "now − sentAt (includes any clock difference with the server)";
      meta.append(shown);
    }
    item.append(meta);

    const data = frame.raw || typeof frame.data === "string" ? frame.data : JSON.stringify(frame.data);
    item.append(node("div", "data", data));
    markMine(item);
    append(ui.messages, item, MAX_MESSAGES);
  }

  function markMine(item) {
    const mine = item.dataset.from !== undefined && myIds.has(item.dataset.from);
    item.classList.toggle("mine", mine);
    const sender = item.querySelector(".sender");
    const badge = sender && sender.querySelector(".you");
    if (mine && !badge) sender.append(node("span", "you", "(you)"));
    if (!mine && badge) badge.remove();
  }

  function setMe(id) {
    if (id === myId) return;
    myId = id;
    if (id !== null) myIds.add(id);
    ui.me.dataset.known = String(id !== null);
    ui.me.textContent = id ?? "known once your first message comes back";
    for (const item of ui.messages.children) markMine(item);
  }

  // ---- sending -------------------------------------------------------------------------------

  function send() {
    const text = ui.text.value;
    if (text.trim() === "") return;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      showSendError("not_open", "not connected: Join a room first, or wait for the reconnection");
      return;
    }
    let data = text;
    if (ui.asJson.checked) {
      try {
        data = JSON.parse(text);
      } catch (error) {
        showSendError("invalid_json", `not JSON: ${error.message}`);
        return;
      }
      if (data === null) {
        showSendError("missing_data", "null cannot be sent");
        return;
      }
    }
    socket.send(JSON.stringify({ action: "sendmessage", data }));
    ui.text.value = "";
  }

  // ---- wiring --------------------------------------------------------------------------------

  ui.joinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    connect();
  });
  ui.leave.addEventListener("click", leave);
  ui.room.addEventListener("input", () => ui.room.setCustomValidity(""));
  ui.reconnectNow.addEventListener("click", connect);
  ui.token.addEventListener("input", () => {
    const token = ui.token.value.trim();
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  });
  ui.sendForm.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  ui.text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });

  const fromUrl = new URLSearchParams(location.search).get("room");
  ui.room.value = fromUrl || localStorage.getItem(ROOM_KEY) || "lobby";
  ui.token.value = sessionStorage.getItem(TOKEN_KEY) || "";
  connect();
})();
