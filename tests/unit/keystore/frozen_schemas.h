// Keystore schemas exactly as released kmsd versions wrote them, frozen here
// on purpose: migration tests must not follow keystore/sqlite/schema.cc.
// Test-only.
#pragma once

namespace kmsd::frozen_schema {

// Schema version 1 (kmsd 0.1): migration 1 as released.
inline constexpr char kVersion1[] = R"sql(
CREATE TABLE schema_migrations (
  version    INTEGER PRIMARY KEY,
  applied_at INTEGER NOT NULL
);
CREATE TABLE tenants (
  name       TEXT NOT NULL PRIMARY KEY,
  root_label TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE keys (
  id          BLOB NOT NULL PRIMARY KEY CHECK (typeof(id) = 'blob' AND length(id) = 16),
  tenant      TEXT NOT NULL REFERENCES tenants (name),
  name        TEXT NOT NULL,
  description TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  enabled     INTEGER NOT NULL CHECK (enabled IN (0, 1)),
  UNIQUE (tenant, name)
);
CREATE TABLE key_versions (
  key_id     BLOB NOT NULL REFERENCES keys (id),
  version    INTEGER NOT NULL CHECK (version BETWEEN 1 AND 4294967295),
  wrapped    BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (key_id, version)
);
CREATE TABLE aliases (
  tenant     TEXT NOT NULL REFERENCES tenants (name),
  name       TEXT NOT NULL,
  key_id     BLOB NOT NULL REFERENCES keys (id),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, name)
);
INSERT INTO schema_migrations (version, applied_at) VALUES (1, 1700000000);
)sql";

// What migrations 2 and 3 added, as released; kVersion1 then this is a
// schema-3 keystore.
inline constexpr char kVersions2And3[] = R"sql(ALTER TABLE keys ADD COLUMN deletion_due_at INTEGER
  CHECK (deletion_due_at IS NULL OR (typeof(deletion_due_at) = 'integer' AND enabled = 0));
ALTER TABLE tenants ADD COLUMN deletion_due_at INTEGER
  CHECK (deletion_due_at IS NULL OR typeof(deletion_due_at) = 'integer');
INSERT INTO schema_migrations (version, applied_at) VALUES (2, 1700000001);
ALTER TABLE keys ADD COLUMN kek_label TEXT NOT NULL DEFAULT '';
ALTER TABLE keys ADD COLUMN rotation_period_seconds INTEGER
  CHECK (rotation_period_seconds IS NULL
         OR (typeof(rotation_period_seconds) = 'integer' AND rotation_period_seconds > 0));
ALTER TABLE keys ADD COLUMN min_decryption_version INTEGER NOT NULL DEFAULT 1
  CHECK (typeof(min_decryption_version) = 'integer' AND min_decryption_version >= 1);
ALTER TABLE key_versions ADD COLUMN reserved_encryptions INTEGER NOT NULL DEFAULT 0
  CHECK (typeof(reserved_encryptions) = 'integer' AND reserved_encryptions >= 0);
CREATE TABLE token_objects_to_destroy (
  label     TEXT NOT NULL PRIMARY KEY,
  queued_at INTEGER NOT NULL
);
UPDATE key_versions SET reserved_encryptions = 4294967296;
INSERT INTO schema_migrations (version, applied_at) VALUES (3, 1700000002);
)sql";

}  // namespace kmsd::frozen_schema
