//! Who is calling, and which OCI layouts they may name.
//!
//! The daemon's own user (the same uid, seen by `SO_PEERCRED` on the Unix
//! socket) may name any layout: the daemon reads nothing that user could not
//! read anyway. Every other caller — a `--socket-group` member on the
//! socket, and every TCP caller (token holders and mTLS clients are remote:
//! a path on the daemon's machine is not theirs to name) — may only name
//! layouts under `layout_roots`, checked on the canonical path before any
//! file is opened, and gets layouts opened [`OciLayout::confined`].
//!
//! The gRPC layer ([`crate::grpc::peer`]) learns the caller from the
//! connection and runs the call inside [`scope`], a task-local scope, so
//! [`open_layout`] can ask without every handler passing the request down.

use std::future::Future;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use satchel_oci::layout::OciLayout;
use satchel_oci::locks::KeyedLocks;
use satchel_oci::{Error, ErrorKind};

/// Who a call comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The daemon's own uid, on the Unix socket.
    Owner,
    /// Another local user on the Unix socket (a `--socket-group` member),
    /// or one whose credentials the socket did not give.
    OtherUser(Option<u32>),
    /// A TCP caller (plain, bearer token or mTLS).
    Remote,
}

impl Caller {
    /// The caller on a Unix socket whose peer has `uid` (`None` when the
    /// socket did not tell).
    pub fn local(uid: Option<u32>) -> Caller {
        match uid {
            Some(uid) if uid == rustix::process::geteuid().as_raw() => Caller::Owner,
            uid => Caller::OtherUser(uid),
        }
    }
}

/// The directories under which callers other than the daemon's own user
/// may name OCI layouts, canonical.
#[derive(Clone, Debug, Default)]
pub struct LayoutRoots(Vec<PathBuf>);

impl LayoutRoots {
    /// Canonicalises `roots`; a root that does not exist fails start-up.
    pub fn new(roots: &[PathBuf]) -> anyhow::Result<Self> {
        roots
            .iter()
            .map(|r| {
                std::fs::canonicalize(r).map_err(|e| {
                    anyhow::anyhow!("layout root {} cannot be resolved: {e}", r.display())
                })
            })
            .collect::<anyhow::Result<_>>()
            .map(LayoutRoots)
    }

    /// Whether the canonical `path` is one of the roots or beneath one.
    fn contains(&self, path: &Path) -> bool {
        self.0.iter().any(|root| path.starts_with(root))
    }
}

/// The current call's caller and the roots that bind it.
#[derive(Clone, Debug)]
struct Scope {
    caller: Caller,
    roots: Arc<LayoutRoots>,
}

tokio::task_local! {
    static SCOPE: Scope;
}

/// Runs `call` as a call of `caller`, bound by `roots`.
pub fn scope<F: Future>(
    caller: Caller,
    roots: Arc<LayoutRoots>,
    call: F,
) -> impl Future<Output = F::Output> {
    SCOPE.scope(Scope { caller, roots }, call)
}

/// The caller of the call this task serves; [`Caller::Remote`] outside a
/// call, so code that cannot tell is held to the stricter rule.
pub fn current() -> Caller {
    SCOPE
        .try_with(|s| s.caller.clone())
        .unwrap_or(Caller::Remote)
}

/// Opens the layout at the absolute `path` for the current caller: its own
/// user anywhere, anyone else only under the layout roots (and confined).
/// PERMISSION_DENIED otherwise, before any file of the layout is opened.
pub fn open_layout(path: &Path, locks: Arc<KeyedLocks>) -> Result<OciLayout, Error> {
    let (caller, roots) = SCOPE
        .try_with(|s| (s.caller.clone(), s.roots.clone()))
        .unwrap_or_else(|_| (Caller::Remote, Arc::default()));
    let canonical = canonical(path);
    if caller == Caller::Owner {
        let canonical = canonical.map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("oci_layout {}: {e}", path.display()),
            )
        })?;
        return Ok(OciLayout::new(canonical, locks));
    }
    match canonical {
        Ok(canonical) if roots.contains(&canonical) => {
            Ok(OciLayout::new(canonical, locks).confined())
        }
        // Neither whether the path exists nor where its links lead is told.
        _ => Err(Error::new(ErrorKind::PermissionDenied, format!(
            "oci_layout {} is not under a layout root this caller may use (layout_roots in satcheld's config; only the daemon's own user may name other layouts)",
            path.display()
        ))),
    }
}

/// The canonical form of an absolute path that may not exist yet: its
/// longest existing ancestor resolved, the rest plain names.
fn canonical(path: &Path) -> Result<PathBuf, String> {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        match std::fs::canonicalize(existing) {
            Ok(mut base) => {
                for name in rest.iter().rev() {
                    base.push(name);
                }
                return Ok(base);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match existing.components().next_back() {
                    Some(Component::Normal(name)) => rest.push(name.to_owned()),
                    _ => return Err("has '.' or '..' in a part that does not exist".into()),
                }
                existing = existing.parent().ok_or("cannot be resolved")?;
            }
            Err(e) => return Err(format!("cannot be resolved: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_of_layouts_yet_to_be_made() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::os::unix::fs::symlink(&base, base.join("link")).unwrap();
        assert_eq!(canonical(&base.join("link/a/b")).unwrap(), base.join("a/b"));
        assert!(canonical(&base.join("missing/../x")).is_err());
        let roots = LayoutRoots::new(&[base.join("link")]).unwrap();
        assert!(roots.contains(&base.join("x")));
        assert!(!roots.contains(&base.with_extension("other")));
    }

    #[tokio::test]
    async fn only_the_owner_names_layouts_outside_the_roots() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let locks = Arc::new(KeyedLocks::default());
        let allowed = Arc::new(LayoutRoots::new(std::slice::from_ref(&base)).unwrap());
        let check = |caller: Caller, roots: Arc<LayoutRoots>| {
            let locks = locks.clone();
            let path = base.join("layout");
            SCOPE.sync_scope(Scope { caller, roots }, move || {
                open_layout(&path, locks).map(|_| ()).map_err(|e| e.kind())
            })
        };
        assert_eq!(check(Caller::Owner, Arc::default()), Ok(()));
        assert_eq!(
            check(Caller::OtherUser(Some(65534)), Arc::default()),
            Err(ErrorKind::PermissionDenied)
        );
        assert_eq!(check(Caller::Remote, allowed.clone()), Ok(()));
        assert_eq!(check(Caller::OtherUser(None), allowed), Ok(()));
        // Outside any call: the stricter rule.
        assert!(open_layout(&base, locks.clone()).is_err());
    }
}
