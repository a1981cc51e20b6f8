//! Package version comparison, one function per format: dpkg (deb-version(7)), rpm (rpmvercmp),
//! apk (apk-tools' version.c). Each decides "is the installed version at least the fixed one".

use std::cmp::Ordering;

/// The version formats of the package databases `audit` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Dpkg,
    Rpm,
    Apk,
}

pub fn compare(format: Format, a: &str, b: &str) -> Ordering {
    match format {
        Format::Dpkg => dpkg_compare(a, b),
        Format::Rpm => rpm_compare(a, b),
        Format::Apk => apk_compare(a, b),
    }
}

/// dpkg: `[epoch:]upstream[-revision]`, each part compared with `verrevcmp`.
pub fn dpkg_compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = dpkg_split(a);
    let (eb, ub, rb) = dpkg_split(b);
    ea.cmp(&eb).then_with(|| verrevcmp(ua, ub)).then_with(|| verrevcmp(ra, rb))
}

fn dpkg_split(v: &str) -> (u64, &str, &str) {
    let v = v.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(u64::MAX), rest),
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// dpkg's character order: `~` before everything (even the end), letters before non-letters.
fn dpkg_order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit prefix, character by character.
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = dpkg_order(a.get(i).copied().filter(|c| !c.is_ascii_digit()));
            let bc = dpkg_order(b.get(j).copied().filter(|c| !c.is_ascii_digit()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            if i < a.len() && !a[i].is_ascii_digit() {
                i += 1;
            }
            if j < b.len() && !b[j].is_ascii_digit() {
                j += 1;
            }
        }
        let (na, ni) = digits(a, i);
        let (nb, nj) = digits(b, j);
        i = ni;
        j = nj;
        match na.cmp(&nb) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    Ordering::Equal
}

/// The digit run at `start`, leading zeros dropped, compared as a number of any length.
fn digits(s: &[u8], start: usize) -> (Numeric<'_>, usize) {
    let mut end = start;
    while end < s.len() && s[end].is_ascii_digit() {
        end += 1;
    }
    let mut first = start;
    while first < end && s[first] == b'0' {
        first += 1;
    }
    (Numeric(&s[first..end]), end)
}

#[derive(PartialEq, Eq)]
struct Numeric<'a>(&'a [u8]);

impl Ord for Numeric<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.len().cmp(&other.0.len()).then_with(|| self.0.cmp(other.0))
    }
}

impl PartialOrd for Numeric<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// rpm: `[epoch:]version-release`, epoch numerically, then `rpmvercmp` on version and release.
pub fn rpm_compare(a: &str, b: &str) -> Ordering {
    let (ea, va, ra) = rpm_split(a);
    let (eb, vb, rb) = rpm_split(b);
    ea.cmp(&eb).then_with(|| rpmvercmp(va, vb)).then_with(|| match (ra, rb) {
        (Some(ra), Some(rb)) => rpmvercmp(ra, rb),
        // A fixed version with a release against an installed one without: compare what there is.
        _ => Ordering::Equal,
    })
}

fn rpm_split(v: &str) -> (u64, &str, Option<&str>) {
    let v = v.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) if e.bytes().all(|c| c.is_ascii_digit()) && !e.is_empty() => (e.parse().unwrap_or(u64::MAX), rest),
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((version, release)) => (epoch, version, Some(release)),
        None => (epoch, rest, None),
    }
}

