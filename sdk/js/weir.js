// weir.js — the Weir browser client: one WebSocket to a Weir gateway for
// subscriptions (with credits and consumer groups), produce and commit, with
// reconnect and backoff that resumes after the last delivered offset.
// A dependency-free ES module; the gateway serves it at /sdk/weir.js.
// Protocol: docs/websocket.md. Usage: sdk/js/README.md.

// Error codes worth retrying: the server could not do it now.
const RETRYABLE = new Set(["unavailable", "rate_limited"]);

/** An error answered by the server ({code, message}) or raised by the client. */
export class WeirError extends Error {
  constructor(code, message, frame) {
    super(message);
    this.name = "WeirError";
    this.code = code;
    this.frame = frame;
  }
}

/** Default WebSocket URL of the page's own gateway. */
export function defaultURL() {
  const loc = globalThis.location;
  if (!loc) throw new WeirError("bad_request", "no location: give the gateway's ws:// URL");
  return (loc.protocol === "https:" ? "wss://" : "ws://") + loc.host + "/v1/ws";
}

class Emitter {
  constructor() { this._handlers = new Map(); }
  /** Registers fn for event; returns a function that removes it. */
  on(event, fn) {
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    this._handlers.get(event).add(fn);
    return () => this._handlers.get(event)?.delete(fn);
  }
  _emit(event, ...args) {
    for (const fn of this._handlers.get(event) ?? []) {
      try { fn(...args); } catch (e) { setTimeout(() => { throw e; }); }
    }
  }
}

/**
 * A subscription. Records are handed to the callback in order, one frame
 * at a time; when the callback returns a Promise the next frame waits for it.
 * Events: "subscribed", "assigned" (group rebalance), "error".
 */
export class Subscription extends Emitter {
  constructor(client, spec, onRecords) {
    super();
    this.client = client;
    this.id = spec.id;
    this.topic = spec.topic;
    this.group = spec.group ?? null;
    this.member = null;
    this.generation = null;
    /** Partitions being delivered (a group's assignment, or those subscribed). */
    this.partitions = [];
    /** partition → next offset to deliver (last delivered + 1). */
    this.positions = new Map();
    this._spec = spec;
    this._onRecords = onRecords;
    this._window = spec.credit ?? 1000;
    this._autoCredit = spec.autoCredit !== false;
    this._consumed = 0;
    this._chain = Promise.resolve();
    this._closed = false;
    this._awaiting = false;
    this.ready = new Promise((resolve, reject) => { this._ready = { resolve, reject }; });
    this.ready.catch(() => {});
  }

  /** Grants n more records (needed only with autoCredit: false). */
  credit(n) {
    this.client._sendNow({ op: "credit", sub: this.id, records: n });
  }

  /**
   * Commits positions of a group subscription: one partition's offset
   * (the next offset to read), or with no arguments every delivered position.
   */
  commit(partition, offset) {
    if (!this.group) return Promise.reject(new WeirError("bad_request", "commit needs a group subscription"));
    const frame = { op: "commit", sub: this.id };
    if (partition !== undefined) {
      frame.partition = partition;
      frame.offset = offset ?? this.positions.get(partition);
    } else {
      frame.offsets = [...this.positions]
        .filter(([p]) => this.partitions.includes(p))
        .map(([partition, offset]) => ({ topic: this.topic, partition, offset }));
      if (frame.offsets.length === 0) return Promise.resolve(null);
    }
    return this.client._request(frame);
  }

  /** Ends the subscription (and leaves its group). */
  async unsubscribe() {
    this._closed = true;
    this.client._subs.delete(this.id);
    if (this.client.connected) {
      try { await this.client._request({ op: "unsubscribe", sub: this.id }); } catch (e) { /* gone already */ }
    }
  }

  _subscribeFrame() {
    const s = this._spec;
    const f = { op: "subscribe", id: this.id, topic: s.topic, credit: this._window };
    for (const k of ["partition", "from", "timestamp", "group", "encoding"]) if (s[k] !== undefined) f[k] = s[k];
    if (s.clientId !== undefined) f.client_id = s.clientId;
    if (s.sessionTimeoutMs !== undefined) f.session_timeout_ms = s.sessionTimeoutMs;
    if (!this.group && this.positions.size > 0) {
      // Resume after the last delivered record of each partition.
      f.positions = [...this.positions].map(([partition, offset]) => ({ partition, offset }));
    }
    this._consumed = 0;
    this._awaiting = true;
    return f;
  }

