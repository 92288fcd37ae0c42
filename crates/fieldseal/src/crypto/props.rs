//! Property tests: open(seal(x)) == x, for any bytes and any context, and
//! a different context never opens.

use super::key::SecretKey;
use super::keyring::Keyring;
use proptest::prelude::*;
use std::sync::OnceLock;

fn ring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(|| Keyring::new([(5, SecretKey::generate())], []).unwrap())
}

proptest! {
    #[test]
    fn open_inverts_seal(plaintext in proptest::collection::vec(any::<u8>(), 0..4096), context in ".{0,64}") {
        let sealed = ring().seal_bytes(&context, &plaintext).unwrap();
        prop_assert_eq!(sealed.len(), plaintext.len() + super::envelope::OVERHEAD);
        prop_assert_eq!(ring().open_bytes(&context, &sealed).unwrap(), plaintext);
    }

    #[test]
    fn another_context_never_opens(plaintext in proptest::collection::vec(any::<u8>(), 0..256), a in ".{0,32}", b in ".{0,32}") {
        prop_assume!(a != b);
        let sealed = ring().seal_bytes(&a, &plaintext).unwrap();
        prop_assert!(ring().open_bytes(&b, &sealed).is_err());
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = ring().open_bytes("t.c", &bytes);
    }
}
