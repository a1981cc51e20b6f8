#![allow(clippy::unwrap_used, clippy::panic)]
//! `bleedwatch-audit` end to end on the real OpenSSL builds of `../shared/data/openssl` (see
//! tests/data/README.md): directories, every archive kind, .debs, docker-save and OCI images with
//! whiteouts, package databases, and hostile archives. Every archive is built here, at test time,
//! around the real bytes; nothing generated is committed.

use bleedwatch_audit::{audit_path, Audit, AuditVerdict, Finding, Heartbeats, Kind, Options, Walker};
use std::io::Write;
use std::path::{Path, PathBuf};

fn shared() -> Option<PathBuf> {
    bleedwatch_testkit::shared_openssl_dir()
}

fn read(dir: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(dir.join(rel)).unwrap()
}

/// The 1.0.1f library with its version text rewritten in memory to Debian wheezy's "1.0.1e"
/// (same length, so the ELF stays intact): what a distribution's patched 1.0.1e looks like.
fn as_101e(mut bytes: Vec<u8>) -> Vec<u8> {
    let from = b"1.0.1f 6 Jan 2014";
    let to = b"1.0.1e 1 Feb 2013";
    let mut i = 0;
    let mut replaced = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            replaced += 1;
        }
        i += 1;
    }
    assert!(replaced > 0);
    bytes
}

fn by_path<'a>(audit: &'a Audit, suffix: &str) -> Vec<&'a Finding> {
    audit.findings.iter().filter(|f| f.location.last().is_some_and(|l| l.ends_with(suffix))).collect()
}

fn one<'a>(audit: &'a Audit, suffix: &str) -> &'a Finding {
    let found = by_path(audit, suffix);
    assert_eq!(found.len(), 1, "{suffix}: {:#?}\nissues: {:#?}", audit.findings, audit.issues);
    found[0]
}

