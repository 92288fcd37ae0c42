//! Diesel schema of the application's tables (the key store's tables live
//! in [`crate::keystore`]).
#![allow(missing_docs)]

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
    /// Per-connection scratch table of a rotation batch on MySQL (a
    /// TEMPORARY table, created by the rotation itself).
    fieldseal_reseal (id) {
        id -> BigInt,
        old_name -> Binary,
        old_email -> Nullable<Binary>,
        name -> Binary,
        email -> Nullable<Binary>,
        key_id -> BigInt,
    }
}
