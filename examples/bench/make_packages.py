#!/usr/bin/env python3
"""Generate the benchmark packages of zipdeploy, deterministically.

    python3 examples/bench/make_packages.py [--out DIR] [--seed N] [--only php-app,assets,tiny,php-app-bsdtar] [--force]

Four packages, shaped like what zipdeploy is used for:

  php-app.zip  20,000 small source files (200 B .. 30 KB, median ~4 KB) of a PHP web
               application: an app/ skeleton, config, routes, views, JS/CSS and a deep
               vendor/<vendor>/<package>/ tree; ~150 MB uncompressed, all DEFLATED,
               ~50 MB zipped, with an explicit entry for every directory (like `zip -r`).
  assets.zip   40 large files of 1 .. 40 MB, ~600 MiB in all: NDJSON / CSV / log text
               (DEFLATED, a few STORED) and incompressible "media", fonts and blobs
               (media mostly STORED, the rest DEFLATED); ~400 MB zipped.
  tiny.zip     10 files, a few KB: the start-up cost of each tool.
  php-app-bsdtar.zip
               php-app's tree written again by `bsdtar --format zip` (libarchive):
               every entry's sizes and CRC follow its data (a data descriptor, as
               Go's archive/zip, jar and Node's archiver write them too).  Needs
               unzip and bsdtar, and is not byte-identical across filesystems
               (bsdtar stores entries in directory order).
  many.zip     200,000 entries (files and their directories) of a node_modules tree:
               packages, scoped packages and nested node_modules, tiny files (20 B ..
               2 KB, skewed small), all DEFLATED; ~90 MB zipped, ~86 MB uncompressed.
               Measures memory per entry.

Everything (names, order, content, sizes, timestamps, modes) derives from the seed, and
each package has its own random stream, so `--only` does not change a package.  With the
same Python and zlib the archives are byte-identical (php-app-bsdtar: the same tree).  Compression is zlib level 6.

Writes DIR/<name>.zip and DIR/packages.tsv (name, zip bytes, entries, files, uncompressed
bytes, sha256).  The tsv's first line records the generator version and seed: when it
matches and the zips are there with the recorded sizes, nothing is regenerated (use
--force to regenerate anyway).  DIR defaults to $CARGO_TARGET_DIR/bench/pkgs, else
<repo>/target/bench/pkgs.  A full generation takes about 1-2 minutes on 2 cores.
"""
import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import time
import zipfile
import zlib

GENERATOR_VERSION = 2  # 2: the many package
DEFAULT_SEED = 20240517
PACKAGES = ("php-app", "assets", "tiny", "php-app-bsdtar", "many")
# package -> the package whose tree it writes again with another writer
DERIVED = {"php-app-bsdtar": "php-app"}
MIB = 1 << 20

MTIME = (2024, 5, 17, 12, 0, 0)
S_IFREG, S_IFDIR = 0o100000, 0o040000
MSDOS_DIR = 0x10


def default_out():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(repo, "target")
    return os.path.join(target, "bench", "pkgs")


# --------------------------------------------------------------------------------------
# text material
# --------------------------------------------------------------------------------------
NOUNS = """account address agent alert amount archive article asset attachment audit
backup balance batch billing block booking bucket budget bundle cache calendar campaign
card catalog category channel checkout client code comment company config connection
contact container content context contract coupon credential currency customer dashboard
delivery device discount document domain draft email employee endpoint entity event
export feature feed field file filter folder form gateway group handler header history
image import inventory invoice item job journal key label language ledger license limit
link listing locale location lock log member menu message metric module note notice
offer option order owner package page parser partner payment payload period permission
plan policy post price product profile project promotion provider queue quota rate
record region release report request resource response result review role route rule
schedule schema scope search section segment sender session setting shipment signature
slot snapshot source status stock storage store subscription supplier tag task tax team
template tenant theme thread ticket token topic transaction transfer upload user vendor
version view voucher warehouse webhook widget workflow zone""".split()
VERBS = """apply build calculate cancel check clear close collect compile compute create
decode delete dispatch encode ensure export fetch filter find flush format generate get
handle has import index init invalidate is load lock merge normalize notify open parse
persist prepare process publish push queue read refresh register reload remove render
replace reset resolve restore resume retry save schedule send serialize set sort split
start stop store sync transform translate unlock update upload validate verify write""".split()
ADJS = """active async cached current default deferred empty expired external final
global hidden internal invalid last lazy local main next optional pending primary
private public raw readonly remote required shared signed stale strict temporary
unique valid visible""".split()
VENDORS = """acme bluefin brightline cobalt corvid driftwood emberly fernway foxglove
granite harbor ironbark juniper kestrel lumen maple meridian northwind oakridge orchid
pinecrest quartz redwood saltmarsh sequoia silverleaf summit thistle tidewater
willowby""".split()
SCALARS = ["string", "int", "bool", "float", "array", "?string", "?int", "mixed"]
RETURNS = SCALARS + ["void", "self", "static", "iterable", "?array"]


