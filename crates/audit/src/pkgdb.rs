//! Package databases found in a scanned tree, read only as far as `audit` needs: which installed
//! package owns a file, its version, and which distribution release the tree is.
//! dpkg (`var/lib/dpkg/status`, `var/lib/dpkg/info/*.list`), apk (`lib/apk/db/installed`) and rpm
//! (`rpmdb.sqlite` or the Berkeley DB `Packages` in `var/lib/rpm` or `usr/lib/sysimage/rpm`, read
//! by `rpmdb`). rpm's newest format, SUSE's ndb `Packages.db`, is not read.

use crate::rpmdb::{self, RpmDbError, RpmDbKind};
use crate::version::Format;
use std::collections::HashMap;

/// Caps for the text files read whole into memory.
pub const MAX_DB_BYTES: u64 = 64 << 20;
/// rpm's database is read whole into memory: inside a stream (an image layer) up to this...
pub const MAX_RPMDB_IN_STREAM: u64 = 64 << 20;
/// ...and from a file on disk up to this (a full server's `Packages` is 50–200 MB).
pub const MAX_RPMDB_ON_DISK: u64 = 512 << 20;

#[derive(Debug, Clone, Default)]
pub struct PackageDb {
    /// Installed packages of interest: name → version, with the database format.
    pub installed: HashMap<String, (Format, String)>,
    /// Normalised path → package name, for packages of interest.
    pub owners: HashMap<String, String>,
    pub os: Option<OsRelease>,
    /// Whether a dpkg status, apk installed or rpm database was seen at all.
    pub seen: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsRelease {
    pub id: String,
    pub version_id: String,
    /// The file it was read from, for the finding's reason.
    pub source: &'static str,
}

impl PackageDb {
    /// Later layers win, as they do on disk.
    pub fn overlay(&mut self, upper: PackageDb) {
        if upper.seen {
            self.installed = upper.installed;
            self.seen = true;
        }
        self.owners.extend(upper.owners);
        if upper.os.is_some() {
            self.os = upper.os;
        }
    }
}

/// `Package:`/`Version:`/`Status:` stanzas; only installed packages named in `interesting`.
pub fn parse_dpkg_status(text: &str, interesting: &[String], db: &mut PackageDb) {
    db.seen = true;
    for stanza in text.split("\n\n") {
        let (mut name, mut version, mut installed) = (None, None, false);
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Version:") {
                version = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status:") {
                installed = v.trim().ends_with(" installed");
            }
        }
        if let (Some(name), Some(version), true) = (name, version, installed) {
            if interesting.iter().any(|n| n == name) {
                db.installed.insert(name.to_string(), (Format::Dpkg, version.to_string()));
            }
        }
    }
}

/// The package named by a `var/lib/dpkg/info/NAME[:ARCH].list` path, if it is of interest.
pub fn dpkg_list_package(path: &str, interesting: &[String]) -> Option<String> {
    let file = path.strip_prefix("var/lib/dpkg/info/")?.strip_suffix(".list")?;
    let name = file.split(':').next().unwrap_or(file);
    interesting.iter().any(|n| n == name).then(|| name.to_string())
}

pub fn parse_dpkg_list(text: &str, package: &str, db: &mut PackageDb) {
    for line in text.lines() {
        let path = normalise(line);
        if !path.is_empty() {
            db.owners.insert(path.to_string(), package.to_string());
        }
    }
}

/// apk's installed database: `P:` name, `V:` version, `F:` folder, `R:` file in that folder.
pub fn parse_apk_installed(text: &str, interesting: &[String], db: &mut PackageDb) {
    db.seen = true;
    for stanza in text.split("\n\n") {
        let (mut name, mut version, mut folder) = (None, None, "");
        let mut files = Vec::new();
        for line in stanza.lines() {
            match line.split_once(':') {
                Some(("P", v)) => name = Some(v),
                Some(("V", v)) => version = Some(v),
                Some(("F", v)) => folder = v,
                Some(("R", v)) => files.push(if folder.is_empty() { v.to_string() } else { format!("{folder}/{v}") }),
                _ => {}
            }
        }
        if let (Some(name), Some(version)) = (name, version) {
            if interesting.iter().any(|n| n == name) {
                db.installed.insert(name.to_string(), (Format::Apk, version.to_string()));
                for f in files {
                    db.owners.insert(f, name.to_string());
                }
            }
        }
    }
}

