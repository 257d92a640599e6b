//! Credentials from a netrc file (`~/.netrc`, or the file `NETRC` names),
//! read as curl and go-getter read them, for `http(s)://` locations.
//!
//! - The file is looked up by each request's host, redirect hops
//!   included (`http` asks once per hop): its credentials go to the
//!   host named by a `machine` line (any port, as in curl) and to no other;
//!   a `default` entry serves hosts no `machine` names.
//! - Credentials in the URL (`user:pass@`) win, and so does an
//!   `Authorization` header the caller gives; with only a user in the URL,
//!   the netrc entry for that login gives the password, and an entry for
//!   another login is not used.
//! - The file is refused when group or others may read or write it, or
//!   when someone other than the effective user or root owns it: a
//!   password in a file everyone can read is already lost, and one others
//!   can write sends credentials where they choose. A symlink (dotfile
//!   managers make `~/.netrc` one) is followed; the file it reaches is
//!   checked.
//! - `s3://` locations never use it: they are signed with SigV4 instead.

use std::io::Read;
use std::path::{Path, PathBuf};

use url::{Host, Url};

use crate::error::{Error, Result};

/// Largest netrc file read: a real one is a few lines.
const MAX_SIZE: u64 = 1 << 20;

/// Which netrc file a fetch reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetrcFile {
    /// None: no credentials from a netrc file.
    Disabled,
    /// This file when it exists (the default: `NETRC`, else `$HOME/.netrc`).
    IfPresent(PathBuf),
    /// This file, which must exist (curl's `--netrc-file`).
    Required(PathBuf),
}

impl NetrcFile {
    /// The file curl and go-getter read: the one `NETRC` names, else
    /// `$HOME/.netrc`, used when it exists; disabled when neither variable
    /// is set.
    pub fn from_env() -> NetrcFile {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(path) = var("NETRC") {
            return NetrcFile::IfPresent(path.into());
        }
        match var("HOME") {
            Some(home) => NetrcFile::IfPresent(Path::new(&home).join(".netrc")),
            None => NetrcFile::Disabled,
        }
    }
}

/// One `machine` (or the `default`) entry of a netrc file.
#[derive(Clone, PartialEq, Eq)]
struct Entry {
    /// The host it is for; `None` for `default`.
    machine: Option<String>,
    login: Option<String>,
    password: Option<String>,
}

/// The password is a secret: shown as `***`.
impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("machine", &self.machine)
            .field("login", &self.login)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The netrc file of one fetch, read the first time a request needs it.
pub(crate) struct Lookup<'o> {
    file: &'o NetrcFile,
    entries: Option<Vec<Entry>>,
}

impl<'o> Lookup<'o> {
    pub(crate) fn new(file: &'o NetrcFile) -> Lookup<'o> {
        Lookup {
            file,
            entries: None,
        }
    }

    /// The `Authorization` header the netrc file gives a request for `hop`
    /// that already carries `headers`; none when the URL holds a password,
    /// a header already authorizes, no entry matches, or there is no file.
    pub(crate) fn authorization(
        &mut self,
        hop: &Url,
        headers: &[(String, String)],
    ) -> Result<Option<(String, String)>> {
        if hop.password().is_some()
            || !matches!(hop.scheme(), "http" | "https")
            || headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        {
            return Ok(None);
        }
        let Some(host) = hop.host().map(|h| match h {
            Host::Domain(d) => d.to_string(),
            Host::Ipv4(ip) => ip.to_string(),
            Host::Ipv6(ip) => ip.to_string(),
        }) else {
            return Ok(None);
        };
        let entries = match &mut self.entries {
            Some(entries) => entries,
            None => self.entries.insert(read(self.file)?),
        };
        let user = percent_decode(hop.username());
        let user = (!user.is_empty()).then_some(user);
        let Some(entry) = find(entries, &host, user.as_deref()) else {
            return Ok(None);
        };
        let login = user.as_deref().or(entry.login.as_deref()).unwrap_or("");
        let password = entry.password.as_deref().unwrap_or("");
        if login.is_empty() && password.is_empty() {
            return Ok(None);
        }
        let credentials = base64(format!("{login}:{password}").as_bytes());
        Ok(Some((
            "Authorization".to_string(),
            format!("Basic {credentials}"),
        )))
    }
}

/// The entry for `host` (the first `machine` naming it, else the
/// `default`), skipping those whose login is not `user` when the URL names
/// one.
fn find<'e>(entries: &'e [Entry], host: &str, user: Option<&str>) -> Option<&'e Entry> {
    let usable = |e: &&Entry| match (user, &e.login) {
        (Some(user), Some(login)) => user == login,
        _ => true,
    };
    entries
        .iter()
        .filter(|e| {
            e.machine
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(host))
        })
        .find(usable)
        .or_else(|| entries.iter().filter(|e| e.machine.is_none()).find(usable))
}