/// A tar of (path, bytes) entries.
fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_entry_type(tar::EntryType::Regular);
        // Names as given (even `../x`): written into the header directly, as a hostile archive would.
        let name = path.as_bytes();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = xz2::write::XzEncoder::new(Vec::new(), 0);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (path, data) in entries {
        w.start_file(*path, options).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn ar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = ar::Builder::new(Vec::new());
    for (name, data) in entries {
        b.append(&ar::Header::new(name.as_bytes().to_vec(), data.len() as u64), *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn audit_bytes(name: &str, bytes: &[u8], options: Options) -> Audit {
    Walker::new(options).audit_reader(name, &mut &bytes[..])
}

mod detector {
    use super::*;

    #[test]
    fn real_builds_in_a_directory() {
        let Some(dir) = shared() else { return };
        let audit = audit_path(&dir, &Options::default());
        assert!(audit.issues.is_empty(), "{:?}", audit.issues);
        let expect = [
            ("bin/openssl-1.0.1f", Kind::OpensslTool, "1.0.1f", Heartbeats::CompiledIn, AuditVerdict::Vulnerable),
            ("bin/openssl-1.0.1g", Kind::OpensslTool, "1.0.1g", Heartbeats::CompiledIn, AuditVerdict::NotAffected),
            ("bin/openssl-1.0.1f-nohb", Kind::OpensslTool, "1.0.1f", Heartbeats::Disabled, AuditVerdict::HeartbeatsDisabled),
            ("lib/1.0.1f/libssl.so.1.0.0", Kind::SharedLibssl, "1.0.1f", Heartbeats::CompiledIn, AuditVerdict::Vulnerable),
            ("lib/1.0.1f/libcrypto.so.1.0.0", Kind::SharedLibcrypto, "1.0.1f", Heartbeats::CompiledIn, AuditVerdict::Vulnerable),
            ("lib/1.0.1g/libssl.so.1.0.0", Kind::SharedLibssl, "1.0.1g", Heartbeats::CompiledIn, AuditVerdict::NotAffected),
            ("lib/1.0.1g/libcrypto.so.1.0.0", Kind::SharedLibcrypto, "1.0.1g", Heartbeats::CompiledIn, AuditVerdict::NotAffected),
            ("lib/1.0.1f-nohb/libssl.so.1.0.0", Kind::SharedLibssl, "1.0.1f", Heartbeats::Disabled, AuditVerdict::HeartbeatsDisabled),
            ("lib/1.0.1f-nohb/libcrypto.so.1.0.0", Kind::SharedLibcrypto, "1.0.1f", Heartbeats::Disabled, AuditVerdict::HeartbeatsDisabled),
            ("appliance/tlsd-static-1.0.1f", Kind::Static, "1.0.1f", Heartbeats::CompiledIn, AuditVerdict::Vulnerable),
            ("appliance/tlsd-static-1.0.1f-unstripped", Kind::Static, "1.0.1f", Heartbeats::CompiledIn, AuditVerdict::Vulnerable),
            ("appliance/tlsd-static-1.0.1g", Kind::Static, "1.0.1g", Heartbeats::CompiledIn, AuditVerdict::NotAffected),
            ("appliance/tlsd-static-1.0.1f-nohb", Kind::Static, "1.0.1f", Heartbeats::Disabled, AuditVerdict::HeartbeatsDisabled),
        ];
        for (path, kind, version, heartbeats, verdict) in expect {
            let f = one(&audit, path);
            assert_eq!((f.kind, f.version.as_str(), f.heartbeats, f.verdict), (kind, version, heartbeats, verdict), "{path}: {f:?}");
            assert_eq!(f.location[0], dir.display().to_string());
        }
        // The C source and the licence carry no copy.
        assert_eq!(audit.findings.len(), expect.len());
    }

    #[test]
    fn the_unstripped_daemon_is_told_by_its_symbols_alone() {
        let Some(dir) = shared() else { return };
        // Without the compiler-flags string, the heartbeat symbols still decide; stripped, nothing does.
        let strip_cflags = |mut bytes: Vec<u8>| {
            for marker in [&b"-DOPENSSL_"[..]] {
                let mut i = 0;
                while i + marker.len() <= bytes.len() {
                    if &bytes[i..i + marker.len()] == marker {
                        bytes[i + 1] = b'X';
                    }
                    i += 1;
                }
            }
            bytes
        };
        let unstripped = strip_cflags(read(&dir, "appliance/tlsd-static-1.0.1f-unstripped"));
        let stripped = strip_cflags(read(&dir, "appliance/tlsd-static-1.0.1f"));
        let audit = audit_bytes("t.tar", &tar_of(&[("tlsd-u", &unstripped), ("tlsd-s", &stripped)]), Options::default());
        let u = one(&audit, "tlsd-u");
        assert_eq!((u.heartbeats, u.verdict), (Heartbeats::CompiledIn, AuditVerdict::Vulnerable), "{u:?}");
        let s = one(&audit, "tlsd-s");
        assert_eq!((s.heartbeats, s.verdict), (Heartbeats::Unknown, AuditVerdict::Unknown), "{s:?}");
        assert!(s.reason.contains("don't show"), "{}", s.reason);
    }

    #[test]
    fn text_mentioning_the_version_is_not_a_copy() {
        let header = b"#define OPENSSL_VERSION_TEXT \"OpenSSL 1.0.1f 6 Jan 2014\"\n";
        let audit = audit_bytes("opensslv.h", header, Options::default());
        assert!(audit.findings.is_empty());
    }
}

mod archives {
    use super::*;

    fn entries(dir: &Path) -> Vec<(String, Vec<u8>)> {
        ["lib/1.0.1f/libssl.so.1.0.0", "lib/1.0.1g/libssl.so.1.0.0", "appliance/tlsd-static-1.0.1f-nohb"]
            .iter()
            .map(|p| (p.to_string(), read(dir, p)))
            .collect()
    }

    fn check(audit: &Audit, what: &str) {
        assert!(audit.issues.is_empty(), "{what}: {:?}", audit.issues);
        let f = audit.findings.iter().find(|f| f.location.last().unwrap().ends_with("1.0.1f/libssl.so.1.0.0")).unwrap_or_else(|| panic!("{what}: {:?}", audit.findings));
        assert_eq!(f.verdict, AuditVerdict::Vulnerable, "{what}");
        let g = audit.findings.iter().find(|f| f.location.last().unwrap().ends_with("1.0.1g/libssl.so.1.0.0")).unwrap();
        assert_eq!(g.verdict, AuditVerdict::NotAffected, "{what}");
        let n = audit.findings.iter().find(|f| f.location.last().unwrap().ends_with("tlsd-static-1.0.1f-nohb")).unwrap();
        assert_eq!((n.kind, n.verdict), (Kind::Static, AuditVerdict::HeartbeatsDisabled), "{what}");
        assert_eq!(audit.findings.len(), 3, "{what}");
    }

    #[test]
    fn tar_gzip_xz_zstd_zip_jar_on_disk() {
        let Some(dir) = shared() else { return };
        let files = entries(&dir);
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (p.as_str(), d.as_slice())).collect();
        let tar = tar_of(&refs);
        let tmp = tempfile::tempdir().unwrap();
        let kinds: Vec<(&str, Vec<u8>)> = vec![
            ("x.tar", tar.clone()),
            ("x.tar.gz", gzip(&tar)),
            ("x.tar.xz", xz(&tar)),
            ("x.tar.zst", zstd(&tar)),
            ("x.zip", zip_of(&refs)),
            ("x.jar", zip_of(&refs)),
        ];
        for (name, bytes) in &kinds {
            let path = tmp.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let audit = audit_path(&path, &Options::default());
            check(&audit, name);
            assert_eq!(audit.findings[0].location.len(), 2, "{name}: PATH, then the path inside");
        }
    }

    #[test]
    fn archives_inside_archives_up_to_the_bound() {
        let Some(dir) = shared() else { return };
        let files = entries(&dir);
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (p.as_str(), d.as_slice())).collect();
        // outer.tar.gz > inner.zip (buffered: zip needs seeking) > lib.tar.zst
        let inner_zip = zip_of(&[("lib.tar.zst", &zstd(&tar_of(&refs)))]);
        let outer = gzip(&tar_of(&[("inner.jar", &inner_zip)]));
        let audit = audit_bytes("outer.tar.gz", &outer, Options::default());
        check(&audit, "nested");
        assert_eq!(audit.findings[0].location[..3], ["outer.tar.gz".to_string(), "inner.jar".into(), "lib.tar.zst".into()]);

        // Five tars deep: past the default bound of 4, reported, not read; a bound of 5 reads it.
        let mut nested = tar_of(&refs);
        for level in (1..5).rev() {
            nested = tar_of(&[(&format!("level{level}.tar"), &nested)]);
        }
        let audit = audit_bytes("level0.tar", &nested, Options::default());
        assert!(audit.findings.is_empty());
        assert_eq!(audit.issues.len(), 1, "{:?}", audit.issues);
        assert!(audit.issues[0].message.contains("nested deeper than the bound of 4"), "{:?}", audit.issues);
        let audit = audit_bytes("level0.tar", &nested, Options { max_depth: 5, ..Options::default() });
        check(&audit, "depth 5");
    }

    /// A Java class file: `0xCAFEBABE` (also Mach-O's fat magic), then minor 0, major 52 (Java 8).
    fn class_file(len: usize, text: &[u8]) -> Vec<u8> {
        let mut class = vec![0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 52];
        class.extend(text);
        class.resize(len.max(class.len()), 7);
        class
    }

    /// Only executables are read past their first bytes: a jar's classes are inflated only for
    /// their magic, while its JNI library (the real 1.0.1f libssl, netty-tcnative style), an ELF
    /// under a name that says nothing, and a fat Mach-O header are read whole.
    #[test]
    fn a_jar_is_read_for_its_executables_only() {
        let Some(dir) = shared() else { return };
        let lib = read(&dir, "lib/1.0.1f/libssl.so.1.0.0");
        let tool = read(&dir, "bin/openssl-1.0.1f");
        let big_class = class_file(4 << 20, b"OpenSSL 1.0.1f 6 Jan 2014\0");
        let mut fat = vec![0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 1];
        fat.extend(b"OpenSSL 1.0.1f 6 Jan 2014\0-DOPENSSL_THREADS");
        let mut entries: Vec<(String, Vec<u8>)> = (0..200).map(|i| (format!("com/example/C{i}.class"), class_file(3000, b""))).collect();
        entries.push(("com/example/Big.class".into(), big_class.clone()));
        entries.push(("META-INF/native/libnetty_tcnative_linux_x86_64.so".into(), lib.clone()));
        entries.push(("bin/helper".into(), tool.clone()));
        entries.push(("native/universal".into(), fat));
        let refs: Vec<(&str, &[u8])> = entries.iter().map(|(p, d)| (p.as_str(), d.as_slice())).collect();
        let jar = zip_of(&refs);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("netty.jar");
        std::fs::write(&path, &jar).unwrap();
        let on_disk = audit_path(&path, &Options::default());
        let in_stream = audit_bytes("app.tar.gz", &gzip(&tar_of(&[("lib/netty.jar", &jar)])), Options::default());
        for audit in [&on_disk, &in_stream] {
            assert!(audit.issues.is_empty(), "{:?}", audit.issues);
            let so = one(audit, "libnetty_tcnative_linux_x86_64.so");
            assert_eq!((so.kind, so.verdict), (Kind::Static, AuditVerdict::Vulnerable), "{so:?}");
            assert_eq!(one(audit, "bin/helper").verdict, AuditVerdict::Vulnerable);
            assert_eq!(one(audit, "native/universal").version, "1.0.1f");
            assert!(by_path(audit, ".class").is_empty(), "{:?}", audit.findings);
            assert_eq!(audit.findings.len(), 3, "{:?}", audit.findings);
            // The 4 MiB class and the 200 small ones: 512 bytes each at most.
            let executables = (lib.len() + tool.len() + 64) as u64;
            assert!(audit.bytes_scanned <= executables + 201 * 512, "{} bytes searched", audit.bytes_scanned);
        }
    }

    /// Go's `.a` pad odd members with NUL (the `ar` crate stopped there, issue 11); GNU `ar` keeps
    /// long names in a table. Both read whole, the copy after the pad found, no issue.
    #[test]
    fn go_and_gnu_static_archives() {
        let Some(dir) = shared() else { return };
        let lib = read(&dir, "lib/1.0.1f/libssl.so.1.0.0");
        let member = |name: &str, data: &[u8]| {
            let mut m = format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n", 0, 0, 0, 644, data.len()).into_bytes();
            m.extend(data);
            if data.len() % 2 == 1 {
                m.push(0);
            }
            m
        };
        let mut go = b"!<arch>\n".to_vec();
        go.extend(member("__.PKGDEF", b"go object linux amd64 go1.19.8\n!\n$$B\n"));
        go.extend(member("_go_.o", b"go object linux amd64 go1.19.8 X:none\n"));
        go.extend(member("_x001.o", &lib));
        assert!(go.contains(&0), "a NUL pad is in the archive");
        let audit = audit_bytes("crypto.a", &go, Options::default());
        assert!(audit.issues.is_empty(), "{:?}", audit.issues);
        assert_eq!(one(&audit, "_x001.o").version, "1.0.1f");

        let real_go = Path::new("/usr/lib/go-1.19/pkg/linux_amd64");
        if real_go.is_dir() {
            let audit = audit_path(real_go, &Options::default());
            assert!(audit.issues.is_empty(), "{:?}", &audit.issues[..audit.issues.len().min(5)]);
        } else {
            eprintln!("SKIPPING the real Go archives: {} missing", real_go.display());
        }

        let tmp = tempfile::tempdir().unwrap();
        let long = "libcrypto-with-a-name-longer-than-sixteen.so.1.0.0";
        std::fs::write(tmp.path().join(long), &lib).unwrap();
        match std::process::Command::new("ar").args(["rc", "libvendor.a", long]).current_dir(tmp.path()).status() {
            Ok(s) if s.success() => {
                let audit = audit_path(&tmp.path().join("libvendor.a"), &Options::default());
                assert!(audit.issues.is_empty(), "{:?}", audit.issues);
                assert_eq!(audit.findings.len(), 1, "{:?}", audit.findings);
                assert_eq!(audit.findings[0].location.last().unwrap(), long);
            }
            other => eprintln!("SKIPPING the binutils archive: `ar` not usable ({other:?})"),
        }
    }

    /// A text file naming the version is not read past its first bytes, however long.
    #[test]
    fn plain_files_are_read_only_when_executable() {
        let tmp = tempfile::tempdir().unwrap();
        let mut text = b"# changelog\n".to_vec();
        text.resize(3 << 20, b'x');
        text.extend(b"\nOpenSSL 1.0.1f 6 Jan 2014\n");
        std::fs::write(tmp.path().join("CHANGES"), &text).unwrap();
        let audit = audit_path(tmp.path(), &Options::default());
        assert!(audit.findings.is_empty() && audit.issues.is_empty());
        assert!(audit.bytes_scanned <= 512, "{} bytes searched", audit.bytes_scanned);
    }

    #[test]
    fn a_zip_in_a_stream_over_the_buffer_cap_is_reported() {
        let Some(dir) = shared() else { return };
        let lib = read(&dir, "lib/1.0.1f/libssl.so.1.0.0");
        let outer = tar_of(&[("big.zip", &zip_of(&[("libssl.so.1.0.0", &lib)]))]);
        let audit = audit_bytes("o.tar", &outer, Options { max_buffered_zip: 1024, ..Options::default() });
        assert!(audit.findings.is_empty());
        assert!(audit.issues[0].message.contains("larger than"), "{:?}", audit.issues);
    }
}

mod packages {
    use super::*;

    pub(super) fn rootfs(dir: &Path, status_version: &str) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let put = |rel: &str, bytes: &[u8]| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        };
        let lib = as_101e(read(dir, "lib/1.0.1f/libssl.so.1.0.0"));
        put("etc/os-release", b"PRETTY_NAME=\"Debian GNU/Linux 7 (wheezy)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"7\"\nID=debian\n");
        put(
            "var/lib/dpkg/status",
            format!(
                "Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.7.dfsg-13\n\n\
                 Package: libssl1.0.0\nStatus: install ok installed\nMulti-Arch: same\nSource: openssl\nVersion: {status_version}\n\n"
            )
            .as_bytes(),
        );
        put("var/lib/dpkg/info/libssl1.0.0:amd64.list", b"/.\n/usr\n/usr/lib/x86_64-linux-gnu/libssl.so.1.0.0\n");
        put("usr/lib/x86_64-linux-gnu/libssl.so.1.0.0", &lib);
        // The same bytes where no package owns them: the version string decides.
        put("usr/local/lib/libssl.so.1.0.0", &lib);
        tmp
    }

    #[test]
    fn debian_wheezy_patched_101e_is_fixed_by_distribution() {
        let Some(dir) = shared() else { return };
        let tmp = rootfs(&dir, "1.0.1e-2+deb7u5");
        let audit = audit_path(tmp.path(), &Options::default());
        let owned = one(&audit, "usr/lib/x86_64-linux-gnu/libssl.so.1.0.0");
        assert_eq!(owned.version, "1.0.1e");
        assert_eq!(owned.verdict, AuditVerdict::FixedByDistribution, "{owned:?}");
        let package = owned.package.as_ref().unwrap();
        assert_eq!((package.name.as_str(), package.version.as_str()), ("libssl1.0.0", "1.0.1e-2+deb7u5"));
        assert_eq!(package.advisory.as_deref(), Some("DSA-2896-1"));
        assert_eq!(package.distribution.as_deref(), Some("debian 7"));
        let loose = one(&audit, "usr/local/lib/libssl.so.1.0.0");
        assert_eq!(loose.verdict, AuditVerdict::Vulnerable);
        assert!(loose.package.is_none() && loose.reason.contains("version string decides"), "{loose:?}");
    }

    #[test]
    fn debian_wheezy_before_the_fix_is_vulnerable() {
        let Some(dir) = shared() else { return };
        let tmp = rootfs(&dir, "1.0.1e-2+deb7u4");
        let audit = audit_path(tmp.path(), &Options::default());
        let owned = one(&audit, "usr/lib/x86_64-linux-gnu/libssl.so.1.0.0");
        assert_eq!(owned.verdict, AuditVerdict::Vulnerable, "{owned:?}");
        assert!(owned.reason.contains("older than the fix"), "{}", owned.reason);
    }

    fn deb(lib: &[u8], version: &str) -> Vec<u8> {
        let control = format!("Package: libssl1.0.0\nVersion: {version}\nArchitecture: amd64\nDescription: SSL shared libraries\n");
        ar_of(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", &gzip(&tar_of(&[("./control", control.as_bytes())]))),
            ("data.tar.xz", &xz(&tar_of(&[("./usr/lib/x86_64-linux-gnu/libssl.so.1.0.0", lib)]))),
        ])
    }

    #[test]
    fn a_deb_is_decided_by_its_control() {
        let Some(dir) = shared() else { return };
        let lib = as_101e(read(&dir, "lib/1.0.1f/libssl.so.1.0.0"));
        let audit = audit_bytes("libssl1.0.0_1.0.1e-2+deb7u5_amd64.deb", &deb(&lib, "1.0.1e-2+deb7u5"), Options::default());
        let f = one(&audit, "libssl.so.1.0.0");
        assert_eq!(f.location[1], "data.tar.xz");
        assert_eq!(f.verdict, AuditVerdict::FixedByDistribution, "{f:?}");
        let audit = audit_bytes("old.deb", &deb(&lib, "1.0.1e-2+deb7u4"), Options::default());
        assert_eq!(one(&audit, "libssl.so.1.0.0").verdict, AuditVerdict::Vulnerable);
        // dpkg-deb itself reads what this test built, when Debian's dpkg is there.
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("p.deb");
        std::fs::write(&path, deb(&lib, "1.0.1e-2+deb7u5")).unwrap();
        if let Ok(out) = std::process::Command::new("dpkg-deb").args(["--field"]).arg(&path).arg("Version").output() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1.0.1e-2+deb7u5", "{}", String::from_utf8_lossy(&out.stderr));
        }
    }

    #[test]
    fn alpine_apk_database() {
        let Some(dir) = shared() else { return };
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("lib/apk/db")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/os-release"), "ID=alpine\nVERSION_ID=2.7.3\n").unwrap();
        std::fs::write(root.join("lib/apk/db/installed"), "P:libssl1.0\nV:1.0.1f-r0\nF:lib\nR:libssl.so.1.0.0\n\n").unwrap();
        std::fs::write(root.join("lib/libssl.so.1.0.0"), read(&dir, "lib/1.0.1f/libssl.so.1.0.0")).unwrap();
        let audit = audit_path(root, &Options::default());
        let f = one(&audit, "lib/libssl.so.1.0.0");
        assert_eq!(f.verdict, AuditVerdict::Vulnerable, "{f:?}");
        assert_eq!(f.package.as_ref().unwrap().fixed_version.as_deref(), Some("1.0.1g-r0"));
        assert!(f.reason.contains("unverified"), "{}", f.reason);
        // The Alpine 2.7 row is unverified: a package at its "fixed" version does not make a copy
        // whose bytes say 1.0.1f fixed-by-distribution; the version string decides.
        std::fs::write(root.join("lib/apk/db/installed"), "P:libssl1.0\nV:1.0.1g-r0\nF:lib\nR:libssl.so.1.0.0\n\n").unwrap();
        let audit = audit_path(root, &Options::default());
        let f = one(&audit, "lib/libssl.so.1.0.0");
        assert_eq!(f.verdict, AuditVerdict::Vulnerable, "{f:?}");
    }
}

