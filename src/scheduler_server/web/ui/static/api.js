// The one way the pages talk to the service: the public HTTP API, JSON in and out.
// A 401 asks for a token once (#token-dialog); it is kept in sessionStorage for this browser
// session and sent as "Authorization: Bearer", never in a URL.

import { clearError, showError } from "./dom.js";

const KEY = "scheduler-server.token";
const ROOT = document.body.dataset.root || "";
let asking = null;
let declined = false;

export class ApiError extends Error {
  constructor(status, message, field = null) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

function storedToken() {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

function storeToken(value) {
  try {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  } catch {
    // Storage may be off; the token then lasts as long as the page.
  }
}

function askToken() {
  if (declined) return Promise.resolve(false);
  if (asking) return asking;
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token");
  asking = new Promise((resolve) => {
    input.value = "";
    dialog.returnValue = "";
    dialog.addEventListener(
      "close",
      () => {
        const value = input.value.trim();
        input.value = "";
        asking = null;
        if (dialog.returnValue === "save" && value) {
          storeToken(value);
          resolve(true);
        } else {
          declined = true;
          resolve(false);
        }
      },
      { once: true },
    );
    dialog.showModal();
    input.focus();
  });
  return asking;
}

export function apiUrl(path, query = {}) {
  const url = new URL(ROOT + path, window.location.origin);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  return url;
}

async function send(url, method, body) {
  const headers = { Accept: "application/json" };
  const token = storedToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "The service cannot be reached (is it running?).");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  return { response, data, token };
}

// api("/api/v1/pipelines", {query: {offset: 0}}) -> the answer's JSON; throws ApiError.
export async function api(path, { method = "GET", body, query } = {}) {
  const url = apiUrl(path, query);
  for (;;) {
    const { response, data, token } = await send(url, method, body);
    if (response.status === 401) {
      if (token) {
        storeToken(null);
        declined = false;
        showError("Wrong token: the server refused it. Enter another one.");
      }
      if (await askToken()) {
        clearError();
        continue;
      }
      const why = token ? "Wrong token: the server refused it." : "This page needs an API token.";
      throw new ApiError(401, `${why} Reload the page to enter one.`);
    }
    if (!response.ok) {
      // The /api/v1 style names it "message"; the pipeline seed's routes answer {"request": "error", "content": ...}.
      const said = data && (typeof data.message === "string" ? data.message : data.content);
      const message = typeof said === "string" ? said : `HTTP ${response.status}`;
      throw new ApiError(response.status, message, data && data.field ? data.field : null);
    }
    return data;
  }
}

// Calls fn now and then every `ms` milliseconds after each call ends (never two at once);
// skipped while the tab is hidden, and ended once the user declined to give a token.
// Returns a function that stops it.
export function poll(fn, ms) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await fn();
      } catch {
        // fn reports its own errors
      }
    }
    if (!stopped && !declined) timer = setTimeout(tick, ms);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