/// rpm's rpmvercmp (rpmio/rpmvercmp.c): alternating alphabetic and numeric segments, separators
/// ignored, `~` sorts before anything, `^` after the base but before anything else, a numeric
/// segment is newer than an alphabetic one.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let is_sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while i < a.len() && is_sep(a[i]) {
            i += 1;
        }
        while j < b.len() && is_sep(b[j]) {
            j += 1;
        }
        // Tilde: older than everything, even the end.
        let at = a.get(i) == Some(&b'~');
        let bt = b.get(j) == Some(&b'~');
        if at || bt {
            if !at {
                return Ordering::Greater;
            }
            if !bt {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        // Caret: newer than the end, older than any other segment.
        let ac = a.get(i) == Some(&b'^');
        let bc = b.get(j) == Some(&b'^');
        if ac || bc {
            if i >= a.len() {
                return Ordering::Less;
            }
            if j >= b.len() {
                return Ordering::Greater;
            }
            if !ac {
                return Ordering::Greater;
            }
            if !bc {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if i >= a.len() || j >= b.len() {
            break;
        }
        let numeric = a[i].is_ascii_digit();
        let take = |s: &[u8], mut k: usize| {
            let start = k;
            while k < s.len() && (if numeric { s[k].is_ascii_digit() } else { s[k].is_ascii_alphabetic() }) {
                k += 1;
            }
            (start, k)
        };
        let (sa, ea) = take(a, i);
        let (sb, eb) = take(b, j);
        if sb == eb {
            // Segments of different types: numeric is newer.
            return if numeric { Ordering::Greater } else { Ordering::Less };
        }
        let ord = if numeric {
            let (na, _) = digits(a, sa);
            let (nb, _) = digits(b, sb);
            na.cmp(&nb)
        } else {
            a[sa..ea].cmp(&b[sb..eb])
        };
        if ord != Ordering::Equal {
            return ord;
        }
        i = ea;
        j = eb;
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

/// apk: `digits{.digits}[letter]{_suffix[digits]}[-r#]`. Suffixes `_alpha _beta _pre _rc` sort
/// before the plain version, `_cvs _svn _git _hg _p` after it; then the `-rN` package release.
pub fn apk_compare(a: &str, b: &str) -> Ordering {
    let (va, ra) = apk_split(a);
    let (vb, rb) = apk_split(b);
    apk_tokens(va).cmp(&apk_tokens(vb)).then(ra.cmp(&rb))
}

fn apk_split(v: &str) -> (&str, u64) {
    let v = v.trim();
    match v.rsplit_once("-r") {
        Some((version, release)) if release.bytes().all(|c| c.is_ascii_digit()) && !release.is_empty() => {
            (version, release.parse().unwrap_or(u64::MAX))
        }
        _ => (v, 0),
    }
}

/// One comparable token of an apk version; the derived order is apk's order.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ApkToken {
    PreSuffix(u8, u64),
    End,
    PostSuffix(u8, u64),
    Letter(u8),
    Number(u64),
}

fn apk_tokens(v: &str) -> Vec<ApkToken> {
    const PRE: [&str; 4] = ["alpha", "beta", "pre", "rc"];
    const POST: [&str; 5] = ["cvs", "svn", "git", "hg", "p"];
    let mut out = Vec::new();
    let mut rest = v;
    while !rest.is_empty() {
        let c = rest.as_bytes()[0];
        if c.is_ascii_digit() {
            let end = rest.bytes().position(|c| !c.is_ascii_digit()).unwrap_or(rest.len());
            out.push(ApkToken::Number(rest[..end].parse().unwrap_or(u64::MAX)));
            rest = &rest[end..];
        } else if c == b'.' {
            rest = &rest[1..];
        } else if c == b'_' {
            let body = &rest[1..];
            let end = body.bytes().position(|c| !c.is_ascii_alphabetic()).unwrap_or(body.len());
            let name = &body[..end];
            let after = &body[end..];
            let nend = after.bytes().position(|c| !c.is_ascii_digit()).unwrap_or(after.len());
            let n = after[..nend].parse().unwrap_or(0);
            if let Some(k) = PRE.iter().position(|p| *p == name) {
                out.push(ApkToken::PreSuffix(k as u8, n));
            } else {
                let k = POST.iter().position(|p| *p == name).unwrap_or(POST.len());
                out.push(ApkToken::PostSuffix(k as u8, n));
            }
            rest = &after[nend..];
        } else {
            out.push(ApkToken::Letter(c));
            rest = &rest[1..];
        }
    }
    out.push(ApkToken::End);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn dpkg_examples_from_deb_version() {
        // deb-version(7): "~~" < "~~a" < "~" < "" < "a".
        let order = ["1.0~~", "1.0~~a", "1.0~", "1.0", "1.0a"];
        for w in order.windows(2) {
            assert_eq!(dpkg_compare(w[0], w[1]), Less, "{} < {}", w[0], w[1]);
        }
        assert_eq!(dpkg_compare("1:1.0", "2.0"), Greater);
        assert_eq!(dpkg_compare("1.0e-2+deb7u5", "1.0e-2+deb7u4"), Greater);
        assert_eq!(dpkg_compare("1.0.1e-2+deb7u5", "1.0.1e-2+deb7u5"), Equal);
        assert_eq!(dpkg_compare("1.0.1-4ubuntu5.12", "1.0.1-4ubuntu5.11"), Greater);
        assert_eq!(dpkg_compare("1.0.1-4ubuntu5.9", "1.0.1-4ubuntu5.12"), Less);
        assert_eq!(dpkg_compare("1.0.1e-2", "1.0.1e-2+deb7u5"), Less);
        assert_eq!(dpkg_compare("1.0.1g-1", "1.0.1e-2+deb7u5"), Greater);
        assert_eq!(dpkg_compare("007", "7"), Equal);
    }

    #[test]
    fn rpm_examples_from_rpmvercmp_tests() {
        // rpm's tests/rpmvercmp.at
        assert_eq!(rpmvercmp("1.0", "1.0"), Equal);
        assert_eq!(rpmvercmp("1.0", "2.0"), Less);
        assert_eq!(rpmvercmp("2.0.1", "2.0"), Greater);
        assert_eq!(rpmvercmp("5.5p1", "5.5p2"), Less);
        assert_eq!(rpmvercmp("5.5p10", "5.5p1"), Greater);
        assert_eq!(rpmvercmp("10xyz", "10.1xyz"), Less);
        assert_eq!(rpmvercmp("xyz10", "xyz10.1"), Less);
        assert_eq!(rpmvercmp("1b.fc17", "1.fc17"), Less);
        assert_eq!(rpmvercmp("1.0~rc1", "1.0"), Less);
        assert_eq!(rpmvercmp("1.0~rc1", "1.0~rc2"), Less);
        assert_eq!(rpmvercmp("1.0^", "1.0"), Greater);
        assert_eq!(rpmvercmp("1.0^git1", "1.01"), Less);
        assert_eq!(rpmvercmp("2_0", "2_0"), Equal);
        assert_eq!(rpmvercmp("2.0", "2_0"), Equal);
        assert_eq!(rpm_compare("1.0.1e-16.el6_5.7", "1.0.1e-16.el6_5.4"), Greater);
        assert_eq!(rpm_compare("1.0.1e-15.el6", "1.0.1e-16.el6_5.7"), Less);
        assert_eq!(rpm_compare("1:1.0.1e-15.el6", "1.0.1e-16.el6_5.7"), Greater);
    }

    #[test]
    fn apk_examples() {
        assert_eq!(apk_compare("1.0.1g-r0", "1.0.1f-r0"), Greater);
        assert_eq!(apk_compare("1.0.1e-r3", "1.0.1e-r2"), Greater);
        assert_eq!(apk_compare("1.0_rc1", "1.0"), Less);
        assert_eq!(apk_compare("1.0_p1", "1.0"), Greater);
        assert_eq!(apk_compare("1.0.1", "1.0.1a"), Less);
        assert_eq!(apk_compare("1.0.10", "1.0.9"), Greater);
        assert_eq!(apk_compare("1.0.2_beta1", "1.0.1g"), Greater);
    }
}