mod images {
    use super::*;

    /// Two layers: the lower has a vulnerable libssl, tool and appliance daemon; the upper deletes
    /// the library (whiteout), replaces the tool with 1.0.1g and hides /opt/app (opaque folder).
    fn layers(dir: &Path) -> (Vec<u8>, Vec<u8>) {
        let f_lib = read(dir, "lib/1.0.1f/libssl.so.1.0.0");
        let f_tool = read(dir, "bin/openssl-1.0.1f");
        let g_tool = read(dir, "bin/openssl-1.0.1g");
        let tlsd = read(dir, "appliance/tlsd-static-1.0.1f");
        let lower = tar_of(&[
            ("usr/lib/libssl.so.1.0.0", &f_lib),
            ("usr/bin/openssl", &f_tool),
            ("opt/app/tlsd", &tlsd),
            ("srv/tlsd", &tlsd),
        ]);
        let upper = tar_of(&[("usr/lib/.wh.libssl.so.1.0.0", b""), ("usr/bin/openssl", &g_tool), ("opt/app/.wh..wh..opq", b"")]);
        (lower, upper)
    }

    pub(super) fn check(audit: &Audit, image: &str) {
        assert!(audit.issues.is_empty(), "{:?}", audit.issues);
        let names: Vec<&str> = audit.findings.iter().map(|f| f.location.last().unwrap().as_str()).collect();
        assert!(!names.iter().any(|n| n.contains("libssl") || n.contains("opt/app")), "deleted copies reported: {names:?}");
        let tool = one(audit, "usr/bin/openssl");
        assert_eq!((tool.version.as_str(), tool.verdict), ("1.0.1g", AuditVerdict::NotAffected));
        let kept = one(audit, "srv/tlsd");
        assert_eq!(kept.verdict, AuditVerdict::Vulnerable);
        assert_eq!(kept.image.as_deref(), Some(image));
        assert_eq!(audit.findings.len(), 2);
    }