/// The entries of `file`, after checking who may read and write it.
fn read(file: &NetrcFile) -> Result<Vec<Entry>> {
    let (path, required) = match file {
        NetrcFile::Disabled => return Ok(Vec::new()),
        NetrcFile::IfPresent(path) => (path, false),
        NetrcFile::Required(path) => (path, true),
    };
    use rustix::fs::{FileType, Mode, OFlags};
    // Non-blocking, so that a FIFO put there cannot hang the open.
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    let fd =
        match rustix::fs::open(path.as_path(), flags, Mode::empty()) {
            Ok(fd) => fd,
            // The default file out of reach (no such file, a HOME that is not a
            // directory, or one a process that dropped privileges cannot enter)
            // holds no credentials for this process: as curl, go on without.
            Err(
                rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR | rustix::io::Errno::ACCESS,
            ) if !required => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("open netrc file", path)(e.into())),
        };
    let stat = rustix::fs::fstat(&fd).map_err(|e| Error::io("stat netrc file", path)(e.into()))?;
    let shown = path.display();
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(Error::Config(format!(
            "netrc file {shown} is not a regular file"
        )));
    }
    let mode = stat.st_mode & 0o7777;
    if mode & 0o066 != 0 {
        return Err(Error::Config(format!(
            "netrc file {shown} is readable or writable by group or others (mode {mode:04o}); \
             run chmod 600 {shown}"
        )));
    }
    let euid = rustix::process::geteuid().as_raw();
    if stat.st_uid != euid && stat.st_uid != 0 {
        return Err(Error::Config(format!(
            "netrc file {shown} is owned by uid {}, not by uid {euid} or root",
            stat.st_uid
        )));
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(MAX_SIZE + 1)
        .read_to_string(&mut text)
        .map_err(Error::io("read netrc file", path))?;
    if text.len() as u64 > MAX_SIZE {
        return Err(Error::Config(format!(
            "netrc file {shown} is larger than {MAX_SIZE} bytes"
        )));
    }
    Ok(parse(&text))
}

/// The entries of a netrc file: whitespace-separated tokens (`"`-quoted
/// with `\` escapes allowed), `#` to the end of the line a comment,
/// `macdef NAME` skipped up to the next blank line, `account` ignored.
fn parse(text: &str) -> Vec<Entry> {
    let mut tokens = Tokens { text, at: 0 };
    let mut entries: Vec<Entry> = Vec::new();
    while let Some(token) = tokens.next() {
        let new_entry = |machine| Entry {
            machine,
            login: None,
            password: None,
        };
        match token.as_str() {
            "machine" => entries.push(new_entry(Some(tokens.next().unwrap_or_default()))),
            "default" => entries.push(new_entry(None)),
            "login" | "password" | "account" => {
                let value = tokens.next();
                match (entries.last_mut(), token.as_str()) {
                    (Some(entry), "login") => entry.login = value,
                    (Some(entry), "password") => entry.password = value,
                    _ => {}
                }
            }
            "macdef" => {
                tokens.next();
                tokens.skip_macro();
            }
            _ => {}
        }
    }
    entries
}

/// The tokens of a netrc file.
struct Tokens<'t> {
    text: &'t str,
    at: usize,
}

impl<'t> Tokens<'t> {
    fn rest(&self) -> &'t str {
        &self.text[self.at..]
    }

    /// Skips the body of a `macdef`: the rest of its line, then every line
    /// up to and including the next blank one.
    fn skip_macro(&mut self) {
        let mut lines = self.rest().split_inclusive('\n');
        let mut skipped = lines.next().map_or(0, str::len);
        for line in lines {
            skipped += line.len();
            if line.trim().is_empty() {
                break;
            }
        }
        self.at += skipped;
    }

    fn next(&mut self) -> Option<String> {
        loop {
            let rest = self.rest();
            let start = rest.len() - rest.trim_start().len();
            self.at += start;
            if self.rest().starts_with('#') {
                let line = self.rest().find('\n').unwrap_or(self.rest().len());
                self.at += line;
                continue;
            }
            break;
        }
        let rest = self.rest();
        if rest.is_empty() {
            return None;
        }
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut token = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, 'n')) => token.push('\n'),
                        Some((_, 'r')) => token.push('\r'),
                        Some((_, 't')) => token.push('\t'),
                        Some((_, other)) => token.push(other),
                        None => {}
                    },
                    c => token.push(c),
                }
            }
            self.at += 1 + end;
            return Some(token);
        }
        let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        self.at += len;
        Some(rest[..len].to_string())
    }
}