class Words:
    """Identifier and prose helpers over one random stream."""

    def __init__(self, rng):
        self.rng = rng

    def noun(self):
        return self.rng.choice(NOUNS)

    def cls(self, k=None):
        r = self.rng
        k = k or r.choice((1, 2, 2, 3))
        parts = [r.choice(NOUNS).capitalize() for _ in range(k)]
        if r.random() < 0.3:
            parts.insert(0, r.choice(ADJS).capitalize())
        return "".join(parts)

    def var(self):
        r = self.rng
        if r.random() < 0.5:
            return r.choice(NOUNS)
        return r.choice(NOUNS) + r.choice(NOUNS).capitalize()

    def method(self):
        r = self.rng
        return r.choice(VERBS) + self.cls(r.choice((1, 1, 2)))

    def slug(self, sep="-"):
        r = self.rng
        return sep.join(r.choice(NOUNS) for _ in range(r.choice((1, 2, 2, 3))))

    def prose(self, lo=6, hi=16):
        r = self.rng
        n = r.randint(lo, hi)
        w = [r.choice(NOUNS) if r.random() < 0.6 else r.choice(VERBS) if r.random() < 0.6
             else r.choice(ADJS) for _ in range(n)]
        return (" ".join(w)).capitalize() + "."


def php_expr(w):
    r = w.rng
    k = r.randrange(8)
    if k == 0:
        return f"$this->{w.var()}"
    if k == 1:
        return f"${w.var()}"
    if k == 2:
        return f"$this->{w.method()}(${w.var()})"
    if k == 3:
        return f"'{w.slug('.')}'"
    if k == 4:
        return str(r.randint(0, 4096))
    if k == 5:
        return f"{w.cls()}::{w.var().upper()}"
    if k == 6:
        return f"${w.var()}['{w.noun()}'] ?? null"
    return f"new {w.cls()}(${w.var()})"


def php_stmt(w, ind):
    r = w.rng
    k = r.randrange(11)
    v = w.var()
    if k == 0:
        return f"{ind}${v} = {php_expr(w)};"
    if k == 1:
        return (f"{ind}if (${v} === null) {{\n"
                f"{ind}    throw new {w.cls()}Exception(\\sprintf('{w.prose(3, 7)[:-1]}: %s', ${w.var()}));\n"
                f"{ind}}}")
    if k == 2:
        return (f"{ind}foreach (${v}s as ${w.noun()}) {{\n"
                f"{ind}    $this->{w.method()}(${w.noun()}, {php_expr(w)});\n{ind}}}")
    if k == 3:
        return f"{ind}return {php_expr(w)};"
    if k == 4:
        return f"{ind}// {w.prose()}"
    if k == 5:
        lines = [f"{ind}${v} = ["]
        for _ in range(r.randint(2, 5)):
            lines.append(f"{ind}    '{w.noun()}_{w.noun()}' => {php_expr(w)},")
        return "\n".join(lines + [f"{ind}];"])
    if k == 6:
        return (f"{ind}try {{\n{ind}    ${v} = $this->{w.var()}->{w.method()}();\n"
                f"{ind}}} catch ({w.cls()}Exception $e) {{\n"
                f"{ind}    $this->logger->{r.choice(('error', 'warning', 'notice'))}"
                f"('{w.prose(3, 8)}', ['exception' => $e]);\n{ind}}}")
    if k == 7:
        return f"{ind}$this->{v} = {php_expr(w)};"
    if k == 8:
        return f"{ind}${v} = array_filter(${w.var()}, static fn ($x): bool => $x->{w.method()}() !== null);"
    if k == 9:
        return (f"{ind}if (!${v} instanceof {w.cls()}) {{\n"
                f"{ind}    return {r.choice(('null', 'false', '[]', '0', 'self::EMPTY'))};\n{ind}}}")
    return f"{ind}$this->{w.method()}({php_expr(w)}, {php_expr(w)});"


