// Building the page from elements and text nodes only: nothing user-supplied is ever
// parsed as HTML (no innerHTML anywhere), so a file named `<img src=x onerror=...>`
// is shown as those characters.

/** h('p', {class: 'x', onclick: fn}, 'text', child, [more]) -> HTMLElement */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      el.className = value;
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (name in el && typeof value !== 'string') {
      el[name] = value; // properties: checked, disabled, value...
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/**
 * A table from a caption, header labels and rows of cells (strings or nodes). Each
 * cell carries its column's label (data-label): `table.stack` shows rows as labelled
 * cards on narrow screens (app.css).
 */
export function table(caption, headers, rows, attrs = {}) {
  return h('table', attrs,
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, headers.map((label) => h('th', { scope: 'col' }, label)))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((cell, i) =>
      h(i === 0 ? 'th' : 'td', { scope: i === 0 ? 'row' : null, 'data-label': typeof headers[i] === 'string' ? headers[i] : null }, cell))))));
}

let toastTimer = null;
/** A short message in the live region (read out by screen readers). */
export function toast(text, kind = 'info') {
  const el = document.getElementById('toast');
  if (!el) return;
  el.textContent = text;
  el.className = `toast ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.textContent = ''; el.className = 'toast'; }, 6000);
}

/** Save text as a file in the browser (JSON and CSV downloads). */
export function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/**
 * Ask before a destructive action, in a modal <dialog> (focus stays inside, Escape
 * cancels). Resolves true only when the confirm button was pressed.
 */
export function confirmDialog({ title, text, confirm = 'Confirm', dismiss = 'Go back' }) {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title', 'aria-describedby': 'confirm-text' },
      h('h2', { id: 'confirm-title' }, title),
      h('p', { id: 'confirm-text' }, text),
      h('div', { class: 'toolbar' },
        h('button', { type: 'button', autofocus: true, onclick: () => dialog.close('cancel') }, dismiss),
        h('button', { type: 'button', class: 'primary danger', onclick: () => dialog.close('confirm') }, confirm)));
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'confirm');
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