/// `%XX` escapes of a URL's user name decoded (the user as netrc writes it).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding (RFC 4648), for the Basic credentials.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(machine: Option<&str>, login: Option<&str>, password: Option<&str>) -> Entry {
        Entry {
            machine: machine.map(str::to_string),
            login: login.map(str::to_string),
            password: password.map(str::to_string),
        }
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("martin:secret", "bWFydGluOnNlY3JldA=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
    }

    #[test]
    fn parses_curl_syntax() {
        let text = "# a comment line\n\
            machine a.example login alice password \"p w\\\"x\" account acct\n\
            macdef init\n\
            machine evil.example login mallory password stolen\n\
            \n\
            machine b.example\n  login bob # trailing comment\n  password b0b\n\
            default login anon password guest\n";
        assert_eq!(
            parse(text),
            vec![
                entry(Some("a.example"), Some("alice"), Some("p w\"x")),
                entry(Some("b.example"), Some("bob"), Some("b0b")),
                entry(None, Some("anon"), Some("guest")),
            ]
        );
    }

    #[test]
    fn finds_by_host_then_default_and_honours_the_url_user() {
        let entries = vec![
            entry(Some("pkg.example"), Some("alice"), Some("a")),
            entry(Some("PKG.example"), Some("bob"), Some("b")),
            entry(None, Some("anon"), Some("guest")),
        ];
        let find_login = |host, user| find(&entries, host, user).and_then(|e| e.login.clone());
        assert_eq!(find_login("pkg.example", None).as_deref(), Some("alice"));
        assert_eq!(
            find_login("pkg.example", Some("bob")).as_deref(),
            Some("bob")
        );
        assert_eq!(find_login("other.example", None).as_deref(), Some("anon"));
        assert_eq!(find_login("pkg.example", Some("carol")), None);
    }

    #[test]
    fn authorization_follows_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("netrc");
        std::fs::write(
            &path,
            "machine pkg.example login alice password s3cret\nmachine h2 login bob password pw\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = NetrcFile::Required(path);
        let mut lookup = Lookup::new(&file);
        let auth = |lookup: &mut Lookup, url: &str, headers: &[(String, String)]| {
            lookup
                .authorization(&Url::parse(url).unwrap(), headers)
                .unwrap()
                .map(|(_, v)| v)
        };
        let basic = |s: &str| Some(format!("Basic {}", base64(s.as_bytes())));
        assert_eq!(
            auth(&mut lookup, "https://pkg.example:8443/a.zip", &[]),
            basic("alice:s3cret")
        );
        assert_eq!(auth(&mut lookup, "https://other.example/a.zip", &[]), None);
        assert_eq!(
            auth(&mut lookup, "https://u:p@pkg.example/a.zip", &[]),
            None
        );
        assert_eq!(
            auth(&mut lookup, "https://alice@pkg.example/a.zip", &[]),
            basic("alice:s3cret")
        );
        assert_eq!(
            auth(&mut lookup, "https://carol@pkg.example/a.zip", &[]),
            None
        );
        let given = [("authorization".to_string(), "Bearer t".to_string())];
        assert_eq!(auth(&mut lookup, "https://pkg.example/a.zip", &given), None);
        assert_eq!(auth(&mut lookup, "http://h2/a.zip", &[]), basic("bob:pw"));
    }

    #[test]
    fn a_missing_file_is_fine_unless_required() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none");
        assert!(read(&NetrcFile::IfPresent(missing.clone()))
            .unwrap()
            .is_empty());
        // A HOME that is not a directory: out of reach, so absent too.
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(read(&NetrcFile::IfPresent(file.join(".netrc")))
            .unwrap()
            .is_empty());
        let err = read(&NetrcFile::Required(missing.clone())).unwrap_err();
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn url_users_are_percent_decoded() {
        assert_eq!(percent_decode("a%40b.c+d&e=f%zz%4"), "a@b.c+d&e=f%zz%4");
    }

    #[test]
    fn a_symlink_is_followed_and_the_file_it_reaches_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, "machine h login u password p\n").unwrap();
        let link = dir.path().join(".netrc");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let set_mode =
            |mode| std::fs::set_permissions(&real, std::fs::Permissions::from_mode(mode)).unwrap();
        set_mode(0o600);
        let entries = read(&NetrcFile::IfPresent(link.clone())).unwrap();
        assert_eq!(entries, vec![entry(Some("h"), Some("u"), Some("p"))]);
        set_mode(0o640);
        let err = read(&NetrcFile::IfPresent(link.clone())).unwrap_err();
        assert!(err.to_string().contains("mode 0640"), "{err}");
        let err = read(&NetrcFile::IfPresent(dir.path().to_path_buf())).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn debug_hides_the_password() {
        let shown = format!("{:?}", entry(Some("h"), Some("alice"), Some("s3cret")));
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