    #[test]
    fn docker_save_applies_layers_in_manifest_order() {
        let Some(dir) = shared() else { return };
        let (lower, upper) = layers(&dir);
        let manifest = br#"[{"Config":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.json","RepoTags":["vendor/appliance:2.1"],"Layers":["aaaa/layer.tar","bbbb/layer.tar"]}]"#;
        // The upper layer first in the tarball and the manifest last: order comes from the manifest.
        let image = tar_of(&[("bbbb/layer.tar", &upper), ("aaaa/layer.tar", &lower), ("manifest.json", manifest)]);
        let audit = audit_bytes("appliance.tar", &image, Options::default());
        check(&audit, "vendor/appliance:2.1");
        let kept = one(&audit, "srv/tlsd");
        assert_eq!(kept.location, ["appliance.tar", "aaaa/layer.tar", "srv/tlsd"]);
    }

    pub(super) fn oci(dir: &Path) -> Vec<(String, Vec<u8>)> {
        use sha2_free::digest;
        let (lower, upper) = layers(dir);
        let (lower, upper) = (gzip(&lower), gzip(&upper));
        let (dl, du) = (digest(&lower), digest(&upper));
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"sha256:{}","size":2}},"layers":[{{"digest":"sha256:{dl}"}},{{"digest":"sha256:{du}"}}]}}"#,
            "c".repeat(64)
        );
        let dm = digest(manifest.as_bytes());
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"digest":"sha256:{dm}","annotations":{{"org.opencontainers.image.ref.name":"appliance:oci"}}}}]}}"#
        );
        vec![
            (format!("blobs/sha256/{du}"), upper),
            (format!("blobs/sha256/{dl}"), lower),
            (format!("blobs/sha256/{dm}"), manifest.into_bytes()),
            (format!("blobs/sha256/{}", "c".repeat(64)), b"{}".to_vec()),
            ("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
            ("index.json".into(), index.into_bytes()),
        ]
    }

    #[test]
    fn oci_layout_as_tar_and_as_directory() {
        let Some(dir) = shared() else { return };
        let files = oci(&dir);
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (p.as_str(), d.as_slice())).collect();
        let audit = audit_bytes("oci.tar", &tar_of(&refs), Options::default());
        check(&audit, "appliance:oci");
        assert!(one(&audit, "srv/tlsd").location[1].starts_with("sha256:"));

        let tmp = tempfile::tempdir().unwrap();
        for (path, bytes) in &files {
            let p = tmp.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        check(&audit_path(tmp.path(), &Options::default()), "appliance:oci");
    }

    /// Names for blobs: any 64 hex digits do (the walker trusts the layout's names, not a hash).
    mod sha2_free {
        pub fn digest(bytes: &[u8]) -> String {
            let mut h: u64 = 0xcbf29ce484222325;
            for b in bytes {
                h = (h ^ u64::from(*b)).wrapping_mul(0x100000001b3);
            }
            format!("{h:016x}").repeat(4)
        }
    }
}

/// rpm's database, built by Debian's real rpm tools at test time: `rpmbuild` makes a tiny `openssl`
/// package holding the real 1.0.1f libssl (its text rewritten to "1.0.1e" like RHEL's patched
/// build), `rpm -i --justdb` records it in an SQLite `rpmdb.sqlite`, and Berkeley DB's own
/// `db_load` turns the same header blobs into the hash `Packages` of RHEL/CentOS ≤ 8, which rpm's
/// `bdb_ro` backend must read back. Without the tools the tests print SKIPPING and pass.
mod rpm {
    use super::*;
    use bleedwatch_audit::pkgdb::{parse_rpmdb, PackageDb};
    use bleedwatch_audit::rpmdb::RpmDbKind;
    use std::process::Command;

    const LIB: &str = "usr/lib64/libssl.so.10";
    const CENTOS: &str = "CentOS release 6.5 (Final)\n";

    fn tool(names: &[&str]) -> Option<String> {
        names.iter().find(|n| Command::new(n).arg("--version").output().is_ok()).map(|n| n.to_string())
    }

    fn run(cmd: &mut Command) -> Vec<u8> {
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// `openssl-1.0.1e-RELEASE.x86_64.rpm` owning /usr/lib64/libssl.so.10, built in `work`.
    fn build_rpm(work: &Path, lib: &[u8], release: &str) -> PathBuf {
        build_package(work, lib, "openssl", None, release)
    }

    /// `NAME-1.0.1e-RELEASE.x86_64.rpm` (with `Epoch:` when given) owning /usr/lib64/libssl.so.10.
    fn build_package(work: &Path, lib: &[u8], name: &str, epoch: Option<u32>, release: &str) -> PathBuf {
        let top = work.join(format!("top-{name}-{release}"));
        std::fs::create_dir_all(top.join("SOURCES")).unwrap();
        std::fs::write(top.join("SOURCES/libssl.so.10"), lib).unwrap();
        let spec = top.join("openssl.spec");
        std::fs::write(
            &spec,
            format!(
                "Name: {name}\n{epoch}Version: 1.0.1e\nRelease: {release}\nSummary: SSL library\nLicense: OpenSSL\nSource0: libssl.so.10\n\
                 %description\ntest package\n%install\nmkdir -p %{{buildroot}}/usr/lib64\n\
                 install -m 755 %{{SOURCE0}} %{{buildroot}}/usr/lib64/libssl.so.10\n%files\n/usr/lib64/libssl.so.10\n",
                epoch = epoch.map(|e| format!("Epoch: {e}\n")).unwrap_or_default()
            ),
        )
        .unwrap();
        run(Command::new("rpmbuild")
            .args(["-bb", "--quiet", "--target", "x86_64", "--define"])
            .arg(format!("_topdir {}", top.display()))
            .args(["--define", "__strip /bin/true", "--define", "__os_install_post %{nil}", "--define", "debug_package %{nil}"])
            .args(["--define", "_build_id_links none"])
            .arg(&spec));
        top.join(format!("RPMS/x86_64/{name}-1.0.1e-{release}.x86_64.rpm"))
    }

    /// The rpm database (SQLite, rpm's default here) of a tree where that package is installed.
    fn sqlite_db(work: &Path, lib: &[u8], release: &str) -> Vec<u8> {
        install(work, &build_rpm(work, lib, release), release)
    }

    /// `rpm` installed (database only) into a fresh database named after `release`: its bytes.
    fn install(work: &Path, rpm: &Path, release: &str) -> Vec<u8> {
        let dbpath = work.join(format!("db-{release}"));
        std::fs::create_dir_all(&dbpath).unwrap();
        run(Command::new("rpm").args(["-i", "--justdb", "--nodeps", "--noscripts", "--dbpath"]).arg(&dbpath).arg(rpm));
        read(&dbpath, "rpmdb.sqlite")
    }

    /// CentOS 7 (os-release this time): the library is in openssl-libs, whose versions carry
    /// Epoch 1; 7.0 shipped the fix (1.0.1e-34), the 7.0 beta's 1.0.1e-23 did not.
    #[test]
    fn centos_7_openssl_libs_with_its_epoch() {
        let Some(lib) = tools_and_lib() else { return };
        let os_release = b"NAME=\"CentOS Linux\"\nVERSION=\"7 (Core)\"\nID=\"centos\"\nVERSION_ID=\"7\"\n";
        for (release, verdict) in [("34.el7", AuditVerdict::FixedByDistribution), ("23.el7", AuditVerdict::Vulnerable)] {
            let work = tempfile::tempdir().unwrap();
            let db = install(work.path(), &build_package(work.path(), &lib, "openssl-libs", Some(1), release), release);
            let root = tempfile::tempdir().unwrap();
            for (rel, bytes) in [("etc/os-release", &os_release[..]), (LIB, &lib), ("var/lib/rpm/rpmdb.sqlite", &db)] {
                let p = root.path().join(rel);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, bytes).unwrap();
            }
            let audit = audit_path(root.path(), &Options::default());
            let owned = one(&audit, LIB);
            assert_eq!(owned.verdict, verdict, "{owned:?}");
            let package = owned.package.as_ref().unwrap();
            assert_eq!((package.name.as_str(), package.version.clone()), ("openssl-libs", format!("1:1.0.1e-{release}")));
            assert_eq!(package.distribution.as_deref(), Some("centos 7"));
        }
    }

