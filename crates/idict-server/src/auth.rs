//! Tokens and roles: every RPC must carry `authorization: Bearer <token>`.
//! The controller token may do everything; the observer token may only read.
//! Tokens are compared in constant time.

use idict_core::model::Role;
use tonic::{Request, Status};

/// The two tokens of a run.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    pub observer: String,
    pub controller: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens { .. }")
    }
}

/// A fresh random token: 32 bytes from the OS, hex-encoded.
pub(crate) fn random_token() -> Result<String, getrandom::Error> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Equality whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Tokens {
    /// The role a presented token grants, if any.
    pub fn role_of(&self, presented: &str) -> Option<Role> {
        // Check both so timing does not tell which one nearly matched.
        let c = constant_time_eq(presented.as_bytes(), self.controller.as_bytes());
        let o = constant_time_eq(presented.as_bytes(), self.observer.as_bytes());
        if c {
            Some(Role::Controller)
        } else if o {
            Some(Role::Observer)
        } else {
            None
        }
    }
}

/// The caller's role, as the admission layer (`admission.rs`) recorded it.
pub(crate) fn role<T>(req: &Request<T>) -> Result<Role, Status> {
    req.extensions()
        .get::<Role>()
        .copied()
        .ok_or_else(|| Status::unauthenticated("unauthenticated request"))
}

/// The refusal of an observer's `rpc` (Set, Control), which needs the
/// controller token.
pub(crate) fn observer_refused(rpc: &str) -> Status {
    Status::permission_denied(format!(
        "{rpc} needs the controller token; this token is observer-only"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_by_token() {
        let t = Tokens {
            observer: "obs".into(),
            controller: "ctl".into(),
        };
        assert_eq!(t.role_of("ctl"), Some(Role::Controller));
        assert_eq!(t.role_of("obs"), Some(Role::Observer));
        assert_eq!(t.role_of("ctl "), None);
        assert_eq!(t.role_of(""), None);
        let a = random_token().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_token().unwrap());
    }
}