/// An rpm database: the packages named in `interesting` and the files they own. Returns how many
/// package headers it held.
pub fn parse_rpmdb(kind: RpmDbKind, bytes: &[u8], interesting: &[String], db: &mut PackageDb) -> Result<usize, RpmDbError> {
    let wanted = |name: &str| interesting.iter().any(|n| n == name);
    let mut headers = 0;
    let mut found = PackageDb::default();
    rpmdb::read_blobs(kind, bytes, &mut |blob| {
        let Some(package) = rpmdb::parse_header(blob, wanted) else {
            return;
        };
        headers += 1;
        if wanted(&package.name) {
            for file in &package.files {
                found.owners.insert(normalise(file).to_string(), package.name.clone());
            }
            found.installed.insert(package.name, (Format::Rpm, package.evr));
        }
    })?;
    if headers == 0 {
        return Err(RpmDbError::Corrupt("no package header in it".into()));
    }
    db.seen = true;
    db.installed.extend(found.installed);
    db.owners.extend(found.owners);
    Ok(headers)
}

/// `ID=` and `VERSION_ID=` of os-release(5).
pub fn parse_os_release(text: &str) -> Option<OsRelease> {
    let (mut id, mut version_id) = (None, None);
    for line in text.lines() {
        let unquote = |v: &str| v.trim().trim_matches('"').trim_matches('\'').to_string();
        if let Some(v) = line.strip_prefix("ID=") {
            id = Some(unquote(v));
        } else if let Some(v) = line.strip_prefix("VERSION_ID=") {
            version_id = Some(unquote(v));
        }
    }
    Some(OsRelease { id: id?, version_id: version_id?, source: "os-release" })
}

/// `etc/debian_version` (`7.4`) or `etc/alpine-release` (`2.7.1`), when os-release is missing.
pub fn release_file(id: &str, text: &str) -> Option<OsRelease> {
    let v = text.lines().next()?.trim();
    let source = if id == "debian" { "etc/debian_version" } else { "etc/alpine-release" };
    (!v.is_empty() && v.as_bytes()[0].is_ascii_digit()).then(|| OsRelease { id: id.to_string(), version_id: v.to_string(), source })
}

/// `etc/redhat-release`, `etc/centos-release`, `etc/system-release` (older Red Hat family releases
/// have no os-release): `CentOS release 6.5 (Final)`, `Red Hat Enterprise Linux Server release 6.5
/// (Santiago)`, `Fedora release 20 (Heisenbug)`, `Amazon Linux AMI release 2014.03`; the ids are
/// os-release's.
pub fn parse_redhat_release(source: &'static str, text: &str) -> Option<OsRelease> {
    let line = text.lines().next()?.trim();
    let (product, rest) = line.split_once(" release ")?;
    let version = rest.split_whitespace().next()?;
    let id = match product {
        p if p.starts_with("CentOS") => "centos",
        p if p.starts_with("Red Hat Enterprise Linux") => "rhel",
        p if p.starts_with("Fedora") => "fedora",
        p if p.starts_with("Amazon Linux") => "amzn",
        p if p.starts_with("Scientific Linux") => "scientific",
        p if p.starts_with("Oracle Linux") => "ol",
        _ => return None,
    };
    version.as_bytes().first()?.is_ascii_digit().then(|| OsRelease { id: id.into(), version_id: version.into(), source })
}

