// The JSON API as the dashboard uses it: a bearer token kept in sessionStorage, errors as
// exceptions carrying the API's own message, uploads with progress.

const TOKEN_KEY = "printfleet.token";
const TOKEN_ID_KEY = "printfleet.token-id";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  // The id of this page's own login token, so logging out can revoke exactly that one.
  get tokenId() {
    return sessionStorage.getItem(TOKEN_ID_KEY);
  },
  set tokenId(value) {
    if (value) sessionStorage.setItem(TOKEN_ID_KEY, value);
    else sessionStorage.removeItem(TOKEN_ID_KEY);
  },
};

// Told when the server refuses the token (expired, revoked): the app shows the login page.
let onUnauthenticated = () => {};
export function whenUnauthenticated(callback) {
  onUnauthenticated = callback;
}

export function authHeaders() {
  const token = session.token;
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function errorOf(response) {
  let code = "http_" + response.status;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && typeof body.message === "string") {
      code = body.error || code;
      message = body.message;
    } else if (body && body.detail) {
      message = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    }
  } catch {
    // Not JSON (a proxy's page): the status line says enough.
  }
  return new ApiError(response.status, code, message);
}

export async function request(method, path, body, extraHeaders = {}) {
  const headers = { Accept: "application/json", ...authHeaders(), ...extraHeaders };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, "network", "The cloud cannot be reached: " + error.message);
  }
  if (response.status === 401 && session.token && !path.endsWith("/login")) {
    session.token = null;
    onUnauthenticated();
  }
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return null;
  return response.json();
}

export const api = {
  get: (path) => request("GET", path),
  post: (path, body, headers) => request("POST", path, body, headers),
  put: (path, body) => request("PUT", path, body),
  patch: (path, body) => request("PATCH", path, body),
  del: (path) => request("DELETE", path),

  async login(email, password) {
    const created = await request("POST", "/api/v1/login", {
      email,
      password,
      token_name: "dashboard",
    });
    session.token = created.token;
    session.tokenId = created.id;
    return created;
  },

  // XMLHttpRequest, because fetch() reports no upload progress.
  upload(file, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/v1/files");
      for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress(event.loaded / event.total);
      });
      xhr.addEventListener("load", () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          body = null;
        }
        if (xhr.status >= 200 && xhr.status < 300) {
          onProgress(1);
          resolve(body);
        } else {
          const message = body && body.message ? body.message : `${xhr.status} ${xhr.statusText}`;
          reject(new ApiError(xhr.status, body && body.error, message));
        }
      });
      xhr.addEventListener("error", () =>
        reject(new ApiError(0, "network", "The upload failed: the cloud cannot be reached")),
      );
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    });
  },
};
