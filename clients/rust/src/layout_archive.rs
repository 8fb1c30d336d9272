//! OCI image layouts as tar archives, as `oras backup` writes them and
//! `oras restore` reads them: a plain tar of the layout's files, named
//! relative to the layout.

use std::io::BufWriter;
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
    writer
        .into_inner()
        .map_err(|e| io("the end")(e.into_error()))?;
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
                .map_err(io(format!("cannot create {name} (twice in the archive?)")))?;
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
