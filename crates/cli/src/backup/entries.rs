//! Walking a tar stream without trusting it: the entries are read raw and the metadata
//! entries that describe the next one (GNU long names, pax records) are applied here with
//! a small cap, because the `tar` crate reads those whole into memory whatever size their
//! header claims. A pax size that disagrees with the header, a long link name or a
//! metadata entry over the cap refuses the archive.

use anyhow::{bail, Context};
use std::io::Read;

/// The most a metadata entry (long name, pax records) may hold.
const META_CAP: u64 = 64 * 1024;

/// Calls `visit` with each entry that is not metadata, and its path (the long name or pax
/// path when one came before it). `damaged` names the archive in errors.
pub(super) fn for_each<R: Read>(
    archive: &mut tar::Archive<R>,
    damaged: &str,
    mut visit: impl FnMut(&str, &mut tar::Entry<'_, R>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut long_name: Option<String> = None;
    let mut pax_path: Option<String> = None;
    let mut pax_size: Option<u64> = None;
    let entries = archive.entries().context(damaged.to_string())?.raw(true);
    for entry in entries {
        let mut entry = entry.context(damaged.to_string())?;
        let kind = entry.header().entry_type();
        if kind.is_gnu_longname() {
            let name = read_meta(&mut entry, damaged)?;
            long_name = Some(String::from_utf8_lossy(&name).trim_end_matches('\0').into());
            continue;
        }
        if kind.is_pax_local_extensions() {
            let records = read_meta(&mut entry, damaged)?;
            for record in tar::PaxExtensions::new(&records) {
                let record = record.context(damaged.to_string())?;
                match record.key() {
                    Ok("path") => {
                        pax_path = Some(String::from_utf8_lossy(record.value_bytes()).into())
                    }
                    Ok("size") => {
                        pax_size = Some(
                            record
                                .value()
                                .ok()
                                .and_then(|v| v.parse().ok())
                                .context(damaged.to_string())?,
                        )
                    }
                    _ => {}
                }
            }
            continue;
        }
        if kind.is_pax_global_extensions() {
            read_meta(&mut entry, damaged)?;
            continue;
        }
        if kind.is_gnu_longlink() {
            bail!("{damaged}: it holds a link (a long link name), which no backup holds");
        }
        let path = match pax_path.take().or(long_name.take()) {
            Some(path) => path,
            None => entry
                .path()
                .context(damaged.to_string())?
                .to_string_lossy()
                .into_owned(),
        };
        let size = entry.header().entry_size().context(damaged.to_string())?;
        if pax_size.take().is_some_and(|pax| pax != size) {
            bail!("{damaged}: the sizes its headers give for {path:?} disagree");
        }
        visit(&path, &mut entry)?;
    }
    if long_name.is_some() || pax_path.is_some() {
        bail!("{damaged}: it ends with a name for an entry that is not there");
    }
    Ok(())
}

/// Reads a metadata entry, refusing one larger than [`META_CAP`].
fn read_meta(entry: &mut impl Read, damaged: &str) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    entry
        .take(META_CAP + 1)
        .read_to_end(&mut bytes)
        .context(damaged.to_string())?;
    if bytes.len() as u64 > META_CAP {
        bail!("{damaged}: a name or pax record entry is larger than {META_CAP} bytes");
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(bytes: &[u8]) -> anyhow::Result<Vec<(String, u64)>> {
        let mut archive = tar::Archive::new(bytes);
        let mut seen = Vec::new();
        for_each(&mut archive, "the archive is damaged", |path, entry| {
            seen.push((path.to_string(), entry.header().entry_size()?));
            Ok(())
        })?;
        Ok(seen)
    }

    #[test]
    fn long_names_are_applied() {
        let mut builder = tar::Builder::new(Vec::new());
        let long = format!("proxy/dynamic/{}.yml", "a".repeat(150));
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_mode(0o600);
        builder
            .append_data(&mut header, &long, &b"abc"[..])
            .unwrap();
        let bytes = builder.into_inner().unwrap();
        assert_eq!(walk(&bytes).unwrap(), vec![(long, 3)]);
    }

    /// A pax record entry claiming a gigabyte is refused after 64 KiB, never read whole.
    #[test]
    fn a_huge_metadata_entry_is_refused() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::XHeader);
        header.set_size(1 << 30);
        header.set_path("pax").unwrap();
        header.set_cksum();
        // Only 1 MiB actually follows: the walk must give up before it needs more.
        builder
            .append(&header, std::io::repeat(b'1').take(1 << 20))
            .unwrap();
        let bytes = builder.into_inner().unwrap();
        let err = walk(&bytes).unwrap_err();
        assert!(format!("{err:#}").contains("larger than"), "{err:#}");
    }

    #[test]
    fn a_pax_size_that_disagrees_with_the_header_is_refused() {
        let mut builder = tar::Builder::new(Vec::new());
        let records = b"16 size=1000000\n";
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::XHeader);
        header.set_size(records.len() as u64);
        header.set_path("pax").unwrap();
        header.set_cksum();
        builder.append(&header, &records[..]).unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_size(3);
        header.set_path("capstan.db").unwrap();
        header.set_cksum();
        builder.append(&header, &b"abc"[..]).unwrap();
        let bytes = builder.into_inner().unwrap();
        let err = walk(&bytes).unwrap_err();
        assert!(format!("{err:#}").contains("disagree"), "{err:#}");
    }
}
