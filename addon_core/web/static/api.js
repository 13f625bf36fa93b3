// The one way the pages reach the server: the same /api/ as any client, with the token.

import { currentToken, refreshToken } from "./session.js";

export class ApiError extends Error {
  constructor(status, detail, errors) {
    super(detail);
    this.status = status;
    this.errors = errors || [];
  }
}

async function send(path, options) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  headers.Authorization = `Bearer ${currentToken()}`;
  if (options.json !== undefined) headers["Content-Type"] = "application/json";
  return fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.json !== undefined ? JSON.stringify(options.json) : undefined,
    signal: options.signal,
    credentials: "omit",
    cache: "no-store",
  });
}

/** Call /api/ and return the decoded JSON; a 401 renews the token once and retries. */
export async function api(path, options = {}) {
  let response = await send(path, options);
  if (response.status === 401) {
    await refreshToken();
    response = await send(path, options);
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { detail: text };
  }
  if (!response.ok) {
    const detail = (body && body.detail) || `the server answered ${response.status}`;
    throw new ApiError(response.status, detail, body && body.extra && body.extra.errors);
  }
  return body;
}

/** Open an authenticated Server-Sent Events stream; `onMessage(event, data, id)` per message. */
export async function stream(path, { onMessage, signal, lastEventId }) {
  const headers = { Accept: "text/event-stream" };
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  let response = await send(path, { headers, signal });
  if (response.status === 401) {
    await refreshToken();
    response = await send(path, { headers, signal });
  }
  if (!response.ok) throw new ApiError(response.status, `the live feed answered ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const message = { event: "message", data: [], id: null };
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") message.event = text;
        else if (field === "data") message.data.push(text);
        else if (field === "id") message.id = text;
      }
      if (message.data.length) onMessage(message.event, message.data.join("\n"), message.id);
    }
  }
}
