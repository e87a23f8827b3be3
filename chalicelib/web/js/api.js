// The HTTP API: JSON requests with the key in the Authorization header, uploads
// with real progress, and a plain-language message for every error code.
// Paths are relative ('api/jobs'), so the app works under a stage path (/v1/).

import * as session from './session.js';

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

export async function request(method, path, { body, token } = {}) {
  const headers = { Accept: 'application/json' };
  const bearer = token || session.key();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'network error');
  }
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || `http_${response.status}`,
      error.message || response.statusText, response.headers.get('Retry-After'));
  }
  return data;
}

export const get = (path, options) => request('GET', path, options);
export const post = (path, body, options) => request('POST', path, { ...options, body });
export const del = (path, options) => request('DELETE', path, options);

const MESSAGES = {
  network: 'Cannot reach soundcheck. Check your connection and try again.',
  unauthorized: 'Your API key was not accepted. Sign in again with a valid key.',
  forbidden: 'Your API key may not do this.',
  too_large: 'The file is larger than the upload limit.',
  invalid_content_type: 'The browser reported a file type soundcheck does not accept.',
  invalid_file_name: 'The file name is too long (at most 255 characters).',
  invalid_size: 'The file is empty.',
  unsupported_format: 'This is not an audio format soundcheck can read (try WAV, FLAC, AIFF, MP3 or OGG).',
  corrupt_file: 'The file is damaged or truncated and could not be decoded.',
  empty_audio: 'The file holds no audio.',
  too_long: 'The track is longer than the duration limit.',
  too_many_channels: 'The file has more channels than soundcheck analyses.',
  unsupported_sample_rate: 'The sample rate is outside the range soundcheck accepts.',
  invalid_samples: 'The file contains invalid sample values (NaN or infinite).',
  file_not_found: 'The uploaded file was not found; upload it again.',
  not_found: 'Not found: it does not exist or belongs to another account.',
  unknown_genre: 'Unknown genre: pick one from the list.',
  reference_not_found: 'The reference job was not found among your jobs.',
  reference_not_ready: 'The reference job has not completed yet.',
  reference_unavailable: 'The reference could not be loaded.',
  not_retryable: 'Only a failed job can be retried.',
  not_completed: 'Only a completed report can be shared.',
  too_many_shares: 'This report has too many active links: revoke one first.',
  share_not_found: 'This share link is invalid, was revoked or has expired.',
  rate_limited: 'Too many requests right now.',
  too_many_waiting: 'You have too many tracks waiting already: let some finish first.',
  too_many_failed_sign_ins: 'Too many failed sign-ins from here.',
  unavailable: 'soundcheck is temporarily unavailable. Try again in a moment.',
  misconfigured: 'soundcheck is misconfigured; tell its operator.',
  internal_error: 'Something went wrong on the server. Try again; if it persists, tell the operator.',
  upload_failed: 'The upload did not complete. Try again.',
  upload_expired: 'The upload link expired before the upload finished. Try again.',
  expired: 'The upload link expired before the upload finished. Try again.',
  upload_used: 'That upload link was already used. Upload the file again.',
  invalid_signature: 'The upload was refused (its link did not match the file). Try again.',
  retry_limit: 'This job was retried too often; upload the file again as a new job.',
  busy: 'soundcheck is busy right now. Try again in a moment.',
  stalled: 'The analysis stopped responding and was given up after several attempts.',
};

/** A sentence for the user: the code's explanation, plus the server's detail when useful. */
export function message(error) {
  if (!(error instanceof ApiError)) return 'Something went wrong in the page. Reload and try again.';
  if (error.status === 429) {
    const wait = Number(error.retryAfter);
    const what = MESSAGES[error.code] || MESSAGES.rate_limited;
    return `${what} Try again ${wait > 0 ? `in ${Math.ceil(wait)} s` : 'shortly'}.`;
  }
  const known = MESSAGES[error.code];
  if (known) return known;
  if (error.status >= 500) return MESSAGES.unavailable;
  return error.message || `Request failed (${error.status}).`;
}

/** A job error {code, message} as a sentence. */
export function jobErrorMessage(error) {
  if (!error) return 'The analysis failed.';
  return MESSAGES[error.code] || error.message || `The analysis failed (${error.code}).`;
}

const TYPES = {
  wav: 'audio/wav', wave: 'audio/wav', flac: 'audio/flac', aif: 'audio/aiff', aiff: 'audio/aiff',
  mp3: 'audio/mpeg', ogg: 'audio/ogg', oga: 'audio/ogg', opus: 'audio/ogg', m4a: 'audio/mp4',
  aac: 'audio/aac', caf: 'audio/x-caf', w64: 'audio/x-w64',
};

const FORBIDDEN_HEADERS = new Set(['content-length', 'host', 'connection', 'expect']);

export function contentType(file) {
  const ext = (file.name.split('.').pop() || '').toLowerCase();
  return TYPES[ext] || file.type || 'application/octet-stream';
}

/**
 * Upload one file: ask for a presigned URL, PUT the bytes with XHR (real progress
 * events), resolve with the fileKey. `onProgress(fraction)`; `signal` aborts.
 */
export async function upload(file, onProgress, signal) {
  const type = contentType(file);
  const target = await post('api/audio/upload-url', {
    fileName: file.name, contentType: type, sizeBytes: file.size,
  });
  let url = target.uploadUrl;
  // The local store's upload route is this app's own: use this page's origin, so a
  // page opened as localhost can upload to a stack that calls itself 127.0.0.1.
  const local = new URL(url, location.href);
  if (local.origin !== location.origin && local.pathname.includes('/api/audio/local-upload/')) {
    url = new URL(`api/audio/local-upload/${local.pathname.split('/api/audio/local-upload/')[1]}${local.search}`, location.href).href;
  }
  await new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(target.method || 'PUT', url);
    for (const [name, value] of Object.entries(target.headers || {})) {
      // The browser sets Content-Length itself (from the file, the signed size) and
      // refuses a script that tries.
      if (!FORBIDDEN_HEADERS.has(name.toLowerCase())) xhr.setRequestHeader(name, value);
    }
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) { onProgress(1); resolve(); return; }
      let code = xhr.status === 403 ? 'upload_expired' : xhr.status === 413 ? 'too_large' : 'upload_failed';
      try { code = JSON.parse(xhr.responseText).error.code || code; } catch { /* S3 answers XML */ }
      reject(new ApiError(xhr.status, code, `upload failed (${xhr.status})`));
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, 'network', 'upload failed')));
    xhr.addEventListener('abort', () => reject(new ApiError(0, 'aborted', 'upload cancelled')));
    if (signal) signal.addEventListener('abort', () => xhr.abort());
    xhr.send(file);
  });
  return target.fileKey;
}