    /// The same header blobs as a Berkeley DB hash `Packages` (keys: hnum as 4 native-endian bytes;
    /// key 0 holds rpm's instance counter), written by `db_load`, checked by rpm's `bdb_ro`. Each
    /// row is stored `copies` times under consecutive keys (many hash pages and buckets).
    fn bdb_packages(work: &Path, sqlite: &[u8], page_size: u32, copies: u32) -> Vec<u8> {
        let dir = work.join(format!("bdb-{page_size}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("rpmdb.sqlite"), sqlite).unwrap();
        let rows = run(Command::new("sqlite3").arg(dir.join("rpmdb.sqlite")).arg("SELECT hnum, hex(blob) FROM Packages"));
        std::fs::remove_file(dir.join("rpmdb.sqlite")).unwrap();
        let escape = |bytes: &[u8]| bytes.iter().map(|b| format!("\\{b:02x}")).collect::<String>();
        let rows: Vec<(u32, Vec<u8>)> = String::from_utf8(rows)
            .unwrap()
            .lines()
            .map(|l| {
                let (hnum, hex) = l.split_once('|').unwrap();
                let blob = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
                (hnum.parse().unwrap(), blob)
            })
            .collect();
        assert!(!rows.is_empty());
        let mut dump = format!("{}\n{}\n", escape(&0u32.to_ne_bytes()), escape(&(rows.len() as u32).to_ne_bytes()));
        for (hnum, blob) in &rows {
            for copy in 0..copies {
                dump.push_str(&format!("{}\n{}\n", escape(&(hnum + copy * 1000).to_ne_bytes()), escape(blob)));
            }
        }
        std::fs::write(work.join("dump.txt"), dump).unwrap();
        let db_load = tool(&["db_load", "db5.3_load"]).unwrap();
        run(Command::new(db_load)
            .args(["-T", "-t", "hash", "-c"])
            .arg(format!("db_pagesize={page_size}"))
            .arg("-f")
            .arg(work.join("dump.txt"))
            .arg(dir.join("Packages")));
        let query = ["-qa", "--define", "_db_backend bdb_ro", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}\n", "--dbpath"];
        let names = run(Command::new("rpm").args(query).arg(&dir));
        assert!(String::from_utf8_lossy(&names).starts_with("openssl-1.0.1e-"), "rpm cannot read the Packages built");
        read(&dir, "Packages")
    }

    fn tools_and_lib() -> Option<Vec<u8>> {
        let dir = shared()?;
        if tool(&["rpmbuild"]).is_none() || tool(&["rpm"]).is_none() || tool(&["sqlite3"]).is_none() || tool(&["db_load", "db5.3_load"]).is_none() {
            eprintln!("SKIPPING: rpm, rpmbuild, sqlite3 or db_load missing (scripts/test-packages/audit.txt)");
            return None;
        }
        Some(as_101e(read(&dir, "lib/1.0.1f/libssl.so.1.0.0")))
    }

    /// A CentOS 6.5 root (no os-release then: `etc/redhat-release` says which) with the library
    /// owned by the package in `db` at `db_path`, and the same bytes unowned in /usr/local.
    fn centos_root(lib: &[u8], db_path: &str, db: &[u8]) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for (rel, bytes) in [("etc/redhat-release", CENTOS.as_bytes()), (LIB, lib), ("usr/local/lib64/libssl.so.10", lib), (db_path, db)] {
            let p = tmp.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        tmp
    }

    fn check_fixed(audit: &Audit) {
        assert!(audit.issues.is_empty(), "{:?}", audit.issues);
        let owned = one(audit, LIB);
        assert_eq!((owned.version.as_str(), owned.verdict), ("1.0.1e", AuditVerdict::FixedByDistribution), "{owned:?}");
        let package = owned.package.as_ref().unwrap();
        assert_eq!((package.manager.as_str(), package.name.as_str(), package.version.as_str()), ("rpm", "openssl", "1.0.1e-16.el6_5.7"));
        assert_eq!(package.advisory.as_deref(), Some("CESA-2014:0376"));
        assert_eq!(package.distribution.as_deref(), Some("centos 6.5"));
        assert!(owned.reason.contains("distribution from etc/redhat-release"), "{}", owned.reason);
        let loose = one(audit, "usr/local/lib64/libssl.so.10");
        assert_eq!(loose.verdict, AuditVerdict::Vulnerable);
        assert!(loose.package.is_none() && loose.reason.contains("version string decides"), "{loose:?}");
    }

    fn check_vulnerable(audit: &Audit) {
        let owned = one(audit, LIB);
        assert_eq!(owned.verdict, AuditVerdict::Vulnerable, "{owned:?}");
        assert_eq!(owned.package.as_ref().unwrap().version, "1.0.1e-16.el6_5.4");
        assert!(owned.reason.contains("older than the fix"), "{}", owned.reason);
    }

    #[test]
    fn centos_6_5_with_an_sqlite_rpmdb() {
        let Some(lib) = tools_and_lib() else { return };
        let work = tempfile::tempdir().unwrap();
        let fixed = sqlite_db(work.path(), &lib, "16.el6_5.7");
        check_fixed(&audit_path(centos_root(&lib, "var/lib/rpm/rpmdb.sqlite", &fixed).path(), &Options::default()));
        // rpm's newer place for it.
        check_fixed(&audit_path(centos_root(&lib, "usr/lib/sysimage/rpm/rpmdb.sqlite", &fixed).path(), &Options::default()));
        let before = sqlite_db(work.path(), &lib, "16.el6_5.4");
        check_vulnerable(&audit_path(centos_root(&lib, "var/lib/rpm/rpmdb.sqlite", &before).path(), &Options::default()));
    }

    /// SQLite itself rewrites the database with 512-byte pages (every header on an overflow
    /// chain) and 256 copies of the row (interior b-tree pages): each header is read.
    #[test]
    fn sqlite_overflow_chains_and_interior_pages() {
        let Some(lib) = tools_and_lib() else { return };
        let work = tempfile::tempdir().unwrap();
        let path = work.path().join("rpmdb.sqlite");
        std::fs::write(&path, sqlite_db(work.path(), &lib, "16.el6_5.7")).unwrap();
        let mut sql = String::from("PRAGMA journal_mode=DELETE; PRAGMA page_size=512; VACUUM;");
        for _ in 0..8 {
            sql.push_str("INSERT INTO Packages(blob) SELECT blob FROM Packages;");
        }
        run(Command::new("sqlite3").arg(&path).arg(sql));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(u16::from_be_bytes([bytes[16], bytes[17]]), 512);
        let mut db = PackageDb::default();
        assert_eq!(parse_rpmdb(RpmDbKind::Sqlite, &bytes, &["openssl".to_string()], &mut db), Ok(256));
        assert_eq!(db.owners.get(LIB).map(String::as_str), Some("openssl"));
        check_fixed(&audit_path(centos_root(&lib, "var/lib/rpm/rpmdb.sqlite", &bytes).path(), &Options::default()));
    }

    #[test]
    fn centos_6_5_with_a_berkeley_db_packages() {
        let Some(lib) = tools_and_lib() else { return };
        let work = tempfile::tempdir().unwrap();
        let fixed = sqlite_db(work.path(), &lib, "16.el6_5.7");
        // 512-byte pages put every header on a chain of overflow pages; 4096 is rpm's usual size
        // (the header on one overflow page); at 64 KiB the header is stored inline on its hash page.
        for (page_size, copies) in [(512, 300), (4096, 1), (65536, 1)] {
            let packages = bdb_packages(work.path(), &fixed, page_size, copies);
            let mut db = PackageDb::default();
            assert_eq!(parse_rpmdb(RpmDbKind::BerkeleyDb, &packages, &["openssl".to_string()], &mut db), Ok(copies as usize));
            check_fixed(&audit_path(centos_root(&lib, "var/lib/rpm/Packages", &packages).path(), &Options::default()));
        }
        let before = bdb_packages(&work.path().join("before"), &sqlite_db(work.path(), &lib, "16.el6_5.4"), 4096, 1);
        check_vulnerable(&audit_path(centos_root(&lib, "var/lib/rpm/Packages", &before).path(), &Options::default()));
    }

    #[test]
    fn docker_save_image_whose_upper_layer_updates_openssl() {
        let Some(lib) = tools_and_lib() else { return };
        let work = tempfile::tempdir().unwrap();
        let before = sqlite_db(work.path(), &lib, "16.el6_5.4");
        let fixed = bdb_packages(&work.path().join("fixed"), &sqlite_db(work.path(), &lib, "16.el6_5.7"), 4096, 1);
        // The base layer: CentOS 6.5 with the vulnerable package; the update rewrites the database.
        let lower = tar_of(&[("etc/redhat-release", CENTOS.as_bytes()), (LIB, &lib), ("var/lib/rpm/rpmdb.sqlite", &before)]);
        let upper = tar_of(&[("var/lib/rpm/.wh.rpmdb.sqlite", b""), ("var/lib/rpm/Packages", &fixed)]);
        let manifest = br#"[{"Config":"c.json","RepoTags":["centos:6.5"],"Layers":["l1/layer.tar","l2/layer.tar"]}]"#;
        let image = tar_of(&[("l1/layer.tar", &lower), ("l2/layer.tar", &upper), ("manifest.json", manifest)]);
        let audit = audit_bytes("centos.tar", &image, Options::default());
        assert!(audit.issues.is_empty(), "{:?}", audit.issues);
        let f = one(&audit, LIB);
        assert_eq!((f.verdict, f.image.as_deref()), (AuditVerdict::FixedByDistribution, Some("centos:6.5")), "{f:?}");
        let base = tar_of(&[("l1/layer.tar", &lower), ("manifest.json", br#"[{"RepoTags":["centos:base"],"Layers":["l1/layer.tar"]}]"#)]);
        check_vulnerable(&audit_bytes("base.tar", &base, Options::default()));
    }

    /// Every truncation and thousands of corrupted copies of the real databases: parsed or refused
    /// with an error, never a panic; through the walker, an issue saying the database was not read.
    #[test]
    fn truncated_and_corrupt_databases_are_issues() {
        let Some(lib) = tools_and_lib() else { return };
        let work = tempfile::tempdir().unwrap();
        let sqlite = sqlite_db(work.path(), &lib, "16.el6_5.7");
        let bdb = bdb_packages(work.path(), &sqlite, 512, 3);
        let names = vec!["openssl".to_string()];
        let mut seed = 0x2014_0407_u64;
        for (kind, real) in [(RpmDbKind::Sqlite, &sqlite), (RpmDbKind::BerkeleyDb, &bdb)] {
            assert!(parse_rpmdb(kind, real, &names, &mut PackageDb::default()).is_ok());
            for cut in (0..real.len()).step_by(97) {
                let _ = parse_rpmdb(kind, &real[..cut], &names, &mut PackageDb::default());
            }
            for _ in 0..3000 {
                let mut bytes = real.clone();
                for _ in 0..8 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let at = (seed as usize) % bytes.len();
                    bytes[at] = (seed >> 32) as u8;
                }
                let _ = parse_rpmdb(kind, &bytes, &names, &mut PackageDb::default());
            }
        }
        for (path, db) in [("var/lib/rpm/rpmdb.sqlite", &sqlite), ("var/lib/rpm/Packages", &bdb)] {
            for bytes in [&db[..db.len() / 2], &b"garbage"[..]] {
                let tree = centos_root(&lib, path, bytes);
                let audit = audit_path(tree.path(), &Options::default());
                let reported = audit.issues.iter().any(|i| i.message.contains("not read") && i.location.last().is_some_and(|l| l == path));
                assert!(reported, "{:?}", audit.issues);
                let owned = one(&audit, LIB);
                assert!(owned.package.is_none() && owned.verdict == AuditVerdict::Vulnerable, "{owned:?}");
            }
        }
    }

    #[test]
    fn a_database_in_a_stream_over_the_cap_is_not_read() {
        let Some(lib) = tools_and_lib() else { return };
        let big = vec![0u8; (64 << 20) + 1];
        let layer = tar_of(&[("etc/redhat-release", CENTOS.as_bytes()), (LIB, &lib), ("var/lib/rpm/Packages", &big)]);
        let audit = audit_bytes("layer.tar", &layer, Options::default());
        assert!(audit.issues.iter().any(|i| i.message.contains("larger than 64 MiB")), "{:?}", audit.issues);
        assert_eq!(one(&audit, LIB).verdict, AuditVerdict::Vulnerable);
    }
}

mod hostile {
    use super::*;

    #[test]
    fn path_traversal_names_are_only_names() {
        let Some(dir) = shared() else { return };
        let tmp = tempfile::tempdir().unwrap();
        let inside = tmp.path().join("in");
        std::fs::create_dir(&inside).unwrap();
        let lib = read(&dir, "lib/1.0.1f/libssl.so.1.0.0");
        let evil = tar_of(&[("../../escaped/libssl.so.1.0.0", &lib), ("/etc/evil-libssl.so", &lib)]);
        let path = inside.join("evil.tar");
        std::fs::write(&path, &evil).unwrap();
        let audit = audit_path(&path, &Options::default());
        assert_eq!(audit.findings.len(), 2, "{:?}", audit.findings);
        assert_eq!(audit.findings[0].location[1], "../../escaped/libssl.so.1.0.0");
        assert_eq!(audit.findings[1].location[1], "/etc/evil-libssl.so");
        // Nothing was written anywhere: the temporary folder holds only what the test put there.
        let all: Vec<_> = walk(tmp.path());
        assert_eq!(all, vec![path.clone()]);
        assert!(!Path::new("/etc/evil-libssl.so").exists());
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    /// 256 MiB of zeros compress to about 250 KiB: a ratio far past 100:1. With `elf`, the zeros
    /// follow an ELF magic, so the whole stream is an executable to search, not a file skipped
    /// after its first bytes.
    fn zeros_gzip(elf: bool) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        if elf {
            e.write_all(b"\x7fELF").unwrap();
        }
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..256 {
            e.write_all(&chunk).unwrap();
        }
        e.finish().unwrap()
    }

    #[test]
    fn zip_and_gzip_bombs_are_stopped() {
        let options = Options { ratio_floor: 8 << 20, ..Options::default() };
        let gz = zeros_gzip(true);
        let audit = audit_bytes("bomb.gz", &gz, options.clone());
        assert!(audit.issues.iter().any(|i| i.message.contains("decompression bomb")), "{:?}", audit.issues);
        assert!(audit.bytes_scanned < 16 << 20, "read {} bytes", audit.bytes_scanned);
        // Not an executable: decompressed no further than its first bytes, so never a bomb.
        let audit = audit_bytes("zeros.gz", &zeros_gzip(false), options.clone());
        assert!(audit.issues.is_empty(), "{:?}", audit.issues);
        assert!(audit.bytes_scanned <= 512, "read {} bytes", audit.bytes_scanned);

        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).large_file(true);
        w.start_file("zeros.bin", o).unwrap();
        w.write_all(b"\x7fELF").unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..256 {
            w.write_all(&chunk).unwrap();
        }
        let zip = w.finish().unwrap().into_inner();
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("bomb.zip");
        std::fs::write(&path, zip).unwrap();
        let audit = audit_path(&path, &options);
        assert!(audit.issues.iter().any(|i| i.message.contains("decompression bomb")), "{:?}", audit.issues);
        assert!(audit.bytes_scanned < 16 << 20, "read {} bytes", audit.bytes_scanned);
    }

    #[test]
    fn truncated_archives_get_a_clear_message_and_the_rest_is_read() {
        let Some(dir) = shared() else { return };
        let lib = read(&dir, "lib/1.0.1f/libssl.so.1.0.0");
        let tool = read(&dir, "bin/openssl-1.0.1f");
        let whole = gzip(&tar_of(&[("first/libssl.so.1.0.0", &lib), ("second/openssl", &tool)]));
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("a-cut.tar.gz"), &whole[..whole.len() * 3 / 4]).unwrap();
        std::fs::write(tmp.path().join("b-whole.tar.gz"), &whole).unwrap();
        let plain = tar_of(&[("first/libssl.so.1.0.0", &lib), ("second/openssl", &tool)]);
        std::fs::write(tmp.path().join("c-cut.tar"), &plain[..plain.len() - 100_000]).unwrap();
        let audit = audit_path(tmp.path(), &Options::default());
        let cut: Vec<_> = audit.issues.iter().map(|i| (i.location[1].as_str(), i.message.as_str())).collect();
        assert_eq!(cut.len(), 2, "{:?}", audit.issues);
        assert!(cut.iter().all(|(_, m)| m.contains("truncated")), "{cut:?}");
        assert_eq!(cut[0].0, "a-cut.tar.gz");
        assert_eq!(cut[1].0, "c-cut.tar");
        // The whole archive after the cut one is read in full.
        let whole_findings = audit.findings.iter().filter(|f| f.location[1] == "b-whole.tar.gz").count();
        assert_eq!(whole_findings, 2);
    }
}

mod threads {
    use super::*;

    fn put(root: &Path, rel: &str, bytes: &[u8]) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    /// Four threads say what one says, byte for byte: a root file system whose package database
    /// (read by the walking thread) decides a library another thread found, the real builds in
    /// many folders, archives, a truncated one, and an OCI layout whose blobs different threads read.
    #[test]
    fn four_threads_say_what_one_says() {
        let Some(dir) = shared() else { return };
        let tmp = packages::rootfs(&dir, "1.0.1e-2+deb7u5");
        let root = tmp.path();
        let builds = ["lib/1.0.1f/libssl.so.1.0.0", "lib/1.0.1g/libcrypto.so.1.0.0", "bin/openssl-1.0.1f", "appliance/tlsd-static-1.0.1f"];
        for i in 0..12 {
            for build in builds {
                put(root, &format!("opt/vendor{i}/{build}"), &read(&dir, build));
            }
            put(root, &format!("opt/vendor{i}/README"), b"OpenSSL 1.0.1f 6 Jan 2014 is not a copy in a text file\n");
        }
        let tool = read(&dir, "bin/openssl-1.0.1f");
        let archive = gzip(&tar_of(&[("bin/openssl", &tool)]));
        put(root, "srv/archive.tar.gz", &archive);
        put(root, "srv/cut.tar.gz", &archive[..archive.len() / 2]);
        let with = |jobs| audit_path(root, &Options { jobs, ..Options::default() });
        let (one_thread, four) = (with(1), with(4));
        assert_eq!(one_thread.findings, four.findings);
        assert_eq!(one_thread.issues, four.issues);
        assert_eq!(one_thread.bytes_scanned, four.bytes_scanned);
        // Each build counted once per folder, the archive's tool, the two root libraries.
        assert_eq!(four.findings.len(), 12 * builds.len() + 1 + 2, "{:#?}", four.findings);
        assert_eq!(one(&four, "usr/lib/x86_64-linux-gnu/libssl.so.1.0.0").verdict, AuditVerdict::FixedByDistribution);
        assert_eq!(four.issues.len(), 1, "{:?}", four.issues);
        assert_eq!(four.issues[0].location[1], "srv/cut.tar.gz", "{:?}", four.issues);
        let mut locations: Vec<_> = four.findings.iter().map(|f| f.location.clone()).collect();
        locations.sort();
        assert_eq!(locations, four.findings.iter().map(|f| f.location.clone()).collect::<Vec<_>>(), "findings come in location order");

        let layout = tempfile::tempdir().unwrap();
        for (path, bytes) in images::oci(&dir) {
            put(layout.path(), &path, &bytes);
        }
        images::check(&audit_path(layout.path(), &Options { jobs: 4, ..Options::default() }), "appliance:oci");
    }
}

/// Squashfs images made at test time by Debian's `mksquashfs` (squashfs-tools) from real folders.
mod squashfs {
    use super::*;
    use std::process::Command;

    /// `root` packed by mksquashfs with `compression`, as `out`.
    fn mksquashfs(root: &Path, out: &Path, compression: &str) -> Vec<u8> {
        let status = Command::new("mksquashfs")
            .arg(root)
            .arg(out)
            .args(["-comp", compression, "-noappend", "-quiet", "-no-progress", "-all-root", "-mkfs-time", "0", "-all-time", "0"])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("mksquashfs (Debian squashfs-tools, scripts/test-packages/audit.txt): {e}"));
        assert!(status.success(), "mksquashfs -comp {compression}: {status}");
        std::fs::read(out).unwrap()
    }

    fn put(root: &Path, rel: &str, bytes: &[u8]) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// A firmware root: the 1.0.1f libssl, the stripped static appliance daemon, the 1.0.1g tool,
    /// a tar.gz holding the 1.0.1f-nohb libssl, and what is skipped (a symlink, a fifo, a text).
    fn firmware_root(dir: &Path) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        put(root, "usr/lib/libssl.so.1.0.0", &read(dir, "lib/1.0.1f/libssl.so.1.0.0"));
        put(root, "usr/sbin/tlsd", &read(dir, "appliance/tlsd-static-1.0.1f"));
        put(root, "usr/bin/openssl", &read(dir, "bin/openssl-1.0.1g"));
        put(root, "opt/vendor/pkg.tar.gz", &gzip(&tar_of(&[("lib/libssl.so.1.0.0", &read(dir, "lib/1.0.1f-nohb/libssl.so.1.0.0"))])));
        put(root, "etc/motd", b"OpenSSL 1.0.1f 6 Jan 2014 inside\n");
        std::os::unix::fs::symlink("libssl.so.1.0.0", root.join("usr/lib/libssl.so")).unwrap();
        assert!(Command::new("mkfifo").arg(root.join("run-fifo")).status().unwrap().success());
        tmp
    }

