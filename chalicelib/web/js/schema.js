// JSON Schema (as /openapi.json carries it) as a readable tree: one node per field with
// its type in words ("integer, 1 to 200", "one of: queued | processing"). Pure: no DOM,
// so tests/web/unit.mjs checks it with node.

const REF = /^#\/components\/schemas\/(.+)$/;

function refName(ref) {
  const found = REF.exec(ref || '');
  return found ? decodeURIComponent(found[1]) : ref;
}

function range(low, high, unit = '') {
  const u = unit ? ` ${unit}` : '';
  if (low !== undefined && high !== undefined) return `${low} to ${high}${u}`;
  if (low !== undefined) return `at least ${low}${u}`;
  if (high !== undefined) return `at most ${high}${u}`;
  return '';
}

function typeWords(type) {
  if (Array.isArray(type)) return type.join(' or ');
  return type || '';
}

/** A one-line description of a schema's own constraints (not its children). */
export function describe(schema) {
  if (!schema || typeof schema !== 'object' || Object.keys(schema).length === 0) return 'any';
  if (schema.$ref) return refName(schema.$ref);
  if ('const' in schema) return `exactly ${JSON.stringify(schema.const)}`;
  const parts = [];
  if (Array.isArray(schema.enum)) parts.push(`one of: ${schema.enum.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(' | ')}`);
  const type = typeWords(schema.type);
  if (type === 'array' || (Array.isArray(schema.type) && schema.type.includes('array'))) {
    const items = schema.items ? describe(schema.items) : 'any';
    parts.push(type === 'array' ? `array of ${items}` : `${type} (items: ${items})`);
  } else if (type) {
    parts.push(type);
  }
  if (schema.format) parts.push(schema.format);
  const numeric = range(schema.minimum ?? schema.exclusiveMinimum, schema.maximum ?? schema.exclusiveMaximum);
  if (numeric) parts.push(numeric);
  const length = range(schema.minLength, schema.maxLength, 'characters');
  if (length) parts.push(length);
  const count = range(schema.minItems, schema.maxItems, 'items');
  if (count) parts.push(count);
  if (schema.pattern) parts.push(`matching ${schema.pattern}`);
  if (schema.additionalProperties && typeof schema.additionalProperties === 'object') {
    parts.push(`map of ${describe(schema.additionalProperties)}`);
  }
  if (schema.additionalProperties === false) parts.push('no other fields');
  if ('default' in schema) parts.push(`default ${JSON.stringify(schema.default)}`);
  for (const key of ['oneOf', 'anyOf', 'allOf']) {
    if (Array.isArray(schema[key])) parts.push(key === 'allOf' ? 'all of:' : 'one of:');
  }
  if (schema.description) parts.push(`— ${schema.description}`);
  return parts.join(', ') || 'any';
}

/**
 * schema -> {text, children: [{name, required, text, children}]}: object properties,
 * array items that are objects, oneOf/anyOf/allOf branches, and `$ref`s resolved from
 * `schemas` (components.schemas) up to `depth` levels, never twice down one branch.
 */
export function tree(schema, schemas = {}, { depth = 6, seen = [] } = {}) {
  const node = { text: describe(schema), children: [] };
  if (!schema || typeof schema !== 'object' || depth <= 0) return node;
  let target = schema;
  if (schema.$ref) {
    const name = refName(schema.$ref);
    if (seen.includes(name) || !schemas[name]) return node;
    target = schemas[name];
    seen = [...seen, name];
    node.text = `${name}: ${describe(target)}`;
  }
  const next = { depth: depth - 1, seen };
  const required = new Set(target.required || []);
  for (const [name, child] of Object.entries(target.properties || {})) {
    node.children.push({ name, required: required.has(name), ...tree(child, schemas, next) });
  }
  const items = target.items;
  if (items && (items.$ref || items.properties || items.oneOf || items.anyOf)) {
    const inner = tree(items, schemas, next);
    if (inner.children.length) node.children.push({ name: 'each item', required: false, ...inner });
  }
  for (const key of ['oneOf', 'anyOf', 'allOf']) {
    (target[key] || []).forEach((branch, i) => {
      node.children.push({ name: `${key === 'allOf' ? 'part' : 'option'} ${i + 1}`, required: false, ...tree(branch, schemas, next) });
    });
  }
  return node;
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head'];

/** Every operation of an OpenAPI document: [{method, path, tag, op}] grouped order (tag, path). */
export function operations(doc) {
  const found = [];
  for (const [path, item] of Object.entries(doc?.paths || {})) {
    for (const method of METHODS) {
      if (item[method]) found.push({ method: method.toUpperCase(), path, tag: (item[method].tags || ['other'])[0], op: item[method] });
    }
  }
  const tags = (doc?.tags || []).map((t) => t.name);
  const order = (tag) => { const i = tags.indexOf(tag); return i < 0 ? tags.length : i; };
  return found.sort((a, b) => order(a.tag) - order(b.tag) || a.tag.localeCompare(b.tag)
    || a.path.localeCompare(b.path) || METHODS.indexOf(a.method.toLowerCase()) - METHODS.indexOf(b.method.toLowerCase()));
}