def php_source(w, namespace, name, size):
    r = w.rng
    out = ["<?php\n\ndeclare(strict_types=1);\n"]
    if r.random() < 0.5:
        out.append(f"/*\n * This file is part of the {namespace.split(chr(92))[0]} package.\n *\n"
                   " * For the full copyright and license information, please view the LICENSE\n"
                   " * file that was distributed with this source code.\n */\n")
    out.append(f"namespace {namespace};\n")
    for _ in range(r.randint(1, 9)):
        out.append(f"use {namespace.split(chr(92))[0]}\\{w.cls(1)}\\{w.cls()};")
    kind = r.choice(("final class", "class", "class", "abstract class", "interface", "trait"))
    extra = ""
    if "class" in kind and r.random() < 0.35:
        extra += f" extends {w.cls()}"
    if "class" in kind and r.random() < 0.35:
        extra += f" implements {w.cls()}Interface"
    out.append(f"\n/**\n * {w.prose()}\n */\n{kind} {name}{extra}\n{{")
    for _ in range(r.randint(0, 3)):
        out.append(f"    public const {w.noun().upper()}_{w.noun().upper()} = '{w.slug('.')}';")
    for _ in range(r.randint(0, 5)):
        out.append(f"    private {r.choice(SCALARS)} ${w.var()};")
    n = sum(len(x) + 1 for x in out)
    while n < size:
        doc = [f"\n    /**\n     * {w.prose()}"]
        params = [f"{r.choice(SCALARS)} ${w.var()}" for _ in range(r.randint(0, 3))]
        for p in params:
            doc.append(f"     * @param {p}")
        ret = r.choice(RETURNS)
        doc.append(f"     * @return {ret}\n     */")
        vis = r.choice(("public", "public", "protected", "private"))
        body = [php_stmt(w, "        ") for _ in range(r.randint(1, 8))]
        m = "\n".join(doc + [f"    {vis} function {w.method()}({', '.join(params)}): {ret}", "    {"]
                      + body + ["    }"])
        out.append(m)
        n += len(m) + 1
    text = "\n".join(out)
    return (text[: max(size - 3, 0)] + "\n}\n").encode()


def blade_source(w, size):
    out, n = ["@extends('layouts.app')\n\n@section('content')"], 0
    while n < size:
        v = w.var()
        s = (f"<div class=\"{w.slug()}\">\n    <h2>{{{{ __('{w.prose(2, 5)}') }}}}</h2>\n"
             f"    @foreach (${v}s as ${v})\n        <a href=\"{{{{ route('{w.slug('.')}', ${v}) }}}}\">"
             f"{{{{ ${v}->{w.noun()} }}}}</a>\n    @endforeach\n    <p>{w.prose(8, 20)}</p>\n</div>\n")
        out.append(s)
        n += len(s)
    return "\n".join(out)[:size].encode()


def js_source(w, size):
    out, n = [], 0
    while n < size:
        a, b = w.var(), w.var()
        s = (f"export async function {w.method()}({a}, {b} = {{}}) {{\n"
             f"  const res = await fetch(`/api/{w.slug('/')}/${{{a}.id}}`, {{ method: '{w.rng.choice(('GET', 'POST', 'PUT'))}' }});\n"
             f"  if (!res.ok) throw new Error('{w.prose(3, 6)}');\n"
             f"  return (await res.json()).{w.var()}.map((x) => ({{ ...x, {b}: {b}.{w.var()} ?? {w.rng.randint(0, 99)} }}));\n}}\n\n")
        out.append(s)
        n += len(s)
    return "".join(out)[:size].encode()


def css_source(w, size):
    r = w.rng
    out, n = [], 0
    while n < size:
        s = (f".{w.slug()} .{w.slug()} {{\n  padding: {r.randint(0, 24)}px {r.randint(0, 24)}px;\n"
             f"  color: #{r.randrange(1 << 24):06x};\n  display: {r.choice(('flex', 'grid', 'block', 'inline-block'))};\n"
             f"  border-radius: {r.randint(0, 12)}px;\n}}\n\n")
        out.append(s)
        n += len(s)
    return "".join(out)[:size].encode()