    fn check_firmware(audit: &Audit, image: &str) {
        assert!(audit.issues.is_empty(), "{image}: {:?}", audit.issues);
        let lib = one(audit, "usr/lib/libssl.so.1.0.0");
        assert_eq!((lib.kind, lib.version.as_str(), lib.verdict), (Kind::SharedLibssl, "1.0.1f", AuditVerdict::Vulnerable), "{image}");
        assert_eq!(lib.location[lib.location.len() - 2..], [image.to_string(), "usr/lib/libssl.so.1.0.0".into()]);
        let tlsd = one(audit, "usr/sbin/tlsd");
        assert_eq!((tlsd.kind, tlsd.heartbeats, tlsd.verdict), (Kind::Static, Heartbeats::CompiledIn, AuditVerdict::Vulnerable), "{image}");
        let tool = one(audit, "usr/bin/openssl");
        assert_eq!((tool.kind, tool.version.as_str(), tool.verdict), (Kind::OpensslTool, "1.0.1g", AuditVerdict::NotAffected), "{image}");
        // The archive inside the image is opened as anywhere else.
        let nested: Vec<_> = audit.findings.iter().filter(|f| f.location.iter().any(|l| l == "opt/vendor/pkg.tar.gz")).collect();
        assert_eq!(nested.len(), 1, "{image}: {:#?}", audit.findings);
        let nested = nested[0];
        assert_eq!(nested.verdict, AuditVerdict::HeartbeatsDisabled, "{image}");
        assert_eq!(nested.location[nested.location.len() - 3..], [image.to_string(), "opt/vendor/pkg.tar.gz".into(), "lib/libssl.so.1.0.0".into()]);
        // The symlink and the fifo are skipped, not reported twice or read.
        assert_eq!(audit.findings.len(), 4, "{image}: {:#?}", audit.findings);
    }

