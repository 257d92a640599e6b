//! The AWS credential provider chain, in the order AWS tools use:
//!
//! 1. `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
//! 2. the shared credentials and config files, profile `AWS_PROFILE`
//!    (default `default`);
//! 3. web identity: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, traded
//!    with STS (EKS IRSA);
//! 4. the container endpoint: `AWS_CONTAINER_CREDENTIALS_FULL_URI` or
//!    `_RELATIVE_URI` (ECS, EKS Pod Identity);
//! 5. the EC2 instance metadata service (IMDSv2), unless
//!    `AWS_EC2_METADATA_DISABLED=true`.
//!
//! Failures are reported as one line that names the source and never
//! contains a secret or a response body.

use std::collections::HashMap;
use std::path::PathBuf;

use super::remote;
use super::{Credentials, Env, S3Options};
use crate::proxy::ProxyConfig;

/// The settings of one profile, merged from the config file and the
/// credentials file (which wins).
pub(crate) struct Profile {
    name: String,
    /// Whether `AWS_PROFILE` named it (then it must exist).
    explicit: bool,
    found: bool,
    settings: HashMap<String, String>,
}

impl Profile {
    /// Reads profile `AWS_PROFILE` (or `default`) from the files.
    pub(crate) fn load(env: Env<'_>) -> Profile {
        let explicit = env("AWS_PROFILE");
        let name = explicit.clone().unwrap_or_else(|| "default".into());
        let home = env("HOME").map(PathBuf::from);
        let file = |var: &str, default: &str| {
            env(var)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
        };
        let mut found = false;
        let mut settings = HashMap::new();
        let config_section = if name == "default" {
            "default".to_string()
        } else {
            format!("profile {name}")
        };
        if let Some(text) = file("AWS_CONFIG_FILE", "config").and_then(|p| read(&p)) {
            if let Some(section) = section(&text, &config_section)
                .or_else(|| section(&text, &format!("profile {name}")))
            {
                found = true;
                settings.extend(section);
            }
        }
        if let Some(text) =
            file("AWS_SHARED_CREDENTIALS_FILE", "credentials").and_then(|p| read(&p))
        {
            if let Some(section) = section(&text, &name) {
                found = true;
                settings.extend(section);
            }
        }
        Profile {
            name,
            explicit: explicit.is_some(),
            found,
            settings,
        }
    }

