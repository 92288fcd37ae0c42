//! Diesel schema of the application's tables: exactly the tables the
//! migrations create, nothing else (the key store's tables belong to the
//! library, see [`fieldseal::KeyStore`]).
//!
//! Kept by hand and backend-neutral: the same definitions compile for
//! MySQL and SQLite. `diesel print-schema` prints each backend's own view
//! to compare with (see the README, "Diesel CLI"), in the same order as
//! here. SQLite's differs only in `id -> Nullable<BigInt>` (an `INTEGER
//! PRIMARY KEY` is never NULL); MySQL's uses its own names (`Bigint`,
//! `Varbinary`, `Varchar`) and `Datetime`, which SQLite does not support.
#![allow(missing_docs)]

diesel::table! {
    fieldseal_imports (fingerprint) {
        fingerprint -> Binary,
        file_name -> Text,
        records_done -> BigInt,
        last_line -> BigInt,
        inserted -> BigInt,
        rejected -> BigInt,
        finished -> Bool,
        started_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    fieldseal_locks (name) {
        name -> Text,
        holder -> Binary,
        host -> Text,
        pid -> BigInt,
        acquired_at -> BigInt,
        heartbeat_at -> BigInt,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        name -> Binary,
        name_bidx -> Binary,
        email -> Nullable<Binary>,
        email_bidx -> Nullable<Binary>,
        age -> Integer,
        created_at -> Timestamp,
        key_id -> BigInt,
        bidx_version -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(fieldseal_imports, fieldseal_locks, users,);

diesel::table! {
    fieldseal_audit (id) {
        id -> BigInt,
        at_ms -> BigInt,
        os_user -> Text,
        operation -> Text,
        record_id -> Nullable<BigInt>,
        row_count -> Nullable<BigInt>,
        outcome -> Text,
        detail -> Text,
        mac -> Binary,
    }
}

diesel::table! {
    fieldseal_audit_head (id) {
        id -> Integer,
        last_id -> BigInt,
        last_mac -> Binary,
        mac -> Binary,
    }
}

diesel::table! {
    fieldseal_settings (name) {
        name -> Text,
        value -> Text,
    }
}
