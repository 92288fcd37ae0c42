//! Which keyring the transparent [`Encrypted`](crate::Encrypted) column
//! type uses: the innermost [`with_keyring`] scope of the current thread,
//! else the process-wide default from [`install_keyring`].
//!
//! Code that holds its keyring explicitly ([`Keyring::seal`] and
//! [`Keyring::open`] with [`Sealed`](crate::Sealed) columns) needs neither.
//!
//! A scope is per thread and nestable, so a service with a keyring per
//! tenant wraps each request's queries in that tenant's scope, and two
//! requests on two threads can never seal with each other's keys. Work
//! moved to another thread (a thread pool, an async task) does not carry
//! the scope along: open a scope there too, or pass the keyring.

use crate::crypto::keyring::Keyring;
use crate::error::{Error, Result};
use std::cell::RefCell;
use std::sync::{Arc, PoisonError, RwLock};

static INSTALLED: RwLock<Option<Arc<Keyring>>> = RwLock::new(None);

thread_local! {
    static SCOPES: RefCell<Vec<Arc<Keyring>>> = const { RefCell::new(Vec::new()) };
}

/// Installs the process-wide default keyring, replacing (and returning)
/// any previous one. [`with_keyring`] scopes take precedence over it.
pub fn install_keyring(keyring: Keyring) -> Option<Arc<Keyring>> {
    install_keyring_arc(Arc::new(keyring))
}

/// [`install_keyring`] for a keyring the caller keeps a handle to.
pub fn install_keyring_arc(keyring: Arc<Keyring>) -> Option<Arc<Keyring>> {
    INSTALLED
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .replace(keyring)
}

/// Removes the installed default keyring (its keys are zeroized once the
/// last holder drops its handle).
pub fn uninstall_keyring() -> Option<Arc<Keyring>> {
    INSTALLED
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
}

/// Runs `f` with `keyring` as the keyring of every [`Encrypted`](crate::Encrypted)
/// value sealed or opened on this thread, then restores the previous one
/// (also when `f` panics). Scopes nest: the innermost wins.
///
/// ```
/// use fieldseal::Keyring;
/// use std::sync::Arc;
///
/// let tenant_a = Arc::new(Keyring::generate());
/// let active = fieldseal::with_keyring(&tenant_a, || {
///     fieldseal::current_keyring().map(|k| Arc::ptr_eq(&k, &tenant_a))
/// });
/// assert_eq!(active.ok(), Some(true));
/// ```
pub fn with_keyring<R>(keyring: &Arc<Keyring>, f: impl FnOnce() -> R) -> R {
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            SCOPES.with(|s| s.borrow_mut().pop());
        }
    }
    SCOPES.with(|s| s.borrow_mut().push(Arc::clone(keyring)));
    let _pop = Pop;
    f()
}

/// The keyring in effect on this thread: the innermost [`with_keyring`]
/// scope, else the installed default.
///
/// # Errors
/// [`Error::NoKeyring`] when there is neither.
pub fn current_keyring() -> Result<Arc<Keyring>> {
    with_current(Arc::clone)
}

/// Calls `f` with the keyring in effect, without cloning its handle.
pub(crate) fn with_current<R>(f: impl FnOnce(&Arc<Keyring>) -> R) -> Result<R> {
    let mut f = Some(f);
    let scoped = SCOPES.with(|s| s.borrow().last().map(|k| f.take().map(|f| f(k))));
    if let Some(Some(result)) = scoped {
        return Ok(result);
    }
    let installed = INSTALLED.read().unwrap_or_else(PoisonError::into_inner);
    match (installed.as_ref(), f) {
        (Some(keyring), Some(f)) => Ok(f(keyring)),
        _ => Err(Error::NoKeyring),
    }
}