    /// A setting of the profile, e.g. `region`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.settings
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

fn read(path: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The `key = value` settings of `[name]` in an INI-style AWS file, or
/// `None` without such a section. Indented lines (nested settings such as
/// `s3 =` blocks) are skipped.
fn section(text: &str, name: &str) -> Option<HashMap<String, String>> {
    let mut current: Option<bool> = None;
    let mut settings = None::<HashMap<String, String>>;
    for line in text.lines() {
        let indented = line.starts_with([' ', '\t']);
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let header = header.split_whitespace().collect::<Vec<_>>().join(" ");
            let wanted = header == name;
            if wanted {
                settings.get_or_insert_with(HashMap::new);
            }
            current = Some(wanted);
            continue;
        }
        if current != Some(true) || indented {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            if let Some(s) = settings.as_mut() {
                s.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
    }
    settings
}

/// Runs the chain; `Err` is why no credentials were found.
pub(crate) fn lookup(
    env: Env<'_>,
    profile: &Profile,
    options: &S3Options,
    region: &str,
    proxies: &ProxyConfig,
) -> Result<Credentials, String> {
    match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            return Ok(Credentials::new(id, secret, env("AWS_SESSION_TOKEN")))
        }
        (Some(_), None) => {
            return Err("AWS_ACCESS_KEY_ID is set without AWS_SECRET_ACCESS_KEY".into())
        }
        (None, Some(_)) => {
            return Err("AWS_SECRET_ACCESS_KEY is set without AWS_ACCESS_KEY_ID".into())
        }
        (None, None) => {}
    }
    if let (Some(id), Some(secret)) = (
        profile.get("aws_access_key_id"),
        profile.get("aws_secret_access_key"),
    ) {
        let token = profile.get("aws_session_token").map(str::to_string);
        return Ok(Credentials::new(id, secret, token));
    }
    if profile.explicit && !profile.found {
        return Err(format!(
            "AWS profile {:?} is in neither the credentials nor the config file",
            profile.name
        ));
    }
    if let Some(token_file) = env("AWS_WEB_IDENTITY_TOKEN_FILE") {
        let role =
            env("AWS_ROLE_ARN").ok_or("AWS_WEB_IDENTITY_TOKEN_FILE is set without AWS_ROLE_ARN")?;
        let session = env("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "zipdeploy".into());
        let sts = match &options.sts_endpoint {
            Some(url) => url.clone(),
            None => match env("AWS_ENDPOINT_URL_STS").or_else(|| env("AWS_ENDPOINT_URL")) {
                Some(e) => super::parse_endpoint(&e).map_err(|_| {
                    "AWS_ENDPOINT_URL_STS or AWS_ENDPOINT_URL is not an http(s) URL".to_string()
                })?,
                None => url::Url::parse(&format!("https://sts.{region}.amazonaws.com/"))
                    .map_err(|e| e.to_string())?,
            },
        };
        return remote::web_identity(&sts, &PathBuf::from(token_file), &role, &session, proxies)
            .map_err(|e| format!("web identity credentials: {e}"));
    }
    let full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    let relative = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    if full.is_some() || relative.is_some() {
        let token = match env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
            Some(path) => Some(
                std::fs::read_to_string(&path)
                    .map_err(|e| format!("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: {e}"))?
                    .trim()
                    .to_string(),
            ),
            None => env("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
        };
        let url = remote::container_url(
            full.as_deref(),
            relative.as_deref(),
            options.container_base.as_ref(),
        )?;
        return remote::container(&url, token.as_deref(), proxies)
            .map_err(|e| format!("container credentials: {e}"));
    }
    if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(NONE_FOUND.to_string() + " (instance metadata disabled)");
    }
    let imds = match &options.imds_base {
        Some(url) => url.clone(),
        None => match env("AWS_EC2_METADATA_SERVICE_ENDPOINT") {
            Some(e) => super::parse_endpoint(&e).map_err(|_| {
                "AWS_EC2_METADATA_SERVICE_ENDPOINT is not an http(s) URL".to_string()
            })?,
            None => url::Url::parse(remote::IMDS_BASE).map_err(|e| e.to_string())?,
        },
    };
    remote::instance_metadata(&imds, proxies)
        .map_err(|e| format!("{NONE_FOUND}; instance metadata: {e}"))
}

const NONE_FOUND: &str = "no AWS credentials in the environment, the shared files, \
    web identity or container settings";

#[cfg(test)]
mod tests {
    use super::*;

    /// [`lookup`] in `us-east-1`, without proxies, in the environment `vars`
    /// (and the profile it selects).
    fn lookup_in(vars: &[(&str, String)], options: &S3Options) -> Result<Credentials, String> {
        let env = env_of(vars);
        lookup(
            &env,
            &Profile::load(&env),
            options,
            "us-east-1",
            &ProxyConfig::none(),
        )
    }