def json_source(w, size, name=None):
    r = w.rng
    out = ["{", f'    "name": "{name or (r.choice(VENDORS) + "/" + w.slug())}",',
           f'    "description": "{w.prose()}",', '    "type": "library",', '    "license": "MIT",',
           '    "require": {']
    n = sum(len(x) + 1 for x in out)
    while n < size - 60:
        s = f'        "{r.choice(VENDORS)}/{w.slug()}": "^{r.randint(0, 12)}.{r.randint(0, 40)}",'
        out.append(s)
        n += len(s) + 1
    out += ['        "php": "^8.2"', "    },", '    "minimum-stability": "stable"', "}"]
    return ("\n".join(out) + "\n").encode()


def yaml_source(w, size):
    r = w.rng
    out, n = [], 0
    while n < size:
        s = (f"{w.noun()}_{w.noun()}:\n  enabled: {r.choice(('true', 'false'))}\n"
             f"  {w.noun()}: '%env({w.noun().upper()}_{w.noun().upper()})%'\n  ttl: {r.randint(1, 86400)}\n")
        out.append(s)
        n += len(s)
    return "".join(out)[:size].encode()


def md_source(w, size):
    out, n = [f"# {w.cls()}\n"], 0
    while n < size:
        s = (f"\n## {w.prose(2, 6)[:-1]}\n\n" + " ".join(w.prose() for _ in range(w.rng.randint(2, 7)))
             + f"\n\n```php\n{php_stmt(w, '')}\n```\n")
        out.append(s)
        n += len(s)
    return "".join(out)[:size].encode()


def small_size(r):
    """200 B .. 30 KB, skewed small: median ~3.9 KB, mean ~7.6 KB."""
    return 200 + int(29800 * r.random() ** 3)


# --------------------------------------------------------------------------------------
# packages: each yields (name, data, method, mode)
# --------------------------------------------------------------------------------------
APP_DIRS = {
    "app/Http/Controllers": "php", "app/Http/Controllers/Api": "php", "app/Http/Middleware": "php",
    "app/Http/Requests": "php", "app/Models": "php", "app/Services": "php", "app/Jobs": "php",
    "app/Events": "php", "app/Listeners": "php", "app/Policies": "php", "app/Console/Commands": "php",
    "app/Providers": "php", "config": "php", "database/migrations": "php", "database/factories": "php",
    "database/seeders": "php", "routes": "php", "tests/Feature": "php", "tests/Unit": "php",
    "lang/en": "php", "lang/fr": "php", "resources/views": "blade", "resources/views/layouts": "blade",
    "resources/views/components": "blade", "resources/views/emails": "blade", "resources/js": "js",
    "resources/js/components": "js", "resources/css": "css", "public/build/assets": "js",
}


