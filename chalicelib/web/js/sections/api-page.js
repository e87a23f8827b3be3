// The HTTP API, readable (#/api): every route of /openapi.json with its method, path,
// summary, key requirement, parameters, request body and responses, schemas written
// out as nested field lists (js/schema.js). Needs no key: the document is public.

import * as api from '../api.js';
import { append, h } from '../dom.js';
import { operations, tree } from '../schema.js';

function schemaList(node) {
  if (!node.children.length) return null;
  return h('ul', { class: 'schema' }, node.children.map((child) => h('li', {},
    h('code', {}, child.name), child.required ? h('span', { class: 'required' }, ' required') : null,
    `: ${child.text}`, schemaList(child))));
}

/** A schema: its description in a line, then its fields (`expand` false: the line only). */
function schemaView(schema, schemas, expand = true) {
  const node = tree(schema, schemas, { depth: expand ? 6 : 0 });
  return h('div', { class: 'schema-view' },
    h('p', { class: 'schema-type' }, expand ? node.text : `${node.text} (see Schemas below)`), schemaList(node));
}

function contentView(content, schemas, expand = true) {
  return Object.entries(content || {}).map(([type, media]) => h('div', {},
    type === 'application/json' ? null : h('p', { class: 'muted' }, `Content type ${type}`),
    media.schema && Object.keys(media.schema).length ? schemaView(media.schema, schemas, expand) : null));
}

function parametersView(parameters, schemas) {
  if (!parameters?.length) return null;
  return h('div', {}, h('h4', {}, 'Parameters'), h('div', { class: 'scroll' }, h('table', { class: 'params' },
    h('thead', {}, h('tr', {}, ['name', 'in', 'required', 'type'].map((name) => h('th', { scope: 'col' }, name)))),
    h('tbody', {}, parameters.map((p) => h('tr', {},
      h('th', { scope: 'row' }, h('code', {}, p.name)), h('td', {}, p.in), h('td', {}, p.required ? 'yes' : 'no'),
      h('td', {}, tree(p.schema || {}, schemas).text, p.description ? ` — ${p.description}` : '')))))));
}

function responsesView(responses, schemas) {
  return h('div', {}, h('h4', {}, 'Responses'), h('dl', { class: 'responses' }, Object.entries(responses || {}).map(([status, answer]) => [
    h('dt', {}, h('span', { class: `http http-${String(status)[0]}` }, status)),
    // Error bodies all share one schema (listed under Schemas): named, not repeated.
    h('dd', {}, answer.description || '', contentView(answer.content, schemas, /^[123]/.test(status))),
  ])));
}

function operationView({ method, path, op }, doc, schemas) {
  const secured = (op.security ?? doc.security ?? []).length > 0;
  const id = `op-${op.operationId || `${method}-${path}`.replace(/[^a-zA-Z0-9]+/g, '-')}`;
  return h('article', { class: 'card op', id, dataset: { method, path }, 'aria-labelledby': `${id}-h` },
    h('h3', { id: `${id}-h` }, h('span', { class: `method method-${method.toLowerCase()}` }, method), ' ', h('code', { class: 'path' }, path)),
    h('p', {}, op.summary || '', op.description ? ` ${op.description}` : ''),
    h('p', { class: 'muted' }, secured ? 'Needs an API key: Authorization: Bearer <key>.' : 'No key needed.'),
    parametersView(op.parameters, schemas),
    op.requestBody ? h('div', {}, h('h4', {}, `Request body${op.requestBody.required ? '' : ' (optional)'}`), contentView(op.requestBody.content, schemas)) : null,
    responsesView(op.responses, schemas));
}

export const apiPage = {
  title: 'API',
  needsKey: false,
  async render(main, params, { signal }) {
    main.append(h('h1', {}, 'HTTP API'));
    let doc;
    try {
      doc = await api.get('openapi.json');
    } catch (e) {
      if (!signal.aborted) main.append(h('p', { class: 'error', role: 'alert' }, api.message(e)));
      return;
    }
    if (signal.aborted) return;
    const schemas = doc.components?.schemas || {};
    const ops = operations(doc);
    const filter = h('input', { type: 'search', id: 'api-filter', autocomplete: 'off', spellcheck: 'false' });
    const shown = h('p', { class: 'muted', role: 'status', id: 'api-count' }, `${ops.length} routes.`);
    const groups = new Map();
    for (const item of ops) {
      if (!groups.has(item.tag)) groups.set(item.tag, []);
      groups.get(item.tag).push(item);
    }
    const sections = [...groups].map(([tag, items]) => h('section', { class: 'api-group', 'aria-labelledby': `tag-${tag}` },
      h('h2', { id: `tag-${tag}` }, tag), items.map((item) => operationView(item, doc, schemas))));
    filter.addEventListener('input', () => {
      const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
      let count = 0;
      for (const article of main.querySelectorAll('article.op')) {
        const text = `${article.dataset.method} ${article.dataset.path} ${article.textContent}`.toLowerCase();
        article.hidden = !words.every((w) => text.includes(w));
        if (!article.hidden) count += 1;
      }
      for (const section of main.querySelectorAll('section.api-group')) {
        section.hidden = !section.querySelector('article.op:not([hidden])');
      }
      shown.textContent = `${count} of ${ops.length} routes.`;
    });
    append(main, [
      h('p', {}, `${doc.info?.title || 'soundcheck'} API, version ${doc.info?.version ?? '?'} (OpenAPI ${doc.openapi}). `,
        'Errors always come as {"error": {"code", "message"}}. The machine-readable document: ',
        h('a', { href: 'openapi.json' }, 'openapi.json'), '.'),
      h('form', { class: 'row api-search', role: 'search', onsubmit: (e) => e.preventDefault() },
        h('div', { class: 'field' }, h('label', { for: 'api-filter' }, 'Filter routes'), filter)),
      shown,
      sections,
      h('section', { 'aria-labelledby': 'schemas-h' }, h('h2', { id: 'schemas-h' }, 'Schemas'),
        Object.entries(schemas).map(([name, schema]) => h('article', { class: 'card', id: `schema-${name}` },
          h('h3', {}, name), schemaView({ $ref: `#/components/schemas/${name}` }, schemas)))),
    ]);
  },
};
