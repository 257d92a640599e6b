//! Reading the recipes: just enough YAML (through python3's yaml module),
//! HCL, Dockerfile and systemd unit syntax to get each container's command,
//! environment, user and mounts.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::recipe;

/// uid and gid of a user in this Debian's passwd (the images' users).
pub fn user_ids(name: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == name)
        .map(|f| (f[2].parse().unwrap(), f[3].parse().unwrap()))
        .unwrap_or_else(|| panic!("no user {name}"))
}

/// `["a", "b"]` (JSON-style strings without escapes).
pub fn string_list(text: &str) -> Vec<String> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or_else(|| panic!("not a list: {text}"));
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| unquote(s).to_string())
        .collect()
}

pub fn unquote(s: &str) -> &str {
    s.trim()
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not a string: {s}"))
}

/// The runtime stage of examples/Dockerfile: ENTRYPOINT, CMD, USER, ENV.
pub struct Image {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub user: String,
    pub env: Vec<(String, String)>,
    pub cli: String,
}

pub fn dockerfile() -> Image {
    let text = std::fs::read_to_string(recipe("Dockerfile")).unwrap();
    let joined = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let stages: Vec<&str> = joined.split("\nFROM ").collect();
    let runtime = stages.last().unwrap();
    let mut image = Image {
        entrypoint: vec![],
        cmd: vec![],
        user: "root".into(),
        env: vec![],
        cli: String::new(),
    };
    for line in runtime.lines() {
        let (instr, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
        match instr {
            "ENTRYPOINT" => image.entrypoint = string_list(rest),
            "CMD" => image.cmd = string_list(rest),
            "USER" => image.user = rest.trim().into(),
            "ENV" => {
                for pair in rest.split_whitespace() {
                    let (k, v) = pair.split_once('=').expect("ENV k=v");
                    image.env.push((k.into(), v.into()));
                }
            }
            "COPY" if rest.contains("--from=build") => {
                image.cli = rest.split_whitespace().last().unwrap().into();
            }
            _ => {}
        }
    }
    image
}

/// A YAML file flattened to `a.b.0.c` → scalar, by python3's yaml module.
pub fn yaml(path: &Path) -> BTreeMap<String, String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, yaml\n\
             def walk(p, v):\n\
             \x20   if isinstance(v, dict):\n\
             \x20       print('.'.join(p) + '\\t{}') if not v else None\n\
             \x20       for k, x in v.items(): walk(p + [str(k)], x)\n\
             \x20   elif isinstance(v, list):\n\
             \x20       for i, x in enumerate(v): walk(p + [str(i)], x)\n\
             \x20   else: print('.'.join(p) + '\\t' + ('' if v is None else str(v)))\n\
             walk([], yaml.safe_load(open(sys.argv[1])))\n",
        )
        .arg(path)
        .output()
        .expect("python3 runs (with python3-yaml)");
    assert!(
        out.status.success(),
        "{} does not parse: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('\t').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The values at `prefix.0`, `prefix.1`, …
pub fn yaml_list(doc: &BTreeMap<String, String>, prefix: &str) -> Vec<String> {
    (0..)
        .map_while(|i| doc.get(&format!("{prefix}.{i}")).cloned())
        .collect()
}

/// The index of the list item under `prefix` whose `key` is `value`.
pub fn yaml_find(doc: &BTreeMap<String, String>, prefix: &str, key: &str, value: &str) -> String {
    (0..100)
        .map(|i| format!("{prefix}.{i}"))
        .find(|item| doc.get(&format!("{item}.{key}")).map(String::as_str) == Some(value))
        .unwrap_or_else(|| panic!("no {prefix}[{key}={value}]"))
}

/// The HCL subset of examples/recipes/nomad.hcl flattened: `block "label" {`
/// opens `block.label`, `key = value` gives `path.key` → value as written.
pub fn hcl(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut scope: Vec<String> = Vec::new();
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "}" {
            scope
                .pop()
                .unwrap_or_else(|| panic!("line {}: unbalanced }}", n + 1));
        } else if let Some((key, value)) = line.split_once(" = ").or(line.split_once("= ")) {
            let key = key.trim();
            out.insert(
                scope
                    .iter()
                    .chain([&key.to_string()])
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("."),
                value.trim().to_string(),
            );
        } else if let Some(head) = line.strip_suffix('{') {
            let name = head
                .split_whitespace()
                .map(|w| w.trim_matches('"'))
                .collect::<Vec<_>>()
                .join(".");
            scope.push(name);
        } else {
            panic!("line {}: not in the HCL subset: {line}", n + 1);
        }
    }
    assert!(scope.is_empty(), "unclosed blocks: {scope:?}");
    out
}

/// The `[Service]` section of a systemd unit, in order (keys repeat).
pub fn unit_service(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut section = "";
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]" {
            let (k, v) = line.split_once('=').unwrap();
            out.push((k.to_string(), v.to_string()));
        }
    }
    out
}
