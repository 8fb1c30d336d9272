//! OCI image layouts as tar archives, as `oras backup` writes them and
//! `oras restore` reads them: a plain tar of the layout's files, named
//! relative to the layout.

use std::io::BufWriter;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tonic::Code;

use crate::Error;

/// Archives the layout `dir` as `out` under a temporary name in the same
/// directory until it is complete; returns the archive's size.
pub fn write(dir: &Path, out: &Path) -> Result<u64, Error> {
    let io = |what: &str| {
        let what = format!(
            "cannot archive {} as {}: {what}",
            dir.display(),
            out.display()
        );
        move |e| Error::io(what, e)
    };
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temp = tempfile::Builder::new()
        .prefix(".satchel-backup-")
        .tempfile_in(parent)
        .map_err(io("a temporary file"))?;
    let mut builder = tar::Builder::new(BufWriter::new(temp.as_file()));
    builder.follow_symlinks(false);
    for name in ["oci-layout", "index.json"] {
        builder
            .append_path_with_name(dir.join(name), name)
            .map_err(io(name))?;
    }
    builder
        .append_dir("blobs", dir.join("blobs"))
        .map_err(io("blobs"))?;
    for alg in sorted(&dir.join("blobs")).map_err(io("blobs"))? {
        let alg_name = format!("blobs/{}", alg.file_name().to_string_lossy());
        builder
            .append_dir(&alg_name, alg.path())
            .map_err(io(&alg_name))?;
        for blob in sorted(&alg.path()).map_err(io(&alg_name))? {
            let name = format!("{alg_name}/{}", blob.file_name().to_string_lossy());
            builder
                .append_path_with_name(blob.path(), &name)
                .map_err(io(&name))?;
        }
    }
    let writer = builder.into_inner().map_err(io("the end"))?;
    let file = writer
        .into_inner()
        .map_err(|e| io("the end")(e.into_error()))?;
    file.sync_all().map_err(io("the end"))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(io("its mode"))?;
    let size = temp.as_file().metadata().map_err(io("its size"))?.len();
    temp.persist(out)
        .map_err(|e| io("its final name")(e.error))?;
    Ok(size)
}

fn sorted(dir: &Path) -> std::io::Result<Vec<std::fs::DirEntry>> {
    let mut entries = std::fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

/// Extracts the layout archive `archive` into the empty directory `dir`.
/// Only a layout's names are taken (`oci-layout`, `index.json`,
/// `blobs/ALG/HEX`, with or without a leading `./`), as regular files and
/// directories; anything else refuses the archive (INVALID_ARGUMENT), so
/// no entry can land outside `dir`. Blob bytes are not checked here:
/// satcheld checks each against its digest as it copies it.
pub fn extract(archive: &Path, dir: &Path) -> Result<(), Error> {
    let io = |what: String| move |e| Error::io(what, e);
    let file =
        std::fs::File::open(archive).map_err(io(format!("cannot open {}", archive.display())))?;
    let broken = io(format!("{} is a broken tar archive", archive.display()));
    let mut tar = tar::Archive::new(std::io::BufReader::new(file));
    for entry in tar.entries().map_err(broken.clone())? {
        let mut entry = entry.map_err(broken.clone())?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = raw.trim_start_matches("./").trim_end_matches('/');
        let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
        let parts: Vec<&str> = name.split('/').collect();
        let is_dir = match parts.as_slice() {
            [""] | ["blobs"] => true,
            ["blobs", alg] => plain(alg),
            _ => false,
        };
        let is_file = match parts.as_slice() {
            ["oci-layout"] | ["index.json"] => true,
            ["blobs", alg, hex] => plain(alg) && plain(hex),
            _ => false,
        };
        let kind = entry.header().entry_type();
        let path = dir.join(name);
        if kind == tar::EntryType::Directory && is_dir {
            std::fs::create_dir_all(&path)
                .map_err(io(format!("cannot create {}", path.display())))?;
        } else if kind == tar::EntryType::Regular && is_file {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(io(format!("cannot create {}", parent.display())))?;
            }
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => Error::local(
                        Code::InvalidArgument,
                        format!("{} holds {name} twice", archive.display()),
                    ),
                    _ => Error::io(format!("cannot create {}", path.display()), e),
                })?;
            std::io::copy(&mut entry, &mut out).map_err(broken.clone())?;
        } else {
            return Err(Error::local(
                Code::InvalidArgument,
                format!(
                    "{} is not an OCI layout archive: it holds {}",
                    archive.display(),
                    crate::title::shown(&raw)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive of `entries` (name, kind, link target or contents), with
    /// names written as given, `..` included.
    fn archive(dir: &Path, entries: &[(&str, tar::EntryType, &[u8])]) -> std::path::PathBuf {
        let path = dir.join("in.tar");
        let mut builder = tar::Builder::new(std::fs::File::create(&path).unwrap());
        for (name, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            let gnu = header.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            let body: &[u8] = match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    header
                        .set_link_name(std::str::from_utf8(data).unwrap())
                        .unwrap();
                    &[]
                }
                _ => data,
            };
            header.set_size(body.len() as u64);
            header.set_cksum();
            builder.append(&header, body).unwrap();
        }
        builder.finish().unwrap();
        path
    }

    const FILE: tar::EntryType = tar::EntryType::Regular;
    const DIR: tar::EntryType = tar::EntryType::Directory;

    #[test]
    fn a_layout_round_trips() {
        let scratch = tempfile::tempdir().unwrap();
        let layout = scratch.path().join("layout");
        std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
        std::fs::write(layout.join("oci-layout"), b"{}").unwrap();
        std::fs::write(layout.join("index.json"), b"{\"manifests\":[]}").unwrap();
        std::fs::write(layout.join("blobs/sha256/abc123"), b"blob").unwrap();
        let out = scratch.path().join("out.tar");
        write(&layout, &out).unwrap();
        let back = scratch.path().join("back");
        std::fs::create_dir(&back).unwrap();
        extract(&out, &back).unwrap();
        assert_eq!(
            std::fs::read(back.join("blobs/sha256/abc123")).unwrap(),
            b"blob"
        );
        assert_eq!(
            std::fs::read(back.join("index.json")).unwrap(),
            b"{\"manifests\":[]}"
        );
    }

    #[test]
    fn anything_but_a_layouts_names_is_refused() {
        let cases: &[&[(&str, tar::EntryType, &[u8])]] = &[
            &[("blobs/sha256/../../x", FILE, b"x")],
            &[("/etc/x", FILE, b"x")],
            &[(
                "./blobs/sha256/abc",
                tar::EntryType::Symlink,
                b"/etc/passwd",
            )],
            &[("blobs/sha256/abc", tar::EntryType::Link, b"index.json")],
            &[("blobs/sha256/a.b", FILE, b"x")],
            &[("blobs/sha256/abc/def", FILE, b"x")],
            &[("other", FILE, b"x")],
            &[("blobs/sha256/abc", DIR, b"")],
            &[("oci-layout", FILE, b"1"), ("./oci-layout", FILE, b"2")],
        ];
        for entries in cases {
            let scratch = tempfile::tempdir().unwrap();
            let input = archive(scratch.path(), entries);
            let out = scratch.path().join("out");
            std::fs::create_dir(&out).unwrap();
            let err = extract(&input, &out).unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{entries:?}: {err}");
            assert!(!scratch.path().join("x").exists());
            assert!(!Path::new("/etc/x").exists());
        }
    }
}