def php_app(r, nfiles=20000):
    w = Words(r)
    plan = []  # (path, kind, mode)
    for p, kind, mode in (("artisan", "php", 0o755), ("composer.json", "json", 0o644),
                          ("composer.lock", "json", 0o644), ("package.json", "json", 0o644),
                          ("README.md", "md", 0o644), ("phpunit.xml", "yaml", 0o644),
                          (".env.example", "yaml", 0o644), ("public/index.php", "php", 0o644),
                          ("vendor/autoload.php", "php", 0o644),
                          ("vendor/composer/installed.json", "json", 0o644),
                          ("vendor/composer/autoload_classmap.php", "php", 0o644),
                          ("vendor/composer/autoload_static.php", "php", 0o644)):
        plan.append((p, kind, mode))
    dirs = sorted(APP_DIRS)
    for _ in range(nfiles * 12 // 100):
        d = r.choice(dirs)
        kind = APP_DIRS[d]
        if kind == "php":
            name = (f"{r.randint(2019, 2024)}_{r.randint(1, 12):02d}_{r.randint(1, 28):02d}_"
                    f"{r.randrange(1000000):06d}_{w.slug('_')}.php" if d == "database/migrations"
                    else f"{w.cls()}.php")
        elif kind == "blade":
            name = f"{w.slug('-')}.blade.php"
        elif kind == "js":
            name = f"{w.slug('-')}{'-' + format(r.getrandbits(32), '08x') if d.startswith('public') else ''}.js"
        else:
            name = f"{w.slug('-')}.css"
        plan.append((f"{d}/{name}", kind, 0o644))
    # vendor/<vendor>/<package>/{src/<A>/<B>/...,tests/...,resources/...}
    while len(plan) < nfiles:
        base = f"vendor/{r.choice(VENDORS)}/{w.slug()}"
        plan += [(f"{base}/composer.json", "json", 0o644), (f"{base}/LICENSE", "md", 0o644),
                 (f"{base}/README.md", "md", 0o644)]
        if r.random() < 0.5:
            plan.append((f"{base}/CHANGELOG.md", "md", 0o644))
        if r.random() < 0.1:
            plan.append((f"{base}/bin/{w.slug()}", "php", 0o755))
        subs = ["src"]
        for _ in range(r.randint(1, 7)):
            parent = r.choice(subs)
            if parent.count("/") < 4:
                subs.append(f"{parent}/{w.cls(1)}")
        subs.append(f"tests/{w.cls(1)}")
        for _ in range(r.randint(6, 110)):
            x = r.random()
            if x < 0.9:
                plan.append((f"{base}/{r.choice(subs)}/{w.cls()}.php", "php", 0o644))
            elif x < 0.95:
                plan.append((f"{base}/config/{w.slug('_')}.yaml", "yaml", 0o644))
            else:
                plan.append((f"{base}/resources/{w.slug()}.js", "js", 0o644))
    plan = plan[:nfiles]
    seen = set()
    for path, kind, mode in plan:
        if path in seen:  # rare name clash: make it unique, keep the extension
            stem, dot, ext = path.rpartition(".")
            path = f"{stem}{len(seen)}.{ext}" if dot else f"{path}{len(seen)}"
        seen.add(path)
        size = small_size(r)
        if kind == "php":
            parts = path.split("/")
            ns = "\\".join(p.replace("-", " ").title().replace(" ", "") for p in parts[:-1][:5]) or "App"
            data = php_source(w, ns, parts[-1].split(".")[0].replace("-", "_") or "Main", size)
        elif kind == "blade":
            data = blade_source(w, size)
        elif kind == "js":
            data = js_source(w, size)
        elif kind == "css":
            data = css_source(w, size)
        elif kind == "json":
            data = json_source(w, size)
        elif kind == "yaml":
            data = yaml_source(w, size)
        else:
            data = md_source(w, size)
        yield path, data, zipfile.ZIP_DEFLATED, mode


def assets(r, nfiles=40, total=600 * MIB):
    w = Words(r)
    # sizes in [1, 40] MiB, skewed small, scaled so they add up to ~total
    raw = [r.random() ** 1.6 for _ in range(nfiles)]
    lo, hi = 0.0, 1000.0
    for _ in range(60):  # bisect the scale so that the clamped sizes add up to total
        mid = (lo + hi) / 2
        s = sum(min(40.0, max(1.0, x * mid)) for x in raw)
        lo, hi = (mid, hi) if s * MIB < total else (lo, mid)
    sizes = [int(min(40.0, max(1.0, x * lo)) * MIB) - r.randrange(8192) for x in raw]
    # half the files are text, half binary; alternating down the size order keeps the text
    # share of the bytes near one half whatever the seed, hence a zip of ~400 MB
    text = (["ndjson"] * 8 + ["csv"] * 7 + ["log"] * 5) * (nfiles // 40 + 1)
    binary = (["media"] * 14 + ["font"] * 2 + ["blob"] * 4) * (nfiles // 40 + 1)
    r.shuffle(text)
    r.shuffle(binary)
    kinds = [""] * nfiles
    for rank, i in enumerate(sorted(range(nfiles), key=lambda i: -sizes[i])):
        kinds[i] = (text if rank % 2 == 0 else binary)[rank // 2]
    pools = {
        "ndjson": [('{"id":%%d,"sku":"%s-%06d","title":"%s","price":{"amount":%d,"currency":"%s"},'
                    '"tags":["%s","%s"],"stock":%d,"published":%s,"summary":"%s"}') % (
                       w.noun()[:3].upper(), r.randrange(10 ** 6), w.cls(3), r.randrange(100000),
                       r.choice(("EUR", "USD", "GBP", "CHF")), w.noun(), w.noun(), r.randrange(9999),
                       r.choice(("true", "false")), w.prose(4, 14)) for _ in range(30000)],
        "csv": ["%%d,%s,%s,%s,%d,%d.%02d,%s,2024-%02d-%02d %02d:%02d:%02d" % (
                    w.noun(), w.cls(2), r.choice(VENDORS), r.randrange(500), r.randrange(9999),
                    r.randrange(100), r.choice(("open", "paid", "void", "shipped")), r.randint(1, 12),
                    r.randint(1, 28), r.randrange(24), r.randrange(60), r.randrange(60))
                for _ in range(30000)],
        "log": ["[2024-%02d-%02dT%02d:%02d:%02d.%03dZ] %s.%s: %s {\"request_id\":\"%%d\",\"route\":\"/%s\",\"ms\":%d} []" % (
                    r.randint(1, 12), r.randint(1, 28), r.randrange(24), r.randrange(60), r.randrange(60),
                    r.randrange(1000), r.choice(("production", "staging")),
                    r.choice(("INFO", "INFO", "INFO", "DEBUG", "WARNING", "ERROR")), w.prose(4, 12),
                    w.slug("/"), r.randrange(2000)) for _ in range(30000)],
    }
    for i, (size, kind) in enumerate(zip(sizes, kinds)):
        if kind in pools:
            pool = pools[kind]
            parts, n, seq = [], 0, r.randrange(10 ** 6)
            while n < size:
                for rec in r.choices(pool, k=4096):
                    rec = rec.replace("%d", str(seq), 1)
                    seq += 1
                    parts.append(rec)
                    n += len(rec) + 1
            data = ("\n".join(parts) + "\n").encode()[:size]
            name = f"data/{kind}/{w.slug('_')}-{i:02d}.{kind}"
            method = zipfile.ZIP_DEFLATED if r.random() < 0.9 else zipfile.ZIP_STORED
        else:
            data = r.randbytes(size)
            if kind == "media":
                ext = r.choice(("jpg", "png", "webp", "mp4", "webm"))
                name = f"public/media/{w.slug()}-{i:02d}.{ext}"
                method = zipfile.ZIP_STORED if r.random() < 0.6 else zipfile.ZIP_DEFLATED
            elif kind == "font":
                name = f"public/fonts/{w.cls(2)}-{i:02d}.woff2"
                method = zipfile.ZIP_DEFLATED
            else:
                name = f"storage/app/{w.slug('_')}-{i:02d}.bin"
                method = zipfile.ZIP_DEFLATED
        yield name, data, method, 0o644


def tiny(r):
    w = Words(r)
    yield "index.php", php_source(w, "App", "Kernel", 1100), zipfile.ZIP_DEFLATED, 0o644
    yield "composer.json", json_source(w, 520, "acme/tiny-app"), zipfile.ZIP_DEFLATED, 0o644
    yield "README.md", md_source(w, 800), zipfile.ZIP_DEFLATED, 0o644
    for i in range(3):
        yield (f"src/{w.cls()}.php", php_source(w, "App\\Src", f"Part{i}", r.randint(400, 2500)),
               zipfile.ZIP_DEFLATED, 0o644)
    yield "config/app.yaml", yaml_source(w, 450), zipfile.ZIP_DEFLATED, 0o644
    yield "public/app.css", css_source(w, 700), zipfile.ZIP_DEFLATED, 0o644
    yield "public/app.js", js_source(w, 600), zipfile.ZIP_DEFLATED, 0o644
    yield "public/favicon.png", r.randbytes(1500), zipfile.ZIP_STORED, 0o644


def tiny_size(r):
    """20 B .. 2 KB, skewed small (before the text generators round them up a little)."""
    return 20 + int(2000 * r.random() ** 3)


def many(r, entries=200_000):
    """A node_modules tree: packages (some scoped) with package.json, README, LICENSE and
    lib/, dist/, src/ trees of tiny files, a third of them with nested node_modules.
    Stops at exactly `entries` entries, counting the directory entries write_zip adds."""
    w = Words(r)
    dirs, seen = set(), set()
    count = 0

    def add(path):
        nonlocal count
        parts = path.split("/")
        new = [d for d in ("/".join(parts[:k]) for k in range(1, len(parts))) if d not in dirs]
        if path in seen or path in dirs or count + len(new) + 1 > entries:
            return False
        dirs.update(new)
        seen.add(path)
        count += len(new) + 1
        return True

    def package(root, depth):
        name = w.slug()
        if r.random() < 0.15:
            name = f"@{r.choice(VENDORS)}/{name}"
        base = f"{root}/node_modules/{name}"
        for f in ("package.json", "README.md", "LICENSE", "index.js"):
            yield f"{base}/{f}"
        subs = [r.choice(("lib", "dist", "src", "build")) for _ in range(r.randint(1, 3))]
        for _ in range(r.randint(0, 4)):
            subs.append(f"{r.choice(subs)}/{w.slug('_')}")
        for _ in range(r.randint(3, 40)):
            ext = r.choice(("js", "js", "js", "d.ts", "mjs", "cjs", "map", "json"))
            yield f"{base}/{r.choice(subs)}/{w.slug('.')}.{ext}"
        if depth < 3 and r.random() < 0.3:
            for _ in range(r.randint(1, 4)):
                yield from package(base, depth + 1)

    top = ["package.json", "package-lock.json", "server.js", "README.md"]
    files = [f for f in top if add(f)]
    while count < entries:
        for path in package("app", 0):
            if add(path):
                files.append(path)
            if count >= entries:
                break
        if count + 2 >= entries:  # no room left for a file under a new directory: top-level files
            i = 0
            while count < entries:
                if add(f"extra-{i}.js"):
                    files.append(f"extra-{i}.js")
                i += 1
    for path in files:
        size = tiny_size(r)
        if path.endswith(".json"):
            data = json_source(w, size)
        elif path.endswith(".md") or path.endswith("LICENSE"):
            data = md_source(w, size)
        else:
            data = js_source(w, size)
        yield path, data, zipfile.ZIP_DEFLATED, 0o644


GENERATORS = {"php-app": php_app, "assets": assets, "tiny": tiny, "many": many}


# --------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------
def tree_order(entries):
    """Sort entries so that each directory's files are contiguous, as `zip -r` stores them."""
    entries = list(entries)
    entries.sort(key=lambda e: (e[0].split("/")[:-1], e[0].rsplit("/", 1)[-1]))
    return entries


def write_zip(path, entries):
    tmp = path + ".part"
    files = dirs = total = 0
    made = set()
    with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
        for name, data, method, mode in tree_order(entries):
            parts = name.split("/")
            for k in range(1, len(parts)):
                d = "/".join(parts[:k]) + "/"
                if d not in made:
                    made.add(d)
                    zi = zipfile.ZipInfo(d, MTIME)
                    zi.create_system = 3
                    zi.external_attr = ((S_IFDIR | 0o755) << 16) | MSDOS_DIR
                    zf.writestr(zi, b"")
                    dirs += 1
            zi = zipfile.ZipInfo(name, MTIME)
            zi.create_system = 3
            zi.external_attr = (S_IFREG | mode) << 16
            zi.compress_type = method
            zf.writestr(zi, data, compress_type=method, compresslevel=6)
            files += 1
            total += len(data)
    return publish(tmp, path, files, dirs, total)


def bsdtar_zip(src_zip, path):
    """Write src_zip's tree again with `bsdtar --format zip`, which puts each entry's sizes and CRC in a data
    descriptor after its data; return the row of the new zip (see COLUMNS)."""
    tmp = path + ".part"
    tree = path + ".tree"
    shutil.rmtree(tree, ignore_errors=True)
    try:
        subprocess.run(["unzip", "-q", src_zip, "-d", tree], check=True)
        names = sorted(os.listdir(tree))  # no "./" prefix on the names
        subprocess.run(["bsdtar", "--format", "zip", "-cf", tmp, "-C", tree, *names], check=True)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    files = dirs = total = 0
    with zipfile.ZipFile(tmp) as zf:
        for zi in zf.infolist():
            if not zi.flag_bits & 0x08 and zi.file_size:
                raise SystemExit(f"{path}: bsdtar wrote {zi.filename} without a data descriptor")
            if zi.is_dir():
                dirs += 1
            else:
                files += 1
                total += zi.file_size
    return publish(tmp, path, files, dirs, total)


def publish(tmp, path, files, dirs, total):
    """Move the finished zip tmp to path; return its row (see COLUMNS)."""
    h = hashlib.sha256()
    with open(tmp, "rb") as f:
        while chunk := f.read(4 * MIB):
            h.update(chunk)
    os.replace(tmp, path)
    return {"zip_bytes": os.path.getsize(path), "entries": files + dirs, "files": files,
            "uncompressed_bytes": total, "sha256": h.hexdigest()}


COLUMNS = ("name", "zip_bytes", "entries", "files", "uncompressed_bytes", "sha256")


def stamp(seed):
    return f"# zipdeploy bench packages: generator {GENERATOR_VERSION}, seed {seed}"


def read_tsv(out, seed):
    """Rows of packages.tsv keyed by package name, or {} when missing or stale."""
    path = os.path.join(out, "packages.tsv")
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return {}
    if not lines or lines[0] != stamp(seed) or len(lines) < 2 or tuple(lines[1].split("\t")) != COLUMNS:
        return {}
    rows = {}
    for line in lines[2:]:
        cells = line.split("\t")
        if len(cells) == len(COLUMNS):
            row = dict(zip(COLUMNS, cells))
            for k in COLUMNS[1:5]:
                row[k] = int(row[k])
            rows[row["name"].removesuffix(".zip")] = row
    return rows


def write_tsv(out, seed, rows):
    path = os.path.join(out, "packages.tsv")
    with open(path + ".part", "w") as f:
        f.write(stamp(seed) + "\n" + "\t".join(COLUMNS) + "\n")
        for name in sorted(rows):
            f.write("\t".join(str(rows[name][k]) for k in COLUMNS) + "\n")
    os.replace(path + ".part", path)


def ensure(out, seed=DEFAULT_SEED, only=PACKAGES, force=False, log=print):
    """Make sure OUT holds the packages in `only`; return their rows (see COLUMNS)."""
    os.makedirs(out, exist_ok=True)
    rows = read_tsv(out, seed)
    for name in only:
        if name not in GENERATORS and name not in DERIVED:
            raise SystemExit(f"unknown package {name!r} (known: {', '.join(PACKAGES)})")
        zpath = os.path.join(out, f"{name}.zip")
        row = rows.get(name)
        if not force and row and os.path.exists(zpath) and os.path.getsize(zpath) == row["zip_bytes"]:
            log(f"{name}.zip: cached ({row['zip_bytes'] / MIB:.1f} MiB, sha256 {row['sha256']})")
            continue
        t0 = time.monotonic()
        if name in DERIVED:
            base = DERIVED[name]
            rows.update(ensure(out, seed, [base], force and base not in only, log))
            st = bsdtar_zip(os.path.join(out, f"{base}.zip"), zpath)
        else:
            # one independent stream per package, so --only does not change a package
            seed_bytes = hashlib.sha256(f"zipdeploy-bench/{seed}/{name}".encode()).digest()
            rng = random.Random(int.from_bytes(seed_bytes, "big"))
            st = write_zip(zpath, GENERATORS[name](rng))
        rows[name] = {"name": f"{name}.zip", **st}
        write_tsv(out, seed, rows)
        log(f"{name}.zip: {st['zip_bytes'] / MIB:.1f} MiB zip, {st['entries']} entries ({st['files']} files), "
            f"{st['uncompressed_bytes'] / MIB:.1f} MiB uncompressed, sha256 {st['sha256']} "
            f"[{time.monotonic() - t0:.0f} s]")
    write_tsv(out, seed, rows)
    return {n: rows[n] for n in only}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--out", default=default_out(), help="output directory (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="default: %(default)s")
    ap.add_argument("--only", default=",".join(PACKAGES), help="comma-separated subset of " + ",".join(PACKAGES))
    ap.add_argument("--force", action="store_true", help="regenerate even if packages.tsv matches")
    a = ap.parse_args(argv)
    only = [x for x in a.only.split(",") if x]
    ensure(a.out, a.seed, only, a.force)
    print(f"zlib {zlib.ZLIB_RUNTIME_VERSION}; wrote {os.path.join(a.out, 'packages.tsv')}")


if __name__ == "__main__":
    sys.exit(main())
