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
    }
}
