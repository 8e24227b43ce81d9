// Audit configs in the search: which config a request works on, its schema (POST
// /pangea/v1/schema, cached per config) and what the search offers for it (filter fields with
// their types, sortable fields, top-values fields). The default config keeps the built-in
// standard view; a custom config's view comes from its AuditSchema.

import { FACET_FIELDS } from './facets.js';

export const FIELD_TYPES = ['string', 'text', 'integer', 'boolean', 'datetime', 'string-unindexed'];

/** The fields of an AuditSchema, normalised: { id, label, type, size, required, description, visible, searchable }. */
export function schemaFields(schema) {
  const fields = Array.isArray(schema?.fields) ? schema.fields : [];
  return fields.filter((f) => f && typeof f.id === 'string').map((f) => ({
    id: f.id,
    label: typeof f.name === 'string' && f.name ? f.name : f.id,
    type: FIELD_TYPES.includes(f.type) ? f.type : 'string',
    size: Number.isInteger(f.size) ? f.size : null,
    required: f.required === true,
    description: typeof f.description === 'string' ? f.description : '',
    visible: f.ui_default_visible === true,
    searchable: f.type !== 'string-unindexed',
  }));
}

// The standard fields a custom schema may reuse with their standard type (README "Custom
// fields"): only those are counted by the top values (GET /api/v1/aggregate).
const FACET_TYPES = { actor: 'string', action: 'string', status: 'string', target: 'string', tenant_id: 'string' };

/** What the search offers for a custom config's schema. */
export function viewFromSchema(schema) {
  const fields = schemaFields(schema);
  const searchable = fields.filter((f) => f.searchable);
  return {
    fields,
    filterFields: searchable.map(({ id, label, type, description }) => ({ id, label, type, description })),
    sortable: new Set(['received_at', ...searchable.map((f) => f.id)]),
    facetFields: FACET_FIELDS.filter((ff) => fields.some((f) => f.id === ff.id && f.type === FACET_TYPES[ff.id])),
  };
}

/**
 * The config a UI request works on: the one the URL names if the key may use it, else the
 * default config if the key may use it, else the key's first. null when the server lists none.
 */
export function pickConfig(configs, requested) {
  if (!Array.isArray(configs) || !configs.length) return null;
  return configs.find((c) => c.id === requested) ?? configs.find((c) => c.default) ?? configs[0];
}

const schemaCache = new Map(); // config id → Promise<schema>

/** The schema of a config (fetched once per config and page load). */
export function loadSchema(configId, fetcher) {
  if (!schemaCache.has(configId)) {
    const p = fetcher(configId).catch((e) => { schemaCache.delete(configId); throw e; });
    schemaCache.set(configId, p);
  }
  return schemaCache.get(configId);
}

export function forgetSchemas() {
  schemaCache.clear();
}