  _onFrame(f) {
    switch (f.op) {
      case "subscribed":
        this._awaiting = false;
        this.member = f.member ?? null;
        this.generation = f.generation ?? null;
        if (f.partitions) {
          this.partitions = f.partitions.map((p) => p.partition);
          for (const p of f.partitions) if (!this.positions.has(p.partition)) this.positions.set(p.partition, p.offset);
        }
        this._ready.resolve(this);
        this._emit("subscribed", f);
        break;
      case "assigned":
        this.member = f.member;
        this.generation = f.generation;
        this.partitions = f.partitions;
        for (const p of [...this.positions.keys()]) if (!f.partitions.includes(p)) this.positions.delete(p);
        for (const p of f.positions ?? []) this.positions.set(p.partition, p.offset);
        this._emit("assigned", { generation: f.generation, partitions: f.partitions, member: f.member });
        break;
      case "records":
        this._deliver(f.records, this.client._epoch);
        break;
    }
  }

  _deliver(records, epoch) {
    this._chain = this._chain.then(async () => {
      if (this._closed) return;
      // Drop what was delivered before a reconnect (the resume point).
      const fresh = records.filter((r) => r.offset >= (this.positions.get(r.partition) ?? -1));
      if (fresh.length > 0) {
        try {
          await this._onRecords(fresh, this);
        } catch (e) {
          this._emit("error", e);
        }
        for (const r of fresh) this.positions.set(r.partition, r.offset + 1);
      }
      // Credit goes back to the connection that sent the records only.
      if (this._autoCredit && this.client.connected && epoch === this.client._epoch) {
        this._consumed += records.length;
        if (this._consumed >= Math.max(1, Math.floor(this._window / 2))) {
          this.credit(this._consumed);
          this._consumed = 0;
        }
      }
    });
  }
}

/**
 * A connection to a Weir gateway.
 * Events: "open", "close" ({code, reason}), "reconnecting" ({attempt, delayMs}), "error".
 */
export class Client extends Emitter {
  /**
   * @param {string} [url] ws:// or wss:// URL of /v1/ws; default: this page's gateway.
   * @param {object} [options] reconnect (default true), minBackoffMs (250),
   *   maxBackoffMs (10000), requestTimeoutMs (30000), pingIntervalMs (15000;
   *   0 turns the client's keep-alive off), WebSocket (the constructor to use).
   */
  constructor(url, options = {}) {
    super();
    this.url = url ?? defaultURL();
    this.options = {
      reconnect: true, minBackoffMs: 250, maxBackoffMs: 10000, requestTimeoutMs: 30000, pingIntervalMs: 15000,
      ...options,
    };
    this._WebSocket = this.options.WebSocket ?? globalThis.WebSocket;
    this._subs = new Map();
    this._pending = new Map();
    this._nextId = 0;
    this._attempt = 0;
    this._epoch = 0;
    this._closedByUser = false;
    this._ws = null;
    this._opened = null;
    this.connected = false;
  }