    #[test]
    fn firmware_images_in_every_compression() {
        let Some(dir) = shared() else { return };
        let root = firmware_root(&dir);
        let out = tempfile::tempdir().unwrap();
        for compression in ["gzip", "xz", "zstd", "lz4"] {
            let path = out.path().join(format!("fw-{compression}.squashfs"));
            mksquashfs(root.path(), &path, compression);
            let audit = audit_path(&path, &Options::default());
            check_firmware(&audit, &path.display().to_string());
        }
        // LZO has no reader here: said so, nothing else.
        let path = out.path().join("fw-lzo.squashfs");
        mksquashfs(root.path(), &path, "lzo");
        let audit = audit_path(&path, &Options::default());
        assert!(audit.findings.is_empty());
        assert_eq!(audit.issues.len(), 1, "{:?}", audit.issues);
        assert!(audit.issues[0].message.contains("compressed with lzo: not read"), "{:?}", audit.issues);
    }

    #[test]
    fn a_squashfs_inside_a_tar_gz_up_to_the_buffer_cap() {
        let Some(dir) = shared() else { return };
        let root = firmware_root(&dir);
        let out = tempfile::tempdir().unwrap();
        let image = mksquashfs(root.path(), &out.path().join("rootfs.squashfs"), "xz");
        let update = gzip(&tar_of(&[("firmware/README", b"update 2.1\n"), ("firmware/rootfs.squashfs", &image)]));
        let audit = audit_bytes("update-2.1.tar.gz", &update, Options::default());
        check_firmware(&audit, "firmware/rootfs.squashfs");
        assert_eq!(one(&audit, "usr/sbin/tlsd").location, ["update-2.1.tar.gz", "firmware/rootfs.squashfs", "usr/sbin/tlsd"]);
        // Held in memory to be read (squashfs needs seeking), up to the zip cap.
        let audit = audit_bytes("update-2.1.tar.gz", &update, Options { max_buffered_zip: 64 << 10, ..Options::default() });
        assert!(audit.findings.is_empty(), "{:?}", audit.findings);
        assert_eq!(audit.issues.len(), 1, "{:?}", audit.issues);
        assert!(audit.issues[0].message.contains("squashfs image inside a stream larger than"), "{:?}", audit.issues);
        // An image counts as an archive for the depth bound.
        let audit = audit_bytes("update-2.1.tar.gz", &update, Options { max_depth: 1, ..Options::default() });
        assert!(audit.issues[0].message.contains("nested deeper than the bound of 1"), "{:?}", audit.issues);
    }

