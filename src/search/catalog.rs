//! The fields a Pangea query may name, for one audit config: each field's kind (what the
//! operators mean) and where its value is stored (what SQL reads it). The default config's
//! catalog is [`Catalog::standard`]; custom configs build theirs from their schema
//! (`configs::AuditConfig::catalog`).

/// How a field compares in queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// `:` contains, `=` equals (case-sensitive).
    Text,
    /// The standard `timestamp` and `received_at`: text for `:` and `=`, the instant for
    /// `>`, `>=`, `<`, `<=`.
    Time,
    /// A custom datetime: `:` contains its text, `=` and the comparisons compare instants.
    Datetime,
    /// `:` and `=` equal, and the comparisons, on 64-bit integers.
    Integer,
    /// `:` and `=` equal, and the comparisons (`false` < `true`).
    Boolean,
    /// Stored, not searchable (`string-unindexed`).
    Unsearchable,
}

/// Where a field's value is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Interned `events.actor`.
    Actor,
    /// Interned `events.action`.
    Action,
    /// Interned `events.workspace`: the tenant, the key's workspace boundary.
    Tenant,
    Target,
    Source,
    Status,
    /// Standard `timestamp`: text in the envelope, instant in `events.event_time`.
    Timestamp,
    /// The envelope's `received_at` (instant in `events.received_at`).
    ReceivedAt,
    /// Only in the envelope (`text` fields, `string-unindexed`).
    Envelope,
    /// A row in `event_fields` with this field number (`config_fields.no`).
    Indexed(i64),
}

/// One searchable (or stored) field of a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryField {
    pub name: String,
    pub kind: FieldKind,
    pub storage: Storage,
}

/// The fields of one config, as queries see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// The config's number (`events.config`).
    pub config: i64,
    pub fields: Vec<QueryField>,
}

/// The standard fields in the order bare terms search them.
const STANDARD: [(&str, FieldKind, Storage); 10] = [
    ("actor", FieldKind::Text, Storage::Actor),
    ("action", FieldKind::Text, Storage::Action),
    ("message", FieldKind::Text, Storage::Envelope),
    ("new", FieldKind::Text, Storage::Envelope),
    ("old", FieldKind::Text, Storage::Envelope),
    ("source", FieldKind::Text, Storage::Source),
    ("status", FieldKind::Text, Storage::Status),
    ("target", FieldKind::Text, Storage::Target),
    ("tenant_id", FieldKind::Text, Storage::Tenant),
    ("timestamp", FieldKind::Time, Storage::Timestamp),
];

impl Catalog {
    /// The default config's fields (Pangea's standard schema) plus `received_at`.
    pub fn standard() -> Self {
        let mut fields: Vec<QueryField> = STANDARD
            .iter()
            .map(|(n, kind, storage)| QueryField { name: n.to_string(), kind: *kind, storage: *storage })
            .collect();
        fields.push(Self::received_at());
        Self { config: 0, fields }
    }

    /// `received_at`, which every config has.
    pub fn received_at() -> QueryField {
        QueryField { name: "received_at".into(), kind: FieldKind::Time, storage: Storage::ReceivedAt }
    }

    pub fn field(&self, name: &str) -> Option<&QueryField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Fields a bare term searches (every searchable one but `received_at`), in catalog order.
    pub fn bare_fields(&self) -> impl Iterator<Item = &QueryField> {
        self.fields.iter().filter(|f| f.kind != FieldKind::Unsearchable && f.storage != Storage::ReceivedAt)
    }

    /// Fields `order_by` accepts: every searchable field.
    pub fn orderable(&self, name: &str) -> bool {
        self.field(name).is_some_and(|f| f.kind != FieldKind::Unsearchable)
    }

    /// Whether this is exactly the standard catalog (the default config's SQL is used as is).
    pub fn is_standard(&self) -> bool {
        *self == Self::standard()
    }
}