/// `etc/SuSE-release` (before os-release): `openSUSE 13.1 (x86_64)` then `VERSION = 13.1`, or
/// `SUSE Linux Enterprise Server 11 (x86_64)`, `VERSION = 11`, `PATCHLEVEL = 3` (→ sles 11.3).
pub fn parse_suse_release(text: &str) -> Option<OsRelease> {
    let first = text.lines().next()?;
    let id = if first.starts_with("openSUSE") {
        "opensuse"
    } else if first.starts_with("SUSE Linux Enterprise Server") {
        "sles"
    } else if first.starts_with("SUSE Linux Enterprise Desktop") {
        "sled"
    } else {
        return None;
    };
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    let mut version = field("VERSION")?;
    if let Some(patch) = field("PATCHLEVEL").filter(|p| p != "0") {
        version = format!("{version}.{patch}");
    }
    Some(OsRelease { id: id.into(), version_id: version, source: "etc/SuSE-release" })
}

/// A path inside a tree as the databases and whiteouts name it: no `./`, no leading `/`.
pub fn normalise(path: &str) -> &str {
    let mut p = path.trim_end_matches('\n');
    loop {
        if let Some(rest) = p.strip_prefix("./") {
            p = rest;
        } else if let Some(rest) = p.strip_prefix('/') {
            p = rest;
        } else {
            break;
        }
    }
    p.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_keeps_installed_packages_of_interest() {
        let names = vec!["libssl1.0.0".to_string()];
        let text = "Package: libssl1.0.0\nStatus: install ok installed\nVersion: 1.0.1e-2+deb7u5\n\n\
                    Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.7\n\n";
        let mut db = PackageDb::default();
        parse_dpkg_status(text, &names, &mut db);
        assert_eq!(db.installed.get("libssl1.0.0").map(|v| v.1.as_str()), Some("1.0.1e-2+deb7u5"));
        assert!(!db.installed.contains_key("zlib1g"));
        assert_eq!(dpkg_list_package("var/lib/dpkg/info/libssl1.0.0:amd64.list", &names).as_deref(), Some("libssl1.0.0"));
        assert_eq!(normalise("./usr/lib/x"), "usr/lib/x");
        assert_eq!(normalise("/usr/lib/"), "usr/lib");
    }

    #[test]
    fn apk_and_os_release() {
        let names = vec!["libssl1.0".to_string()];
        let mut db = PackageDb::default();
        parse_apk_installed("P:libssl1.0\nV:1.0.1g-r0\nF:lib\nR:libssl.so.1.0.0\n\n", &names, &mut db);
        assert_eq!(db.owners.get("lib/libssl.so.1.0.0").map(String::as_str), Some("libssl1.0"));
        let os = parse_os_release("NAME=\"Debian\"\nID=debian\nVERSION_ID=\"7\"\n").expect("os");
        assert_eq!((os.id.as_str(), os.version_id.as_str()), ("debian", "7"));
    }

    #[test]
    fn red_hat_and_suse_release_files() {
        let os = |o: Option<OsRelease>| o.map(|o| format!("{} {}", o.id, o.version_id));
        let rh = |text| parse_redhat_release("etc/redhat-release", text);
        assert_eq!(os(rh("CentOS release 6.5 (Final)\n")).as_deref(), Some("centos 6.5"));
        assert_eq!(os(rh("Red Hat Enterprise Linux Server release 6.5 (Santiago)")).as_deref(), Some("rhel 6.5"));
        assert_eq!(os(rh("Fedora release 20 (Heisenbug)")).as_deref(), Some("fedora 20"));
        assert_eq!(os(rh("Amazon Linux AMI release 2014.03")).as_deref(), Some("amzn 2014.03"));
        assert_eq!(os(rh("CentOS Linux release 7.0.1406 (Core)")).as_deref(), Some("centos 7.0.1406"));
        assert_eq!(rh("Something release x"), None);
        let suse = "SUSE Linux Enterprise Server 11 (x86_64)\nVERSION = 11\nPATCHLEVEL = 3\n";
        assert_eq!(os(parse_suse_release(suse)).as_deref(), Some("sles 11.3"));
        assert_eq!(os(parse_suse_release("openSUSE 13.1 (x86_64)\nVERSION = 13.1\nCODENAME = Bottle\n")).as_deref(), Some("opensuse 13.1"));
    }
}