    #[test]
    fn a_debian_root_in_squashfs_is_decided_by_its_dpkg_status() {
        let Some(dir) = shared() else { return };
        let out = tempfile::tempdir().unwrap();
        for (version, verdict) in [("1.0.1e-2+deb7u5", AuditVerdict::FixedByDistribution), ("1.0.1e-2+deb7u4", AuditVerdict::Vulnerable)] {
            let root = super::packages::rootfs(&dir, version);
            let path = out.path().join(format!("wheezy-{version}.squashfs"));
            mksquashfs(root.path(), &path, "gzip");
            let audit = audit_path(&path, &Options::default());
            assert!(audit.issues.is_empty(), "{:?}", audit.issues);
            let owned = one(&audit, "usr/lib/x86_64-linux-gnu/libssl.so.1.0.0");
            assert_eq!((owned.version.as_str(), owned.verdict), ("1.0.1e", verdict), "{owned:?}");
            let package = owned.package.as_ref().unwrap();
            assert_eq!((package.name.as_str(), package.version.as_str()), ("libssl1.0.0", version));
            assert_eq!(package.distribution.as_deref(), Some("debian 7"));
            let loose = one(&audit, "usr/local/lib/libssl.so.1.0.0");
            assert!(loose.package.is_none() && loose.verdict == AuditVerdict::Vulnerable, "{loose:?}");
        }
    }

    /// Cut, corrupt and hostile images: one clear issue each, no panic, the next PATH still read,
    /// and nothing written.
    #[test]
    fn hostile_images_get_a_clear_issue() {
        let Some(dir) = shared() else { return };
        let root = firmware_root(&dir);
        let out = tempfile::tempdir().unwrap();
        let whole = mksquashfs(root.path(), &out.path().join("whole.squashfs"), "gzip");
        let hostile = tempfile::tempdir().unwrap();
        let mut corrupt_block_size = whole.clone();
        corrupt_block_size[12..16].copy_from_slice(&12345u32.to_le_bytes());
        let mut absurd_inode_count = whole.clone();
        absurd_inode_count[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("a-cut.squashfs", whole[..whole.len() * 3 / 4].to_vec(), "truncated: the superblock says"),
            ("b-superblock-only.squashfs", whole[..96].to_vec(), "truncated"),
            ("c-block-size.squashfs", corrupt_block_size, "corrupt: block size 12345"),
            ("d-inode-count.squashfs", absurd_inode_count, "inodes, the table holds"),
            ("e-magic-only.squashfs", b"hsqs".to_vec(), "shorter than the superblock"),
        ];
        for (name, bytes, _) in &cases {
            std::fs::write(hostile.path().join(name), bytes).unwrap();
        }
        std::fs::write(hostile.path().join("z-whole.squashfs"), &whole).unwrap();
        let audit = audit_path(hostile.path(), &Options::default());
        assert_eq!(audit.issues.len(), cases.len(), "{:#?}", audit.issues);
        for ((name, _, expected), issue) in cases.iter().zip(&audit.issues) {
            assert_eq!(issue.location[1], *name);
            assert!(issue.message.starts_with("squashfs image not opened: ") && issue.message.contains(expected), "{name}: {}", issue.message);
        }
        assert_eq!(audit.findings.iter().filter(|f| f.location[1] == "z-whole.squashfs").count(), 4);
        let mut left: Vec<_> = std::fs::read_dir(hostile.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        left.sort();
        assert_eq!(left.len(), cases.len() + 1, "nothing written beside the images: {left:?}");
    }

    /// Folders nested past the bound (backhand reads them recursively) are refused; at the bound
    /// they are read, in a test thread's small stack.
    #[test]
    fn deep_folders_are_refused_past_the_bound() {
        let Some(dir) = shared() else { return };
        let lib = read(&dir, "lib/1.0.1f/libssl.so.1.0.0");
        let out = tempfile::tempdir().unwrap();
        for (depth, opened) in [(bleedwatch_audit::squashfs::MAX_DEPTH - 1, true), (bleedwatch_audit::squashfs::MAX_DEPTH + 1, false)] {
            let root = tempfile::tempdir().unwrap();
            let rel = vec!["d"; depth].join("/") + "/libssl.so.1.0.0";
            put(root.path(), &rel, &lib);
            let path = out.path().join(format!("deep-{depth}.squashfs"));
            mksquashfs(root.path(), &path, "gzip");
            let audit = audit_path(&path, &Options::default());
            if opened {
                assert!(audit.issues.is_empty(), "{:?}", audit.issues);
                assert_eq!(one(&audit, "/d/libssl.so.1.0.0").verdict, AuditVerdict::Vulnerable);
            } else {
                assert!(audit.findings.is_empty());
                assert!(audit.issues[0].message.contains("folders nested deeper than"), "{:?}", audit.issues);
            }
        }
    }

    /// The fuzz seeds of real mksquashfs images (gzip and xz metadata), every byte flipped three
    /// ways and cut everywhere, through the whole walker: never a panic.
    #[test]
    fn mutated_real_images_never_panic() {
        let corpus = bleedwatch_testkit::fuzz_corpus_dir("audit_walk");
        for name in ["rootfs.squashfs", "rootfs-xz.squashfs"] {
            let image = std::fs::read(corpus.join(name)).unwrap();
            let audit = audit_bytes(name, &image, Options::default());
            assert_eq!(one(&audit, "usr/lib/libssl.so.1.0.0").verdict, AuditVerdict::FixedByDistribution, "{name}: the seed reads");
            for at in 0..image.len() {
                for value in [0, 0xff, image[at] ^ 1] {
                    let mut bad = image.clone();
                    bad[at] = value;
                    bleedwatch_audit::fuzz_audit(&bad);
                }
                bleedwatch_audit::fuzz_audit(&image[..at]);
            }
        }
    }

    /// A sparse 64 MiB "executable" packs into a few KiB: reading it stops at the image's budget.
    #[test]
    fn a_sparse_bomb_stops_at_the_budget() {
        let root = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(root.path().join("bomb")).unwrap();
        (&file).write_all(b"\x7fELF").unwrap();
        file.set_len(64 << 20).unwrap();
        let out = tempfile::tempdir().unwrap();
        let path = out.path().join("bomb.squashfs");
        let image = mksquashfs(root.path(), &path, "gzip");
        assert!(image.len() < 64 << 10, "{} bytes", image.len());
        let audit = audit_path(&path, &Options { ratio_floor: 1 << 20, ..Options::default() });
        assert!(audit.issues.iter().any(|i| i.message.contains("decompression bomb")), "{:?}", audit.issues);
        assert!(audit.bytes_scanned < 8 << 20, "{} bytes searched", audit.bytes_scanned);
    }
}

mod fuzz_corpus {
    #[test]
    fn audit_fuzz_corpus_replays_without_panic() {
        for input in bleedwatch_testkit::fuzz_corpus("audit_walk").unwrap() {
            bleedwatch_audit::fuzz_audit(&input);
        }
    }
}