    fn env_of<'a>(vars: &'a [(&'a str, String)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn environment_first_then_profile_files() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().display().to_string();
        std::fs::create_dir(dir.path().join(".aws")).unwrap();
        std::fs::write(
            dir.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = s-default\n\
             # comment\n[ci]\naws_access_key_id=AKCI\naws_secret_access_key=s-ci\naws_session_token=t-ci\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(".aws/config"),
            "[default]\nregion = us-west-2\n[profile ci]\nregion = eu-north-1\ns3 =\n  addressing_style = path\n",
        )
        .unwrap();
        let options = S3Options::default();

        let vars = [
            ("HOME", home.clone()),
            ("AWS_ACCESS_KEY_ID", "AKENV".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "s-env".to_string()),
            ("AWS_SESSION_TOKEN", "t-env".to_string()),
        ];
        let env = env_of(&vars);
        let profile = Profile::load(&env);
        let c = lookup(&env, &profile, &options, "us-east-1", &ProxyConfig::none()).unwrap();
        assert_eq!(c, Credentials::new("AKENV", "s-env", Some("t-env".into())));
        assert_eq!(profile.get("region"), Some("us-west-2"));

        let vars = [("HOME", home.clone())];
        let c = lookup_in(&vars, &options).unwrap();
        assert_eq!(c, Credentials::new("AKDEFAULT", "s-default", None));

        let vars = [("HOME", home.clone()), ("AWS_PROFILE", "ci".to_string())];
        let env = env_of(&vars);
        let profile = Profile::load(&env);
        let c = lookup(&env, &profile, &options, "us-east-1", &ProxyConfig::none()).unwrap();
        assert_eq!(c, Credentials::new("AKCI", "s-ci", Some("t-ci".into())));
        assert_eq!(profile.get("region"), Some("eu-north-1"));
        assert_eq!(
            profile.get("addressing_style"),
            None,
            "nested settings skipped"
        );

        let vars = [
            ("HOME", home.clone()),
            ("AWS_PROFILE", "missing".to_string()),
        ];
        let err = lookup_in(&vars, &options).unwrap_err();
        assert!(err.contains("\"missing\""), "{err}");

        let moved = dir.path().join("elsewhere");
        std::fs::write(
            &moved,
            "[default]\naws_access_key_id=AKFILE\naws_secret_access_key=s-file\n",
        )
        .unwrap();
        let vars = [
            ("HOME", "/nonexistent".to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", moved.display().to_string()),
        ];
        let c = lookup_in(&vars, &options).unwrap();
        assert_eq!(c.access_key_id, "AKFILE");
    }

    #[test]
    fn half_configured_environment_is_an_error_without_secrets() {
        let vars = [("AWS_SECRET_ACCESS_KEY", "s-only-secret".to_string())];
        let err = lookup_in(&vars, &S3Options::default()).unwrap_err();
        assert!(err.contains("without AWS_ACCESS_KEY_ID"), "{err}");
        assert!(!err.contains("s-only-secret"));
    }

    #[test]
    fn web_identity_before_the_container_and_sts_from_aws_endpoint_url() {
        use super::super::remote::tests::{serve, JSON};
        let (sts, _) = serve(|r| {
            let ok = r.path == "/" && r.body.contains("RoleSessionName=zipdeploy");
            let xml = "<Credentials><AccessKeyId>ASIASTS</AccessKeyId>\
                       <SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken></Credentials>";
            (if ok { 200 } else { 400 }, xml.into())
        });
        let (container, seen) = serve(|_| (200, JSON.into()));
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "jwt").unwrap();
        let options = S3Options {
            container_base: Some(container.clone()),
            ..S3Options::default()
        };
        let mut vars = vec![
            ("HOME", "/nonexistent".to_string()),
            (
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "/v2/creds".to_string(),
            ),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token.display().to_string()),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r".to_string()),
            ("AWS_ENDPOINT_URL", sts.to_string()),
        ];
        let c = lookup_in(&vars, &options).unwrap();
        assert_eq!(c.access_key_id, "ASIASTS");
        assert!(seen.lock().unwrap().is_empty(), "web identity came first");

        vars.retain(|(n, _)| !n.starts_with("AWS_WEB") && *n != "AWS_ROLE_ARN");
        let c = lookup_in(&vars, &options).unwrap();
        assert_eq!(c.access_key_id, "ASIAEXAMPLE");
        assert_eq!(seen.lock().unwrap()[0].path, "/v2/creds");
    }

    #[test]
    fn nothing_configured_and_metadata_disabled() {
        let vars = [
            ("HOME", "/nonexistent".to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ];
        let err = lookup_in(&vars, &S3Options::default()).unwrap_err();
        assert!(err.contains("no AWS credentials"), "{err}");
    }
}
