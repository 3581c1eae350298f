// Live updates: GET /api/v1/events read with fetch() streaming (the token goes in a header;
// EventSource cannot send one), parsed as server-sent events. While the stream is not
// available (an older cloud, a proxy that buffers, a network blip) the page polls instead, so
// it is never silently stale; the mode is shown in the header.

import { authHeaders, session } from "./api.js";

const RETRY_MS = 3000;

// Parse one SSE block ("field: value" lines) into {id, event, data} or null for comments.
export function parseBlock(block) {
  let event = "message";
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
  }
  if (data.length === 0) return null;
  let parsed;
  try {
    parsed = JSON.parse(data.join("\n"));
  } catch {
    parsed = data.join("\n");
  }
  return { id, event, data: parsed };
}

// Calls onEvent({id, event, data}) for each event and onMode("live" | "polling") on changes.
export class LiveFeed {
  constructor(onEvent, onMode) {
    this.onEvent = onEvent;
    this.onMode = onMode;
    this.mode = null;
    this.lastId = null;
    this.controller = null;
    this.stopped = true;
    this.unsupported = false;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop();
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
  }

  setMode(mode) {
    if (mode !== this.mode) {
      this.mode = mode;
      this.onMode(mode);
    }
  }

  async loop() {
    while (!this.stopped && session.token) {
      try {
        await this.follow();
      } catch (error) {
        if (error.name === "AbortError") return;
      }
      this.setMode("polling");
      if (this.stopped) return;
      // A cloud without the stream is asked again now and then (it may be upgraded).
      await new Promise((resolve) => setTimeout(resolve, this.unsupported ? 60_000 : RETRY_MS));
    }
  }

  async follow() {
    this.controller = new AbortController();
    const headers = { Accept: "text/event-stream", ...authHeaders() };
    if (this.lastId) headers["Last-Event-ID"] = this.lastId;
    const response = await fetch("/api/v1/events", { headers, signal: this.controller.signal });
    this.unsupported = response.status === 404 || response.status === 405;
    if (!response.ok || !response.body) return;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (block.includes(": subscribed")) this.setMode("live");
        const parsed = parseBlock(block);
        if (parsed === null) continue;
        if (parsed.id) this.lastId = parsed.id;
        this.onEvent(parsed);
      }
    }
  }
}