  /** Opens the socket; resolves once it is open. Called by the other methods as needed. */
  connect() {
    if (this._opened) return this._opened;
    this._closedByUser = false;
    this._opened = new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new this._WebSocket(this.url);
      } catch (e) {
        this._opened = null;
        reject(e);
        return;
      }
      this._ws = ws;
      let open = false;
      ws.onopen = () => {
        open = true;
        this.connected = true;
        this._epoch++;
        this._attempt = 0;
        this._startPing();
        for (const sub of this._subs.values()) this._sendNow(sub._subscribeFrame());
        this._emit("open");
        resolve(this);
      };
      ws.onmessage = (ev) => this._onMessage(ev.data);
      ws.onerror = () => this._emit("error", new WeirError("unavailable", "WebSocket error"));
      ws.onclose = (ev) => {
        this.connected = false;
        this._ws = null;
        this._opened = null;
        this._stopPing();
        for (const [id, p] of this._pending) {
          clearTimeout(p.timer);
          p.reject(new WeirError("unavailable", "connection closed before the answer"));
          this._pending.delete(id);
        }
        this._emit("close", { code: ev.code, reason: ev.reason });
        if (!open) reject(new WeirError("unavailable", `cannot connect to ${this.url} (code ${ev.code})`));
        if (!this._closedByUser && this.options.reconnect) this._scheduleReconnect();
      };
    });
    return this._opened;
  }

  /** Closes the socket for good (no reconnect). */
  close() {
    this._closedByUser = true;
    clearTimeout(this._reconnectTimer);
    this._ws?.close(1000, "client closed");
  }

  /**
   * Subscribes to a topic. spec: {topic, partition?, from? ("earliest",
   * "latest" or an offset), timestamp?, group?, clientId?, sessionTimeoutMs?,
   * credit? (records in flight, default 1000), autoCredit? (default true),
   * encoding?, id?}. onRecords(records, subscription) gets arrays of
   * {topic, partition, offset, timestamp, key, value, headers}.
   * Returns the Subscription; await sub.ready for the server's answer.
   */
  subscribe(spec, onRecords) {
    if (!spec?.topic) throw new WeirError("bad_request", "subscribe needs a topic");
    const id = spec.id ?? `s${++this._nextId}`;
    if (this._subs.has(id)) throw new WeirError("bad_request", `subscription id ${id} is in use`);
    const sub = new Subscription(this, { ...spec, id }, onRecords ?? (() => {}));
    this._subs.set(id, sub);
    if (this.connected) this._sendNow(sub._subscribeFrame());
    else this.connect().catch(() => {});
    return sub;
  }

  /**
   * Produces records to a topic and resolves with {offsets, duplicate} once
   * they are committed. A record is {key?, value, headers?, partition?} or
   * just a value. opts: {encoding, producerId, sequence}.
   */
  async produce(topic, records, opts = {}) {
    const recs = records.map((r) => (r !== null && typeof r === "object" && "value" in r ? r : { value: r }));
    const f = { op: "produce", topic, records: recs };
    if (opts.encoding) f.encoding = opts.encoding;
    if (opts.producerId !== undefined) { f.producer_id = opts.producerId; f.sequence = opts.sequence ?? 0; }
    const res = await this._request(f);
    return { offsets: res.offsets, duplicate: res.duplicate === true };
  }

  /** Commits {topic, partition, offset} for a group without joining it. */
  commit(group, offsets) {
    return this._request({ op: "commit", group, offsets });
  }

  /** Round trip to the server in milliseconds. */
  async ping() {
    const t0 = performance.now();
    await this._request({ op: "ping" });
    return performance.now() - t0;
  }

  async _request(frame, timeoutMs = this.options.requestTimeoutMs) {
    await this.connect();
    const id = `r${++this._nextId}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new WeirError("unavailable", `no answer to ${frame.op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, timer });
      this._sendNow({ ...frame, id });
    });
  }

  _sendNow(frame) {
    if (this._ws && this.connected) this._ws.send(JSON.stringify(frame));
  }

  _onMessage(data) {
    let f;
    try { f = JSON.parse(data); } catch (e) { this._emit("error", e); return; }
    if (f.op === "records" || f.op === "assigned" || f.op === "subscribed") {
      this._subs.get(f.sub)?._onFrame(f);
      return;
    }
    if (f.op === "error") {
      const err = new WeirError(f.error?.code ?? "internal", f.error?.message ?? "error", f);
      const p = f.id && this._pending.get(f.id);
      if (p) {
        clearTimeout(p.timer);
        this._pending.delete(f.id);
        p.reject(err);
        return;
      }
      const sub = this._subs.get(f.sub ?? f.id);
      if (sub) {
        if (f.id === sub.id && sub._awaiting) {
          if (RETRYABLE.has(err.code)) {
            // A node that is starting up: subscribe again after a pause.
            const epoch = this._epoch;
            setTimeout(() => {
              if (this._subs.get(sub.id) === sub && this.connected && this._epoch === epoch) this._sendNow(sub._subscribeFrame());
            }, this.options.minBackoffMs);
          } else {
            // The subscribe itself failed: it is not going to be resumed.
            this._subs.delete(sub.id);
            sub._closed = true;
            sub._ready.reject(err);
          }
        }
        sub._emit("error", err);
        return;
      }
      this._emit("error", err);
      return;
    }
    const p = f.id && this._pending.get(f.id);
    if (p) {
      clearTimeout(p.timer);
      this._pending.delete(f.id);
      p.resolve(f);
    }
  }

  _scheduleReconnect() {
    const o = this.options;
    const base = Math.min(o.maxBackoffMs, o.minBackoffMs * 2 ** this._attempt);
    const delayMs = Math.round(base / 2 + Math.random() * base / 2);
    this._attempt++;
    this._emit("reconnecting", { attempt: this._attempt, delayMs });
    this._reconnectTimer = setTimeout(() => {
      if (!this._closedByUser) this.connect().catch(() => {});
    }, delayMs);
  }

  _startPing() {
    const every = this.options.pingIntervalMs;
    if (!every) return;
    this._pingTimer = setInterval(() => {
      const ws = this._ws;
      this._request({ op: "ping" }, Math.max(1000, every)).catch(() => {
        // No answer: the connection is dead even if the socket has not noticed.
        if (this._ws === ws) ws?.close(4000, "ping timeout");
      });
    }, every);
  }

  _stopPing() { clearInterval(this._pingTimer); }
}

/** Shorthand: new Client(url, options). */
export function connect(url, options) {
  const c = new Client(url, options);
  c.connect().catch(() => {});
  return c;
}
